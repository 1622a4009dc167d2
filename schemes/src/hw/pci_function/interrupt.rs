//! The function's interrupts: MSI-X (table and PBA in BAR memory), MSI (config
//! registers), INTx, decoded as the local APIC would and raised on the `irq` scheme.

use std::sync::atomic::Ordering;

use driver_sys::msi::{MsiCapability, MsixCapability};
use driver_sys::pci::ConfigSpace;

use super::{InterruptOutcome, MSI_CAP_OFFSET, MSIX_CAP_OFFSET, SimPciFunction};
use crate::kernel::wait::lock;

impl SimPciFunction {
    fn msix_cap(&self) -> Option<MsixCapability> {
        self.spec.msix?;
        MsixCapability::parse(&mut *lock(&self.config), MSIX_CAP_OFFSET).ok()
    }

    pub(super) fn msix_entry_addr(&self, index: u16) -> Option<u64> {
        let m = self.spec.msix?;
        if index >= m.table_size {
            return None;
        }
        let (base, _) = self.bar(usize::from(m.table.0))?;
        Some(base + u64::from(m.table.1) + u64::from(index) * 16)
    }

    fn pba_dword(&self, index: u16) -> Option<u64> {
        let m = self.spec.msix?;
        let (base, _) = self.bar(usize::from(m.pba.0))?;
        Some(base + u64::from(m.pba.1) + u64::from(index / 32) * 4)
    }

    /// Whether entry `index`'s pending bit is set.
    pub fn msix_pending(&self, index: u16) -> bool {
        let Some(a) = self.pba_dword(index) else {
            return false;
        };
        let mut b = [0u8; 4];
        self.phys.read(a, &mut b) && u32::from_le_bytes(b) & (1 << (index % 32)) != 0
    }

    fn set_pending(&self, index: u16, on: bool) {
        if let Some(a) = self.pba_dword(index) {
            let mut b = [0u8; 4];
            self.phys.read(a, &mut b);
            let mut v = u32::from_le_bytes(b);
            let bit = 1 << (index % 32);
            v = if on { v | bit } else { v & !bit };
            self.phys.write(a, &v.to_le_bytes());
        }
    }

    fn send(&self, address: u64, data: u32) -> InterruptOutcome {
        // The local APIC's view: 0xFEEx_xxxx, destination in 19:12, vector in 7:0.
        if address >> 32 != 0 || (address as u32) & 0xFFF0_0000 != 0xFEE0_0000 {
            return InterruptOutcome::Dropped;
        }
        let cpu = ((address >> 12) & 0xFF) as usize;
        let vector = data as u8;
        // Vectors 0..=15 are illegal in an MSI; 16..=31 are exceptions.
        if vector < 0x20 {
            return InterruptOutcome::Dropped;
        }
        // Counted before it is raised: the driver may wake and look at the
        // counter before this thread runs again.
        self.stats.interrupts.fetch_add(1, Ordering::Relaxed);
        // The irq scheme is the kernel's interrupt entry: it decides what the vector
        // means on that CPU (a device IRQ, a legacy line, a kernel vector).
        let claimed = self.irq.raise(cpu, usize::from(vector - 0x20));
        InterruptOutcome::Delivered {
            cpu,
            vector,
            claimed,
        }
    }

    /// The function signals MSI-X entry `index`.
    pub fn signal_msix(&self, index: u16) -> InterruptOutcome {
        let Some(cap) = self.msix_cap() else {
            return InterruptOutcome::Dropped;
        };
        let Some(entry) = self.msix_entry_addr(index) else {
            return InterruptOutcome::Dropped;
        };
        if !cap.is_enabled() {
            return InterruptOutcome::Dropped;
        }
        let mut raw = [0u8; 16];
        self.phys.read(entry, &mut raw);
        let word = |i: usize| {
            raw.get(i * 4..i * 4 + 4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .unwrap_or(0)
        };
        if cap.is_function_masked() || word(3) & 1 != 0 {
            self.set_pending(index, true);
            return InterruptOutcome::Pending;
        }
        let address = u64::from(word(0)) | (u64::from(word(1)) << 32);
        self.send(address, word(2))
    }

    /// Sends every pending MSI-X message whose entry is now unmasked (what the
    /// hardware does when software clears a mask); returns how many went out.
    pub fn deliver_pending(&self) -> usize {
        let Some(m) = self.spec.msix else { return 0 };
        let mut n = 0;
        for i in 0..m.table_size {
            if self.msix_pending(i) {
                self.set_pending(i, false);
                if let InterruptOutcome::Delivered { .. } = self.signal_msix(i) {
                    n += 1;
                }
            }
        }
        n
    }

    /// The function signals MSI message `index` (of the enabled block).
    pub fn signal_msi(&self, index: u32) -> InterruptOutcome {
        let mut cfg = lock(&self.config);
        let Ok(cap) = MsiCapability::parse(&mut *cfg, MSI_CAP_OFFSET) else {
            return InterruptOutcome::Dropped;
        };
        if !cap.is_enabled() || index >= cap.enabled_vectors() {
            return InterruptOutcome::Dropped;
        }
        if let Some(mask) = cap.mask_offset()
            && cfg.read_u32(mask).unwrap_or(0) & (1 << index) != 0
        {
            if let Some(p) = cap.pending_offset() {
                let v = cfg.read_u32(p).unwrap_or(0);
                let _ = cfg.write_u32(p, v | (1 << index));
            }
            return InterruptOutcome::Pending;
        }
        let lo = cfg.read_u32(cap.address_lo_offset()).unwrap_or(0);
        let hi = cap
            .address_hi_offset()
            .map(|o| cfg.read_u32(o).unwrap_or(0))
            .unwrap_or(0);
        let data = cfg.read_u16(cap.data_offset()).unwrap_or(0);
        drop(cfg);
        // Multi-message: the function puts the message number in the low data bits.
        let data = u32::from(data) | index;
        self.send(u64::from(lo) | (u64::from(hi) << 32), data)
    }

    /// The function asserts INTx (ignored while the command register disables it).
    pub fn signal_intx(&self) -> InterruptOutcome {
        let Some(line) = self.spec.intx_line else {
            return InterruptOutcome::Dropped;
        };
        if self.command() & (1 << 10) != 0 {
            return InterruptOutcome::Dropped;
        }
        let claimed = self.irq.raise_legacy(usize::from(line));
        InterruptOutcome::Delivered {
            cpu: 0,
            vector: line + 0x20,
            claimed,
        }
    }

    /// Signals interrupt `index` in whichever mode the driver enabled.
    pub fn signal(&self, index: u16) -> InterruptOutcome {
        if self.msix_cap().is_some_and(|c| c.is_enabled()) {
            return self.signal_msix(index);
        }
        match self.signal_msi(u32::from(index)) {
            InterruptOutcome::Dropped => self.signal_intx(),
            o => o,
        }
    }
}
