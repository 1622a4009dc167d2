//! What pcid reaches of one PCI function: its config space, its BARs, its claim.
//!
//! The `pci` scheme ([`super::pci::PciScheme`]) and pcid's answers
//! ([`super::pcid_handler`]) are written against this trait, so the same scheme
//! serves simulated functions ([`SimPciFunction`]) and, in guest mode, a Linux
//! guest's real ones (`crate::guest::pci::SysfsFunction`).

use driver_sys::pci::pcid_wire::PcidFunctionInfo;
use driver_sys::pci::{ConfigSpace, MemoryConfigSpace, PciAddress};
use syscall::error::Result;

use crate::hw::pci_function::SimPciFunction;

/// One function as pcid drives it.
pub trait PcidFunction: Send + Sync {
    /// Its address.
    fn address(&self) -> PciAddress;
    /// What pcid reports for it (`RequestConfig`).
    fn info(&self) -> PcidFunctionInfo;
    /// Base and size of memory BAR `i`.
    fn bar(&self, i: usize) -> Option<(u64, u64)>;
    /// Reads a config dword.
    fn config_read_u32(&self, offset: u16) -> Result<u32>;
    /// Writes a config dword.
    fn config_write_u32(&self, offset: u16, value: u32) -> Result<()>;
    /// Runs `f` on the config space (capability walks).
    fn with_config_space<R>(&self, f: impl FnOnce(&mut dyn ConfigSpace) -> R) -> R;
    /// Marks the function taken by one channel; false if it already was.
    fn claim(&self) -> bool;
    /// Clears the mark.
    fn release(&self);
    /// This process's address of `len` bytes of BAR memory at physical `phys`;
    /// `None`: the scheme maps it from the simulated machine's arena.
    fn bar_host_addr(&self, _phys: u64, _len: usize) -> Option<usize> {
        None
    }
}

impl PcidFunction for SimPciFunction {
    fn address(&self) -> PciAddress {
        SimPciFunction::address(self)
    }
    fn info(&self) -> PcidFunctionInfo {
        SimPciFunction::info(self)
    }
    fn bar(&self, i: usize) -> Option<(u64, u64)> {
        SimPciFunction::bar(self, i)
    }
    fn config_read_u32(&self, offset: u16) -> Result<u32> {
        SimPciFunction::config_read_u32(self, offset)
    }
    fn config_write_u32(&self, offset: u16, value: u32) -> Result<()> {
        SimPciFunction::config_write_u32(self, offset, value)
    }
    fn with_config_space<R>(&self, f: impl FnOnce(&mut dyn ConfigSpace) -> R) -> R {
        self.with_config(|c: &mut MemoryConfigSpace| f(c))
    }
    fn claim(&self) -> bool {
        SimPciFunction::claim(self)
    }
    fn release(&self) {
        SimPciFunction::release(self)
    }
}

impl<T: PcidFunction> PcidFunction for std::sync::Arc<T> {
    fn address(&self) -> PciAddress {
        (**self).address()
    }
    fn info(&self) -> PcidFunctionInfo {
        (**self).info()
    }
    fn bar(&self, i: usize) -> Option<(u64, u64)> {
        (**self).bar(i)
    }
    fn config_read_u32(&self, offset: u16) -> Result<u32> {
        (**self).config_read_u32(offset)
    }
    fn config_write_u32(&self, offset: u16, value: u32) -> Result<()> {
        (**self).config_write_u32(offset, value)
    }
    fn with_config_space<R>(&self, f: impl FnOnce(&mut dyn ConfigSpace) -> R) -> R {
        (**self).with_config_space(f)
    }
    fn claim(&self) -> bool {
        (**self).claim()
    }
    fn release(&self) {
        (**self).release()
    }
    fn bar_host_addr(&self, phys: u64, len: usize) -> Option<usize> {
        (**self).bar_host_addr(phys, len)
    }
}
