//! Schemes the mocked kernel serves itself, and the machine behind them.

pub mod clock;
pub mod irq;
pub mod memory;
pub mod pci;
pub mod phys;
pub mod time;
