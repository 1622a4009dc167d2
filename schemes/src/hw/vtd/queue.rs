//! The invalidation queue and the invalidations themselves, after QEMU 7.2
//! `vtd_fetch_inv_desc`, `vtd_process_inv_desc` and its `vtd_process_*_desc`
//! helpers (reserved-bit checks included), plus the register-based CCMD and
//! IOTLB paths (`vtd_handle_ccmd_write`, `vtd_handle_iotlb_write`).
//!
//! Where QEMU is more forgiving than the specification lets real units be,
//! the simulated unit follows the specification and says so: a
//! domain-selective context-cache invalidation drops only that domain's
//! entries (QEMU drops all), and a device-selective one only the entry
//! tagged with the descriptor's DID (QEMU ignores the DID) — which is why a
//! not-present entry cached under caching mode (tagged DID 0) needs a
//! DID-0 device invalidation.

use std::sync::atomic::Ordering;

use iommu::vtd::{fsts, gcmd};

use super::{SimVtd, UnitState};

/// Which context-cache entries an invalidation drops.
#[derive(Clone, Copy, Debug)]
pub enum ContextInvalidation {
    /// All.
    Global,
    /// Those tagged with this DID.
    Domain(u16),
    /// The device's (source id under function mask), tagged with `did`.
    Device {
        /// DID tag.
        did: u16,
        /// Source id.
        sid: u16,
        /// FM: low function bits to ignore (0..=3).
        mask: u8,
    },
}

/// Which IOTLB entries an invalidation drops.
#[derive(Clone, Copy, Debug)]
pub enum IotlbInvalidation {
    /// All.
    Global,
    /// One DID's.
    Domain(u16),
    /// One DID's, overlapping 2^`am` pages from `addr` (aligned down).
    Page {
        /// DID.
        did: u16,
        /// Address.
        addr: u64,
        /// AM.
        am: u8,
    },
}

/// Drops context-cache entries.
pub fn invalidate_context(unit: &SimVtd, st: &mut UnitState, what: ContextInvalidation) {
    let before = st.context_cache.len();
    st.context_cache.retain(|&sid, &mut (did, _)| match what {
        ContextInvalidation::Global => false,
        ContextInvalidation::Domain(d) => did != d,
        ContextInvalidation::Device {
            did: d,
            sid: s,
            mask,
        } => {
            let fm = (1u16 << mask.min(3)) - 1;
            !(did == d && (sid & !fm) == (s & !fm))
        }
    });
    unit.stats
        .context_invalidated
        .fetch_add((before - st.context_cache.len()) as u64, Ordering::Relaxed);
}

/// Drops IOTLB entries.
pub fn invalidate_iotlb(unit: &SimVtd, st: &mut UnitState, what: IotlbInvalidation) {
    let before = st.iotlb.len();
    st.iotlb.retain(|&(did, page), e| match what {
        IotlbInvalidation::Global => false,
        IotlbInvalidation::Domain(d) => did != d,
        IotlbInvalidation::Page { did: d, addr, am } => {
            let span = 1u64 << (12 + u32::from(am.min(51)));
            let start = addr & !(span - 1);
            let size = match e {
                super::CachedTranslation::Page { size, .. } => *size,
                super::CachedTranslation::Miss(_) => 4096,
            };
            did != d || page >= start.saturating_add(span) || page.saturating_add(size) <= start
        }
    });
    unit.stats
        .iotlb_invalidated
        .fetch_add((before - st.iotlb.len()) as u64, Ordering::Relaxed);
}

/// Why a descriptor was refused.
struct Invalid;

impl SimVtd {
    /// Runs descriptors from IQH to IQT (QEMU `vtd_fetch_inv_desc`). A tail
    /// beyond the queue, or a descriptor QEMU refuses, sets FSTS.IQE and
    /// stops with IQH at the bad descriptor.
    pub(super) fn run_queue(&self, st: &mut UnitState) {
        let entries = st.regs.queue_entries;
        if entries == 0 || st.regs.iqt >= entries {
            self.queue_error(st);
            return;
        }
        while st.regs.iqh != st.regs.iqt {
            let at = st.regs.queue_base + st.regs.iqh * 16;
            let (Some(lo), Some(hi)) = (self.phys.read_u64(at), self.phys.read_u64(at + 8)) else {
                self.queue_error(st);
                return;
            };
            if self.execute(st, lo, hi).is_err() {
                log::warn!("sim vt-d: invalid descriptor {lo:#x}:{hi:#x}");
                self.queue_error(st);
                return;
            }
            self.stats.descriptors.fetch_add(1, Ordering::Relaxed);
            st.regs.iqh = (st.regs.iqh + 1) % entries;
        }
    }

    fn queue_error(&self, st: &mut UnitState) {
        st.regs.fsts |= fsts::IQE;
        st.regs.fectl |= iommu::vtd::fectl::IP;
    }

