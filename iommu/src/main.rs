//! `iommud`: startup script for Redox. Maps the AMD-Vi units whose register
//! bases are given on the command line (from the ACPI IVRS table, e.g.
//! `iommud 0xfeb80000`), then serves scheme `iommu` until shut down.
//!
//! Started by init as `type = { scheme = "iommu" }` (`/usr/lib/init.d/00_0iommud.service`):
//! it sends init its root capability over `INIT_NOTIFY` and init registers the
//! name; started by hand it registers `iommu` itself.

use std::process::ExitCode;

use iommu::amdvi::AmdViMmio;
use iommu::physmap::PhysmapMmio;
use iommu::startup::{InitNotify, Startup, setup_logging};

fn parse_base(arg: &str) -> Option<u64> {
    let hex = arg.strip_prefix("0x").unwrap_or(arg);
    u64::from_str_radix(hex, 16).ok()
}

fn main() -> ExitCode {
    let startup = Startup::from_process();
    setup_logging("misc", "iommu", "iommud");
    let notify = InitNotify::from_startup(&startup, "iommud");
    let mut units: Vec<Box<dyn AmdViMmio>> = Vec::new();
    for arg in &startup.args {
        let Some(base) = parse_base(arg) else {
            log::error!("iommud: `{arg}` is not a register base address");
            return ExitCode::FAILURE;
        };
        match PhysmapMmio::map(base) {
            Ok(mmio) => units.push(Box::new(mmio)),
            Err(e) => {
                log::error!("iommud: cannot map the unit at {base:#x}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if units.is_empty() {
        log::error!("iommud: no AMD-Vi unit given; usage: iommud <register base>...");
        return ExitCode::FAILURE;
    }
    match iommu::serve(iommu::Config::default(), units, notify) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("iommud: {e}");
            ExitCode::FAILURE
        }
    }
}
