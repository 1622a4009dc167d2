//! `dsmild`: startup script for Redox. Reads the configuration, wires the machine's
//! hardware, registers scheme `dsmil`, then serves it until shut down.
//!
//! `dsmild [--smi-command-code <code>]`: with the code (from the DMI 0xDA table) the
//! token path is the Dell calling interface, else DSMIL's legacy SMI ports.

use std::process::ExitCode;

use driver_sys::pci::PciFunction;
use dsmil::controller::{ControllerConfig, DsmilController};
use dsmil::hardware::FixedThermal;
use dsmil::platform::{
    CallingInterface, CallingInterfaceConfig, DmaSmiBuffer, LegacySmi, RedoxClock, SmiPolicy,
    TokenIo, X86PortIo,
};
use dsmil::{Config, Hardware};

fn parse_code(text: &str) -> Option<u8> {
    match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

fn token_path(config: &Config) -> Result<Box<dyn TokenIo + Send>, String> {
    let ports = X86PortIo::acquire().map_err(|e| format!("no I/O port rights ({e})"))?;
    let Some(code) = config.smi_command_code else {
        return Ok(Box::new(LegacySmi::new(
            ports,
            RedoxClock,
            SmiPolicy::default(),
        )));
    };
    let buffer = DmaSmiBuffer::allocate().map_err(|e| format!("no SMI buffer ({e})"))?;
    let ci = CallingInterfaceConfig {
        command_port: config.smi_command_port,
        ..CallingInterfaceConfig::new(code)
    };
    let smi = CallingInterface::new(buffer, ports, RedoxClock, ci).map_err(|e| format!("{e}"))?;
    Ok(Box::new(smi))
}

fn main() -> ExitCode {
    dsmil::logger::init(log::LevelFilter::Info);

    let mut config = Config::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => {}
        [flag, code] if flag == "--smi-command-code" => match parse_code(code) {
            Some(c) => config.smi_command_code = Some(c),
            None => {
                eprintln!("dsmild: bad SMI command code {code:?}");
                return ExitCode::from(2);
            }
        },
        _ => {
            eprintln!("usage: dsmild [--smi-command-code <code>]");
            return ExitCode::from(2);
        }
    }

    // Without a thermal driver the sensor reads a constant, safe value.
    let mut hardware = match token_path(&config) {
        Ok(firmware) => Hardware::with_firmware(Box::new(FixedThermal(40)), firmware),
        Err(e) => {
            log::warn!("dsmild: {e}; devices stay offline");
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