    fn execute(&self, st: &mut UnitState, lo: u64, hi: u64) -> Result<(), Invalid> {
        // QEMU's type is bits 3:0 plus bits 11:9 as the high part.
        let kind = ((lo >> 5) & 0x70) | (lo & 0xF);
        match kind {
            0x1 => {
                if lo & 0xFFFC_0000_0000_FFC0 != 0 || hi != 0 {
                    return Err(Invalid);
                }
                let did = (lo >> 16) as u16;
                let what = match (lo >> 4) & 3 {
                    1 => ContextInvalidation::Global,
                    2 => ContextInvalidation::Domain(did),
                    3 => ContextInvalidation::Device {
                        did,
                        sid: (lo >> 32) as u16,
                        mask: ((lo >> 48) & 3) as u8,
                    },
                    _ => return Err(Invalid),
                };
                invalidate_context(self, st, what);
            }
            0x2 => {
                if lo & 0xFFFF_FFFF_0000_FF00 != 0 || hi & 0xF80 != 0 {
                    return Err(Invalid);
                }
                let did = (lo >> 16) as u16;
                let what = match (lo >> 4) & 3 {
                    1 => IotlbInvalidation::Global,
                    2 => IotlbInvalidation::Domain(did),
                    3 => {
                        let am = (hi & 0x3F) as u8;
                        if am > 18 {
                            return Err(Invalid);
                        }
                        IotlbInvalidation::Page {
                            did,
                            addr: hi & !0xFFF,
                            am,
                        }
                    }
                    _ => return Err(Invalid),
                };
                invalidate_iotlb(self, st, what);
            }
            0x5 => {
                if lo & 0xFFFF_FF80 != 0 || hi & 3 != 0 {
                    return Err(Invalid);
                }
                let (status_write, interrupt) = (lo & (1 << 5) != 0, lo & (1 << 4) != 0);
                if status_write && interrupt {
                    panic!(
                        "simulated VT-d: invalidation wait with both SW and IF: QEMU 7.2 \
                         aborts the machine here (assert in vtd_process_wait_desc)"
                    );
                }
                if status_write {
                    let data = ((lo >> 32) as u32).to_le_bytes();
                    if !self.phys.write(hi & !3, &data) {
                        return Err(Invalid);
                    }
                } else if interrupt {
                    st.regs.ics |= 1;
                    st.regs.completion_msi[0] |= iommu::vtd::fectl::IP;
                } else {
                    return Err(Invalid);
                }
            }
            // Device-TLB and interrupt-entry-cache invalidations: nothing of
            // either is cached here. PASID kinds: no-ops in QEMU 7.2.
            0x3 | 0x4 | 0x6 | 0x7 => {}
            _ => return Err(Invalid),
        }
        Ok(())
    }
}

/// CCMD with ICC set: refused while QI is on (QEMU logs and ignores it),
/// otherwise done at once with ICC cleared and CAIG = CIRG.
pub fn register_context_invalidation(unit: &SimVtd, st: &mut UnitState) {
    if st.regs.gsts & gcmd::QIE != 0 {
        log::warn!("sim vt-d: register-based context invalidation while QI is enabled, ignored");
        return;
    }
    let v = st.regs.ccmd;
    let did = v as u16;
    let what = match (v >> 61) & 3 {
        1 => Some(ContextInvalidation::Global),
        2 => Some(ContextInvalidation::Domain(did)),
        3 => Some(ContextInvalidation::Device {
            did,
            sid: (v >> 16) as u16,
            mask: ((v >> 32) & 3) as u8,
        }),
        _ => None,
    };
    if let Some(what) = what {
        invalidate_context(unit, st, what);
    }
    let granularity = (v >> 61) & 3;
    st.regs.ccmd = (v & !(1 << 63) & !(3 << 59)) | (granularity << 59);
}

/// IOTLB register with IVT set: as CCMD, with the address from IVA.
pub fn register_iotlb_invalidation(unit: &SimVtd, st: &mut UnitState) {
    if st.regs.gsts & gcmd::QIE != 0 {
        log::warn!("sim vt-d: register-based IOTLB invalidation while QI is enabled, ignored");
        return;
    }
    let v = st.regs.iotlb;
    let did = (v >> 32) as u16;
    let what = match (v >> 60) & 3 {
        1 => Some(IotlbInvalidation::Global),
        2 => Some(IotlbInvalidation::Domain(did)),
        3 => Some(IotlbInvalidation::Page {
            did,
            addr: st.regs.iva & !0xFFF,
            am: (st.regs.iva & 0x3F) as u8,
        }),
        _ => None,
    };
    if let Some(what) = what {
        invalidate_iotlb(unit, st, what);
    }
    let granularity = (v >> 60) & 3;
    st.regs.iotlb = (v & !(1 << 63) & !(3 << 57)) | (granularity << 57);
}
