//! `redox-host`: a mocked Redox kernel for Linux hosts.
//!
//! It provides the relibc symbols `libredox` and `redox_event` call ([`abi`]), the
//! kernel's scheme IPC (real `Sqe`s and `Cqe`s on scheme sockets), mocked schemes
//! (`memory`, `irq`, `pci`, `acpi`, `time`) and simulated hardware, so the unmodified
//! Redox daemons of this workspace run — and are tested — on Linux.
//!
//! A binary or test that runs Redox code on Linux must *name* this crate
//! (`use redox_host as _;`) or the symbols are not linked.

#![warn(missing_docs)]

pub mod abi;
pub mod boot;
pub mod demo;
pub mod fuse;
pub mod guest;
pub mod hw;
pub mod init;
pub mod kernel;
pub mod mock;

pub use kernel::{ClockSource, Cred, Kernel, MachineConfig};
