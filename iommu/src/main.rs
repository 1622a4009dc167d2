//! `iommud`: startup script for Redox. Maps the AMD-Vi units whose register
//! bases are given on the command line (from the ACPI IVRS table, e.g.
//! `iommud 0xfeb80000`), then serves scheme `iommu` until shut down.

use std::process::ExitCode;

use iommu::amdvi::AmdViMmio;
use iommu::physmap::PhysmapMmio;

fn parse_base(arg: &str) -> Option<u64> {
    let hex = arg.strip_prefix("0x").unwrap_or(arg);
    u64::from_str_radix(hex, 16).ok()
}

fn main() -> ExitCode {
    let mut units: Vec<Box<dyn AmdViMmio>> = Vec::new();
    for arg in std::env::args().skip(1) {
        let Some(base) = parse_base(&arg) else {
            eprintln!("iommud: `{arg}` is not a register base address");
            return ExitCode::FAILURE;
        };
        match PhysmapMmio::map(base) {
            Ok(mmio) => units.push(Box::new(mmio)),
            Err(e) => {
                eprintln!("iommud: cannot map the unit at {base:#x}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if units.is_empty() {
        eprintln!("iommud: no AMD-Vi unit given; usage: iommud <register base>...");
        return ExitCode::FAILURE;
    }
    match iommu::run(iommu::Config::default(), units) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("iommud: {e}");
            ExitCode::FAILURE
        }
    }
}
