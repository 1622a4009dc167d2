//! `dsmil-tests`: the host-runnable protocol harness.
//!
//! * [`sqe`] — SQE-level dispatch into any `SchemeSync`, no threads.
//! * [`probe`] — a recording scheme for tests of the mocked kernel itself.
//! * [`perf`] — the suites behind `cargo run --release -p dsmil-tests --bin perf`.

#![warn(missing_docs)]

use redox_host as _;

pub mod perf;
pub mod probe;
pub mod sqe;
