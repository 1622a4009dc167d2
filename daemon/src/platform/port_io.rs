//! The two hardware boundaries every SMI path needs: x86 port I/O and a
//! monotonic clock.

use std::time::{Duration, Instant};

/// x86 port I/O.
///
/// `main.rs` wires the real `in`/`out` instructions (after acquiring I/O
/// privilege), `redox-host` the simulated firmware, tests a recorder. The
/// argument order is `(port, value)`, as Rust port APIs spell it, not the
/// C `outb(value, port)`.
pub trait PortIo {
    /// Reads a byte from `port`.
    fn inb(&mut self, port: u16) -> u8;
    /// Writes a byte to `port`.
    fn outb(&mut self, port: u16, value: u8);
    /// Reads a 16-bit word from `port`.
    fn inw(&mut self, port: u16) -> u16;
    /// Writes a 16-bit word to `port`.
    fn outw(&mut self, port: u16, value: u16);
    /// Reads a 32-bit dword from `port`.
    fn inl(&mut self, port: u16) -> u32;
    /// Writes a 32-bit dword to `port`.
    fn outl(&mut self, port: u16, value: u32);
}

// Lets a caller lend its port object and keep it (tests inspect it after).
impl<P: PortIo + ?Sized> PortIo for &mut P {
    fn inb(&mut self, port: u16) -> u8 {
        (**self).inb(port)
    }
    fn outb(&mut self, port: u16, value: u8) {
        (**self).outb(port, value)
    }
    fn inw(&mut self, port: u16) -> u16 {
        (**self).inw(port)
    }
    fn outw(&mut self, port: u16, value: u16) {
        (**self).outw(port, value)
    }
    fn inl(&mut self, port: u16) -> u32 {
        (**self).inl(port)
    }
    fn outl(&mut self, port: u16, value: u32) {
        (**self).outl(port, value)
    }
}

/// A monotonic clock: time since an arbitrary fixed origin.
///
/// Budgets are measured with it rather than by counting polls, so a slow
/// port (a trapped, emulated `in`) cannot stretch a 50 ms budget.
pub trait Clock {
    /// Monotonic time since this clock's origin.
    fn now(&self) -> Duration;
}

impl<C: Clock + ?Sized> Clock for &C {
    fn now(&self) -> Duration {
        (**self).now()
    }
}

/// [`Clock`] over `std::time::Instant` (a monotonic clock on Redox and on
/// the host alike).
#[derive(Clone, Copy, Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock {
            origin: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Duration {
        self.origin.elapsed()
    }
}
