//! What the simulated AMD-Vi unit caches from the page tables, and the page
//! walk that fills it. Three caches, each tagged by DomainID, each cleared
//! only by the command that clears it on hardware (AMD I/O Virtualization
//! Technology specification, "INVALIDATE_IOMMU_PAGES"; Linux
//! `amd/iommu.c` relies on the same rules):
//!
//! * the **IOTLB**: leaf translations per (DomainID, page), dropped by an
//!   `INV_IOMMU_PAGES` whose range overlaps them (PDE or not) or `INV_ALL`;
//! * the **page-directory cache**: for each directory level, the table the
//!   entry covering an aligned block points at, so a later walk of that
//!   block skips the memory read. Dropped only by `INV_IOMMU_PAGES` with
//!   PDE=1 whose range overlaps the block, or `INV_ALL` — a walk after an
//!   unmap therefore still goes through a freed table until then;
//! * with NpCache, **not-present answers** per (DomainID, 4 KiB page),
//!   dropped by any overlapping `INV_IOMMU_PAGES` or `INV_ALL`, so a page
//!   mapped after a fault stays unreachable until its range is invalidated.

use std::collections::{HashMap, HashSet};

use crate::mock::phys::PhysArena;

/// IOTLB entries held at once (the oldest-inserted arbitrary entry is
/// evicted beyond it, as a set-associative cache would).
pub const IOTLB_CAPACITY: usize = 4096;
/// Page-directory and not-present entries held at once, each.
pub const PDE_CACHE_CAPACITY: usize = 4096;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// A cached leaf translation.
#[derive(Clone, Copy, Debug)]
pub struct IotlbEntry {
    /// Page frame.
    pub phys: u64,
    /// Page size.
    pub size: u64,
    /// IR along the walk.
    pub read: bool,
    /// IW along the walk.
    pub write: bool,
}

/// A cached page-directory entry: where the walk of its block continues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct PdeEntry {
    table: u64,
    level: u8,
    read: bool,
    write: bool,
}

/// The unit's translation caches.
#[derive(Default)]
pub struct Caches {
    iotlb: HashMap<(u16, u64), IotlbEntry>,
    /// Bit `k` set: an entry of `2^k` bytes was cached at some point.
    sizes_seen: u64,
    /// `(DomainID, level of the entry, iova >> shift(level))`.
    pde: HashMap<(u16, u8, u64), PdeEntry>,
    /// `(DomainID, 4 KiB page)` the walk found not present (NpCache only).
    not_present: HashSet<(u16, u64)>,
}

/// What a lookup found.
pub enum Lookup {
    /// A cached translation.
    Hit(IotlbEntry),
    /// A cached "not present".
    NotPresent,
    /// Nothing: walk.
    Miss,
}

const fn shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

/// Size of a NextLevel-7 leaf: the lowest zero address bit at or above 12
/// is bit `k`, the page is `2^(k+1)` bytes.
fn other_size(pte: u64) -> u64 {
    let k = 12 + ((pte & ADDR_MASK) >> 12).trailing_ones();
    if k >= 51 { 1 << 52 } else { 1 << (k + 1) }
}

/// A directory entry at `level` pointing at a level-`next` table skips the
/// levels between: their index bits of `iova` must be zero.
fn skipped_bits_clear(iova: u64, level: u8, next: u8) -> bool {
    let lo = 12 + 9 * u32::from(next);
    let hi = shift(level);
    hi <= lo || (iova >> lo) & ((1u64 << (hi - lo)) - 1) == 0
}

fn insert_bounded<K: Copy + Eq + std::hash::Hash, V>(map: &mut HashMap<K, V>, k: K, v: V) {
    if map.len() >= PDE_CACHE_CAPACITY.max(IOTLB_CAPACITY)
        && let Some(&victim) = map.keys().next()
    {
        map.remove(&victim);
    }
    map.insert(k, v);
}

impl Caches {
    /// IOTLB entries cached now.
    pub fn iotlb_len(&self) -> usize {
        self.iotlb.len()
    }

    /// Page-directory entries cached now.
    pub fn pde_len(&self) -> usize {
        self.pde.len()
    }

    /// Not-present answers cached now.
    pub fn not_present_len(&self) -> usize {
        self.not_present.len()
    }

    /// The cached answer for `iova` of `domain`.
    pub fn lookup(&self, domain: u16, iova: u64) -> Lookup {
        let mut sizes = self.sizes_seen;
        while sizes != 0 {
            let size = 1u64 << sizes.trailing_zeros();
            sizes &= sizes - 1;
            if let Some(e) = self.iotlb.get(&(domain, iova & !(size - 1)))
                && e.size == size
            {
                return Lookup::Hit(*e);
            }
        }
        if self.not_present.contains(&(domain, iova & !0xFFF)) {
            return Lookup::NotPresent;
        }
        Lookup::Miss
    }

