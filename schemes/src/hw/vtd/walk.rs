//! Translation: the context lookup and the second-level walk, with QEMU
//! 7.2's checks and fault reasons (`vtd_dev_to_context_entry`,
//! `vtd_iova_to_slpte`, `vtd_do_iommu_translate`) and the caching rules of
//! the unit (module docs of [`super`]).

use std::sync::atomic::Ordering;

use super::{CachedTranslation, IOTLB_CAPACITY, SimVtd, UnitState};

/// First byte of the interrupt window.
pub const INTERRUPT_FIRST: u64 = 0xFEE0_0000;
/// Last byte of the interrupt window.
pub const INTERRUPT_LAST: u64 = 0xFEEF_FFFF;
/// The miss "no entry with R or W on the path" (reason 5 or 6, by access).
pub const NOT_PRESENT: u8 = 0;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Bits of a second-level entry software may not set: SNP (no snoop
/// control), TM (no device-TLB); bits 61:52 and 63 are ignored (QEMU
/// `VTD_SL_IGN_COM`).
const SL_IGNORED: u64 = 0xBFF0_0000_0000_0000;

/// A decoded, valid context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Context {
    /// DID.
    pub did: u16,
    /// TT = 10: untranslated requests pass.
    pub pass_through: bool,
    /// SLPTPTR.
    pub root: u64,
    /// Levels (AW + 2).
    pub levels: u32,
    /// FPD: faults are not recorded.
    pub fpd: bool,
}

/// A refused request: the fault reason and whether to record it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    /// VT-d fault reason.
    pub reason: u8,
    /// False when the context entry's FPD suppresses it.
    pub record: bool,
}

fn refuse(reason: u8) -> Refusal {
    Refusal {
        reason,
        record: true,
    }
}

impl SimVtd {
    /// Reads and checks `sid`'s root and context entries.
    fn read_context(&self, st: &UnitState, sid: u16) -> Result<Context, u8> {
        let bus = u64::from(sid >> 8);
        let root_lo = self.phys.read_u64(st.regs.root + bus * 16).ok_or(0x8u8)?;
        let root_hi = self
            .phys
            .read_u64(st.regs.root + bus * 16 + 8)
            .ok_or(0x8u8)?;
        if root_lo & 1 == 0 {
            return Err(0x1);
        }
        if root_lo & 0xFFE != 0 || root_hi != 0 {
            return Err(0xA);
        }
        let at = (root_lo & ADDR_MASK) + u64::from(sid & 0xFF) * 16;
        let lo = self.phys.read_u64(at).ok_or(0x9u8)?;
        let hi = self.phys.read_u64(at + 8).ok_or(0x9u8)?;
        if lo & 1 == 0 {
            return Err(0x2);
        }
        if lo & 0xFF0 != 0 || hi & ((1 << 7) | !0xFF_FFFF) != 0 {
            return Err(0xB);
        }
        let agaw = hi & 7;
        // QEMU checks AW against SAGAW for every TT, pass-through included.
        if !self.config.supports_agaw(agaw) {
            return Err(0x3);
        }
        let pass_through = match (lo >> 2) & 3 {
            0 => false,
            2 if self.config.pass_through => true,
            _ => return Err(0x3),
        };
        Ok(Context {
            did: (hi >> 8) as u16,
            pass_through,
            root: lo & ADDR_MASK,
            levels: agaw as u32 + 2,
            fpd: lo & 2 != 0,
        })
    }

    /// The context of `sid`, from the context cache or memory. Valid
    /// entries are cached under their DID; with caching mode so are
    /// not-present and invalid ones, under DID 0.
    fn context(&self, st: &mut UnitState, sid: u16) -> Result<Context, u8> {
        if let Some((_, c)) = st.context_cache.get(&sid) {
            self.stats.context_hits.fetch_add(1, Ordering::Relaxed);
            return *c;
        }
        let c = self.read_context(st, sid);
        match c {
            Ok(ctx) => {
                st.context_cache.insert(sid, (ctx.did, c));
            }
            Err(_) if self.config.caching_mode => {
                st.context_cache.insert(sid, (0, c));
            }
            Err(_) => {}
        }
        c
    }

