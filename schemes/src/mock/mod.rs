//! Schemes the mocked kernel serves itself, and the machine behind them.

pub mod acpi;
pub mod clock;
pub mod irq;
pub mod memory;
pub mod pci;
pub mod pcid_function;
pub mod pcid_handler;
pub mod phys;
pub mod pipe;
pub mod time;