    /// Walks from `root` through `mode` levels for `iova` of `domain`,
    /// using and filling the page-directory cache, and caches the result:
    /// the leaf in the IOTLB, a miss in the not-present cache when
    /// `np_cache`. `None`: not present.
    pub fn walk(
        &mut self,
        phys: &PhysArena,
        domain: u16,
        root: u64,
        mode: u8,
        iova: u64,
        np_cache: bool,
    ) -> Option<IotlbEntry> {
        let found = self.walk_uncached(phys, domain, root, mode, iova);
        match found {
            Some(e) => {
                if self.iotlb.len() >= IOTLB_CAPACITY
                    && let Some(&victim) = self.iotlb.keys().next()
                {
                    self.iotlb.remove(&victim);
                }
                self.iotlb.insert((domain, iova & !(e.size - 1)), e);
                self.sizes_seen |= e.size;
            }
            None if np_cache => {
                if self.not_present.len() >= PDE_CACHE_CAPACITY
                    && let Some(&victim) = self.not_present.iter().next()
                {
                    self.not_present.remove(&victim);
                }
                self.not_present.insert((domain, iova & !0xFFF));
            }
            None => {}
        }
        found
    }

    fn walk_uncached(
        &mut self,
        phys: &PhysArena,
        domain: u16,
        root: u64,
        mode: u8,
        iova: u64,
    ) -> Option<IotlbEntry> {
        let reach = 12 + 9 * u32::from(mode);
        if mode == 0 || (reach < 64 && iova >> reach != 0) {
            return None;
        }
        let (mut table, mut level) = (root, mode);
        let (mut read, mut write) = (true, true);
        loop {
            let key = (domain, level, iova >> shift(level));
            if let Some(p) = self.pde.get(&key) {
                // A cached directory entry: the walk continues where it
                // pointed when it was cached, whatever memory holds now.
                if !skipped_bits_clear(iova, level, p.level) {
                    return None;
                }
                table = p.table;
                read &= p.read;
                write &= p.write;
                level = p.level;
                continue;
            }
            let sh = shift(level);
            let pte = phys.read_u64(table + ((iova >> sh) & 0x1FF) * 8)?;
            if pte & 1 == 0 {
                return None;
            }
            read &= pte & (1 << 61) != 0;
            write &= pte & (1 << 62) != 0;
            let next = ((pte >> 9) & 7) as u8;
            let size = match next {
                0 => 1u64 << sh,
                7 => other_size(pte),
                n if n < level => {
                    if !skipped_bits_clear(iova, level, n) {
                        return None;
                    }
                    let entry = PdeEntry {
                        table: pte & ADDR_MASK,
                        level: n,
                        read: pte & (1 << 61) != 0,
                        write: pte & (1 << 62) != 0,
                    };
                    insert_bounded(&mut self.pde, key, entry);
                    table = entry.table;
                    level = n;
                    continue;
                }
                _ => return None,
            };
            return Some(IotlbEntry {
                phys: (pte & ADDR_MASK) & !(size - 1),
                size,
                read,
                write,
            });
        }
    }

    /// `INV_IOMMU_PAGES` of `[start, end)` in `domain`: leaves and
    /// not-present answers overlapping it, and with `pde` the directory
    /// entries whose block overlaps it. Returns the IOTLB entries dropped.
    pub fn invalidate(&mut self, domain: u16, start: u64, end: u64, pde: bool) -> usize {
        let overlaps = |base: u64, size: u64| base < end && base.saturating_add(size) > start;
        let before = self.iotlb.len();
        self.iotlb
            .retain(|&(d, page), e| d != domain || !overlaps(page, e.size));
        self.not_present
            .retain(|&(d, page)| d != domain || !overlaps(page, 4096));
        if pde {
            self.pde.retain(|&(d, level, block), _| {
                let sh = shift(level);
                let base = block.checked_shl(sh).unwrap_or(u64::MAX);
                d != domain || !overlaps(base, 1u64.checked_shl(sh).unwrap_or(u64::MAX))
            });
        }
        before - self.iotlb.len()
    }

    /// `INV_ALL`: every cached translation of every domain.
    pub fn clear(&mut self) -> usize {
        let n = self.iotlb.len();
        self.iotlb.clear();
        self.pde.clear();
        self.not_present.clear();
        n
    }
}
