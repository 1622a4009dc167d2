//! `dsmild`: startup script for Redox. Reads the configuration, wires the machine's
//! hardware, registers scheme `dsmil`, then serves it until shut down.

use std::process::ExitCode;

use dsmil::{Config, Hardware};

fn main() -> ExitCode {
    dsmil::logger::init(log::LevelFilter::Info);

    let config = Config::default();
    // Without a thermal driver the sensor reads a constant, safe value.
    let hardware = Hardware::minimal(40);

    match dsmil::run(config, hardware) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dsmild: {e}");
            ExitCode::FAILURE
        }
    }
}