    /// The whole translation of one request.
    pub(super) fn resolve(
        &self,
        st: &mut UnitState,
        sid: u16,
        iova: u64,
        len: usize,
        write: bool,
    ) -> Result<u64, Refusal> {
        let ctx = self.context(st, sid).map_err(refuse)?;
        let qualified = |reason| Refusal {
            reason,
            record: !ctx.fpd,
        };
        if ctx.pass_through {
            return Ok(iova);
        }
        let rw_fault = if write { 0x5 } else { 0x6 };
        let page = iova & !0xFFF;
        let entry = match self.iotlb_lookup(st, ctx.did, iova) {
            Some(e) => {
                self.stats.iotlb_hits.fetch_add(1, Ordering::Relaxed);
                e
            }
            None => {
                let e = match self.walk(&ctx, iova) {
                    Ok(e) => e,
                    Err(reason) => CachedTranslation::Miss(reason),
                };
                let cache = match e {
                    CachedTranslation::Page { size, .. } => Some((iova & !(size - 1), size)),
                    CachedTranslation::Miss(_) if self.config.caching_mode => Some((page, 4096)),
                    CachedTranslation::Miss(_) => None,
                };
                if let Some((base, size)) = cache {
                    if st.iotlb.len() >= IOTLB_CAPACITY
                        && let Some(&victim) = st.iotlb.keys().next()
                    {
                        st.iotlb.remove(&victim);
                    }
                    st.iotlb.insert((ctx.did, base), e);
                    st.sizes_seen |= size;
                }
                e
            }
        };
        match entry {
            CachedTranslation::Miss(NOT_PRESENT) => Err(qualified(rw_fault)),
            CachedTranslation::Miss(reason) => Err(qualified(reason)),
            CachedTranslation::Page {
                phys,
                size,
                read,
                write: writable,
            } => {
                let offset = iova & (size - 1);
                if offset + len as u64 > size {
                    return Err(qualified(rw_fault));
                }
                if (write && !writable) || (!write && !read) {
                    return Err(qualified(rw_fault));
                }
                Ok(phys + offset)
            }
        }
    }

    fn iotlb_lookup(&self, st: &UnitState, did: u16, iova: u64) -> Option<CachedTranslation> {
        let mut sizes = st.sizes_seen;
        while sizes != 0 {
            let size = 1u64 << sizes.trailing_zeros();
            sizes &= sizes - 1;
            if let Some(e) = st.iotlb.get(&(did, iova & !(size - 1))) {
                let fits = match e {
                    CachedTranslation::Page { size: s, .. } => *s == size,
                    CachedTranslation::Miss(_) => size == 4096,
                };
                if fits {
                    return Some(*e);
                }
            }
        }
        None
    }

    /// The second-level walk from the context's root: R/W checked at every
    /// level (a not-present entry is one without R and W), reserved bits,
    /// PS leaves at levels 2 and 3, the output against the interrupt window.
    ///
    /// A present entry without the requested permission does not stop the
    /// walk here: the leaf is cached with the R/W of the whole path and the
    /// request refused by [`Self::resolve`] with the same reason (5 or 6)
    /// QEMU gives.
    fn walk(&self, ctx: &Context, iova: u64) -> Result<CachedTranslation, u8> {
        self.stats.walks.fetch_add(1, Ordering::Relaxed);
        let width = (12 + 9 * ctx.levels).min(self.config.aw_bits);
        if iova >> width != 0 {
            return Err(0x4);
        }
        let haw_mask = (1u64 << self.config.aw_bits) - 1;
        let (mut table, mut level) = (ctx.root, ctx.levels);
        let (mut read, mut writable) = (true, true);
        loop {
            let shift = 12 + 9 * (level - 1);
            let pte = self
                .phys
                .read_u64(table + ((iova >> shift) & 0x1FF) * 8)
                .ok_or(0x7u8)?;
            read &= pte & 1 != 0;
            writable &= pte & 2 != 0;
            if pte & 3 == 0 {
                // Not present: reported as the access the request wanted.
                return Err(NOT_PRESENT);
            }
            let leaf = level == 1 || (pte & (1 << 7) != 0 && level <= 3);
            let mut reserved = (1 << 11) | !(haw_mask | SL_IGNORED);
            if level == 4 {
                reserved |= 1 << 7;
            }
            if leaf && level > 1 {
                if !self.config.superpages {
                    reserved |= 1 << 7;
                }
                // A superpage's frame is aligned to its size.
                reserved |= ((1u64 << shift) - 1) & !0xFFF;
            }
            if pte & reserved != 0 {
                return Err(0xC);
            }
            if leaf {
                let size = 1u64 << shift;
                let phys = pte & ADDR_MASK & !(size - 1);
                if phys <= INTERRUPT_LAST && phys + size > INTERRUPT_FIRST {
                    return Err(0xE);
                }
                return Ok(CachedTranslation::Page {
                    phys,
                    size,
                    read,
                    write: writable,
                });
            }
            table = pte & ADDR_MASK & haw_mask;
            level -= 1;
        }
    }
}
