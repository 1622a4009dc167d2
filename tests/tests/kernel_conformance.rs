//! Conformance of the mocked kernel with the real Redox kernel and base, one test per
//! fact of `shared/notes/redox-real.md` that the stack relies on. Each test names the
//! kernel (or base) source file whose behaviour it checks.
//!
//! One module per kernel scheme or mechanism, so the facts stay grouped the way the
//! note groups them.

#[path = "kernel_conformance/acpi.rs"]
mod acpi;
#[path = "kernel_conformance/irq.rs"]
mod irq;
#[path = "kernel_conformance/memory.rs"]
mod memory;
#[path = "kernel_conformance/namespace.rs"]
mod namespace;
#[path = "kernel_conformance/pci.rs"]
mod pci;
#[path = "kernel_conformance/socket_concurrency.rs"]
mod socket_concurrency;
#[path = "kernel_conformance/user_scheme.rs"]
mod user_scheme;
