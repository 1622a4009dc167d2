//! `iommud`: startup script for Redox. Finds the units in the ACPI tables
//! (from acpid): Intel VT-d in `DMAR`, else AMD-Vi in `IVRS`; maps their
//! registers, brings them up with every device in passthrough, and serves
//! scheme `iommu` until shut down.
//! Register bases on the command line (`iommud 0xfeb80000`) override the
//! table's, for firmware that lies.
//!
//! Started by init as `type = { scheme = "iommu" }` (`/usr/lib/init.d/00_0iommud.service`):
//! it sends init its root capability over `INIT_NOTIFY` and init registers the
//! name; started by hand it registers `iommu` itself.

use std::process::ExitCode;

use iommu::amdvi::AmdViMmio;
use iommu::physmap::PhysmapMmio;
use iommu::startup::{InitNotify, Startup, setup_logging};
use iommu::vtd::VtdMmio;

fn parse_base(arg: &str) -> Option<u64> {
    let hex = arg.strip_prefix("0x").unwrap_or(arg);
    u64::from_str_radix(hex, 16).ok()
}

fn main() -> ExitCode {
    let startup = Startup::from_process();
    setup_logging("misc", "iommu", "iommud");
    let notify = InitNotify::from_startup(&startup, "iommud");
    let mut overrides = Vec::new();
    for arg in &startup.args {
        let Some(base) = parse_base(arg) else {
            log::error!("iommud: `{arg}` is not a register base address");
            return ExitCode::FAILURE;
        };
        overrides.push(base);
    }
    // An Intel machine describes its units in DMAR; command-line bases name
    // AMD-Vi units and skip it.
    let vtd = if overrides.is_empty() {
        iommu::vtd::discovery::discover(iommu::Config::default(), |base| {
            PhysmapMmio::map_len(base, iommu::vtd::discovery::REGISTER_WINDOW)
                .map(|m| Box::new(m) as Box<dyn VtdMmio>)
        })
    } else {
        Ok(None)
    };
    let map = |base| PhysmapMmio::map(base).map(|m| Box::new(m) as Box<dyn AmdViMmio>);
    let served = vtd
        .and_then(|found| match found {
            Some(state) => Ok(state),
            None => iommu::discovery::discover(iommu::Config::default(), &overrides, map),
        })
        .and_then(|state| iommu::daemon::serve(state, notify));
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("iommud: {e}");
            ExitCode::FAILURE
        }
    }
}
