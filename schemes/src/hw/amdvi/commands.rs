//! The simulated unit's command processor: executes the command ring from
//! head to tail (`COMPLETION_WAIT` with its store, `INV_DEV_ENTRY`,
//! `INV_IOMMU_PAGES` with the S-bit range and PDE, `INV_ALL`), unless the
//! unit is hung.

use std::sync::atomic::Ordering;

use iommu::amdvi::control;

use super::{SimAmdVi, UnitState};

impl SimAmdVi {
    pub(super) fn run_commands(&self, st: &mut UnitState) {
        if st.regs.control & control::COMMAND_BUFFER_ENABLE == 0
            || st.regs.command_len == 0
            || self.stalled.load(Ordering::SeqCst)
        {
            return;
        }
        let mut executed = 0;
        while st.regs.command_head != st.regs.command_tail && executed < st.regs.command_len / 16 {
            let mut raw = [0u8; 16];
            self.phys
                .read(st.regs.command_base + st.regs.command_head, &mut raw);
            let dword = |i: usize| {
                u32::from_le_bytes([raw[i * 4], raw[i * 4 + 1], raw[i * 4 + 2], raw[i * 4 + 3]])
            };
            let (d0, d1, d2, d3) = (dword(0), dword(1), dword(2), dword(3));
            match d1 >> 28 {
                0x1 if d0 & 1 != 0 => {
                    let addr = u64::from(d0 & !7) | (u64::from(d1 & 0xF_FFFF) << 32);
                    let data = u64::from(d2) | (u64::from(d3) << 32);
                    self.phys.write_u64(addr, data);
                }
                0x1 => {}
                0x2 => {
                    st.dte_cache.remove(&(d0 as u16));
                }
                0x3 => {
                    let domain = d1 as u16;
                    let addr = u64::from(d2 & !0xFFF) | (u64::from(d3) << 32);
                    let (start, size) = if d2 & 1 == 0 {
                        (addr, 4096)
                    } else {
                        let k = 12 + (addr >> 12).trailing_ones();
                        if k >= 63 {
                            (0, u64::MAX)
                        } else {
                            let size = 1u64 << (k + 1);
                            (addr & !(size - 1), size)
                        }
                    };
                    let end = start.saturating_add(size);
                    let pde = d2 & 2 != 0;
                    let dropped = st.caches.invalidate(domain, start, end, pde);
                    self.stats
                        .iotlb_invalidated
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
                // INV_ALL: every cache of the unit.
                0x8 => {
                    st.dte_cache.clear();
                    let dropped = st.caches.clear();
                    self.stats
                        .iotlb_invalidated
                        .fetch_add(dropped as u64, Ordering::Relaxed);
                }
                _ => log::warn!("sim amd-vi: illegal command {:#x}", d1 >> 28),
            }
            self.stats.commands.fetch_add(1, Ordering::Relaxed);
            st.regs.command_head = (st.regs.command_head + 16) % st.regs.command_len;
            executed += 1;
        }
    }
}
