//! `dsmild`: startup script for Redox. Reads the configuration, wires the machine's
//! hardware, registers scheme `dsmil`, then serves it until shut down.

use std::process::ExitCode;

use driver_sys::pci::PciFunction;
use dsmil::controller::{ControllerConfig, DsmilController};
use dsmil::hardware::FixedThermal;
use dsmil::platform::{LegacySmi, RedoxClock, SmiPolicy, X86PortIo};
use dsmil::{Config, Hardware};

fn main() -> ExitCode {
    dsmil::logger::init(log::LevelFilter::Info);

    let config = Config::default();
    // Without a thermal driver the sensor reads a constant, safe value.
    let thermal = Box::new(FixedThermal(40));

    // The token path: DSMIL's legacy SMI ports, once the kernel grants port I/O.
    let mut hardware = match X86PortIo::acquire() {
        Ok(ports) => {
            let smi = LegacySmi::new(ports, RedoxClock, SmiPolicy::default());
            Hardware::with_firmware(thermal, Box::new(smi))
        }
        Err(e) => {
            log::warn!("dsmild: no I/O port rights ({e}); devices stay offline");
            Hardware::minimal(40)
        }
    };

    // Started by pcid-spawner (daemon/config.toml), we hold the controller's pcid
    // channel: device data then arrives by DMA into IOMMU-mapped buffers, with an
    // MSI-X (or MSI, or INTx) completion interrupt.
    match PciFunction::connect_default() {
        Ok(function) => match DsmilController::bind(function, &ControllerConfig::default()) {
            Ok(controller) => hardware = hardware.device_memory(Box::new(controller)),
            Err(e) => log::warn!("dsmild: DSMIL controller unusable ({e}); SMI path only"),
        },
        Err(e) => log::info!("dsmild: no DSMIL PCI function ({e}); SMI path only"),
    }

    match dsmil::run(config, hardware) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsmild: {e}");
            ExitCode::FAILURE
        }
    }
}
