//! `redox-host`: the simulated Redox machine on Linux.
//!
//! `redox-host demo` boots it, starts the daemons, and shows them answering.

use std::process::ExitCode;

use redox_host as _;

fn main() -> ExitCode {
    dsmil::logger::init(log::LevelFilter::Warn);
    let cmd = std::env::args().nth(1).unwrap_or_default();
    match cmd.as_str() {
        "demo" => match redox_host::demo::run() {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("redox-host demo: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: redox-host demo");
            ExitCode::from(2)
        }
    }
}
