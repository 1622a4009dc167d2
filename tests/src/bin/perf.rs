//! `perf`: benchmark suites printing `name=value` lines.
//!
//! `cargo run --release -p dsmil-tests --bin perf -- <suite>...`; suites: `kernel`, `fuse`,
//! `iommu`, `driver-sys`, `dsmil`. A benchmark whose operation fails ends the run
//! with exit status 1.

use std::process::ExitCode;

use dsmil_tests::perf;

/// Every suite, in the order the usage string lists them.
const SUITES: [&str; 5] = ["kernel", "fuse", "iommu", "driver-sys", "dsmil"];

fn main() -> ExitCode {
    let suites: Vec<String> = std::env::args().skip(1).collect();
    if suites.is_empty() {
        eprintln!("usage: perf <suite>...   (suites: {})", SUITES.join(", "));
        return ExitCode::from(2);
    }
    for s in &suites {
        match s.as_str() {
            "kernel" => perf::kernel::run(),
            "fuse" => perf::fuse::run(),
            "iommu" => perf::iommu::run(),
            "driver-sys" => perf::driver_sys::run(),
            "dsmil" => perf::dsmil::run(),
            other => {
                eprintln!(
                    "perf: unknown suite {other} (suites: {})",
                    SUITES.join(", ")
                );
                return ExitCode::from(2);
            }
        }
    }
    ExitCode::SUCCESS
}
