//! The guest side of the QEMU suite: the program the guest kernel runs as `/init`.
//!
//! It mounts `/proc`, `/sys` and `/dev`, reserves hugepages, boots the mocked kernel
//! over the guest's hardware ([`redox_host::guest::boot`]), starts the unmodified
//! iommud on the unit the ACPI tables name, binds edu through the `pci` scheme, runs
//! the scenarios of its model and prints one line per scenario:
//! `DSMIL-QEMU <model> <scenario> PASS|FAIL|NOT-YET-AVAILABLE <detail>`, then
//! `DSMIL-QEMU <model> END`, and powers the machine off.

pub mod amdvi;
pub mod domain_move;
pub mod pages;
pub mod system;
pub mod vtd;
pub mod watchdog;

use super::LINE_PREFIX;
use super::model::{self, Model};

/// A scenario's outcome.
#[derive(Debug)]
pub enum Outcome {
    /// It showed what it should.
    Pass(String),
    /// It did not.
    Fail(String),
    /// The behaviour needs work that has not landed (never reported as a pass).
    NotYetAvailable(String),
}

impl Outcome {
    fn word(&self) -> &'static str {
        match self {
            Outcome::Pass(_) => "PASS",
            Outcome::Fail(_) => "FAIL",
            Outcome::NotYetAvailable(_) => "NOT-YET-AVAILABLE",
        }
    }

    fn detail(&self) -> &str {
        match self {
            Outcome::Pass(d) | Outcome::Fail(d) | Outcome::NotYetAvailable(d) => d,
        }
    }
}

/// Prints one result line for the harness.
pub fn report(model: &Model, scenario: &str, outcome: &Outcome) {
    let detail = outcome.detail().replace('\n', " ");
    println!(
        "{LINE_PREFIX} {} {scenario} {} {detail}",
        model.name,
        outcome.word()
    );
}

/// Prints a line that is not a result (setup, notes).
pub fn note(model: &Model, text: &str) {
    println!("{LINE_PREFIX} {} NOTE {text}", model.name);
}

/// Runs every scenario of `model` and prints the results (setup failures are
/// reported against every scenario that could not run).
pub fn run_model(model: &'static Model) {
    note(model, model.caveat);
    match model.name {
        "amd-vi" => amdvi::run(model),
        "intel-iommu" | "intel-iommu-cm" => vtd::run(model),
        other => {
            for s in model.scenarios {
                report(
                    model,
                    s.name,
                    &Outcome::Fail(format!("the guest has no scenarios for model {other}")),
                );
            }
        }
    }
    println!("{LINE_PREFIX} {} END", model.name);
}

/// `/init`: sets the guest up, runs the model named on the kernel command line,
/// powers off.
pub fn init_main() -> ! {
    if let Err(e) = system::prepare() {
        println!("{LINE_PREFIX} - SETUP-FAILED {e}");
        system::power_off();
    }
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    let name = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix("dsmil.model="))
        .unwrap_or("");
    match model::model(name) {
        Some(m) => run_model(m),
        None => println!("{LINE_PREFIX} - SETUP-FAILED unknown model `{name}`"),
    }
    system::power_off()
}
