//! `dsmil-tests`: the host-runnable protocol harness.
//!
//! * [`sqe`] — SQE-level dispatch into any `SchemeSync`, no threads.
//! * [`probe`] — a recording scheme for tests of the mocked kernel itself.
//! * [`edu`] — a driver for QEMU's `edu` device, for the QEMU suite.
//! * [`qemu`] — the QEMU suite (guest side and host harness).
//! * [`perf`] — the suites behind `cargo run --release -p dsmil-tests --bin perf`.

#![warn(missing_docs)]

use redox_host as _;

pub mod counting_alloc;
pub mod edu;
pub mod fuzzing;
pub mod perf;
pub mod probe;
pub mod qemu;
pub mod sqe;
