//! The function's DMA engine: bus mastering, address width, and the translation
//! hook a simulated IOMMU plugs into.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{COMMAND_BUS_MASTER, SimPciFunction};
use crate::mock::phys::PAGE;

/// Why a DMA transfer did not happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaFault {
    /// Bus mastering is off.
    BusMasterDisabled,
    /// The address needs more bits than the device drives.
    BeyondAddressWidth(u64),
    /// The translation hook refused the address (an IOMMU fault).
    Translation(u64),
    /// The (translated) address is not RAM.
    NotRam(u64),
}

/// Direction of a DMA access, for the translation hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaAccess {
    /// Device reads memory.
    Read,
    /// Device writes memory.
    Write,
}

/// Translates one page-bounded chunk: (requester id, bus address, length, access)
/// → physical address, or `None` for a fault.
pub type DmaTranslation = Arc<dyn Fn(u16, u64, usize, DmaAccess) -> Option<u64> + Send + Sync>;

impl SimPciFunction {
    /// Installs (or removes) the DMA translation hook — the IOMMU in front of the function.
    pub fn set_translation(&self, t: Option<DmaTranslation>) {
        if let Ok(mut g) = self.translation.write() {
            *g = t;
        }
    }

    /// Chunks of `[bus, bus+len)` split at page boundaries, translated.
    fn translate(
        &self,
        bus: u64,
        len: usize,
        access: DmaAccess,
    ) -> core::result::Result<Vec<(u64, usize, usize)>, DmaFault> {
        if self.command() & COMMAND_BUS_MASTER == 0 {
            return Err(DmaFault::BusMasterDisabled);
        }
        let end = bus
            .checked_add(len as u64)
            .ok_or(DmaFault::BeyondAddressWidth(bus))?;
        let bits = self.spec.dma_address_bits.min(64);
        if bits < 64 && end > (1u64 << bits) {
            return Err(DmaFault::BeyondAddressWidth(end - 1));
        }
        let hook = self.translation.read().ok().and_then(|g| g.clone());
        let rid = self.spec.addr.requester_id();
        let mut out = Vec::new();
        let mut done = 0usize;
        while done < len {
            let at = bus + done as u64;
            let n = (PAGE - (at as usize % PAGE)).min(len - done);
            let phys = match &hook {
                Some(h) => h(rid, at, n, access).ok_or(DmaFault::Translation(at))?,
                None => at,
            };
            if self.phys.host_ptr(phys, n).is_none() {
                return Err(DmaFault::NotRam(phys));
            }
            out.push((phys, done, n));
            done += n;
        }
        Ok(out)
    }

    fn count_fault<T>(
        &self,
        r: core::result::Result<T, DmaFault>,
    ) -> core::result::Result<T, DmaFault> {
        if r.is_err() {
            self.stats.dma_faults.fetch_add(1, Ordering::Relaxed);
        }
        r
    }

    /// The device writes `data` to bus address `bus`.
    pub fn dma_write(&self, bus: u64, data: &[u8]) -> core::result::Result<(), DmaFault> {
        let chunks = self.count_fault(self.translate(bus, data.len(), DmaAccess::Write))?;
        for (phys, at, n) in chunks {
            if let Some(src) = data.get(at..at + n) {
                self.phys.write(phys, src);
            }
        }
        self.stats
            .dma_bytes
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// The device reads `buf.len()` bytes from bus address `bus`.
    pub fn dma_read(&self, bus: u64, buf: &mut [u8]) -> core::result::Result<(), DmaFault> {
        let chunks = self.count_fault(self.translate(bus, buf.len(), DmaAccess::Read))?;
        for (phys, at, n) in chunks {
            if let Some(dst) = buf.get_mut(at..at + n) {
                self.phys.read(phys, dst);
            }
        }
        self.stats
            .dma_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}
