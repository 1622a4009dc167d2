//! I/O page tables: map, unmap, translate, for any vendor's entry format.
//!
//! Tables are 4 KiB arrays of 512 eight-byte entries in [`PageTableMemory`],
//! encoded and decoded by a [`PageTableFormat`] (AMD-Vi v1 by default, see
//! [`crate::pte`]; the unit says which, see
//! [`crate::unit::IommuUnit::page_table_format`]). Levels are
//! numbered as the hardware does: a level-1 table holds 4 KiB leaves, level 2
//! covers 2 MiB per entry, level 3 1 GiB, and the index into a level-`L`
//! table is `(iova >> (12 + 9 * (L - 1))) & 0x1FF`. A table starts with the
//! levels it is created with (3: 39-bit IOVAs) and grows a level (a new root
//! whose entry 0 points at the old one) whenever an IOVA needs it, up to the
//! configured maximum. The root therefore changes: the device's entry in the
//! unit must be rewritten from [`PageTable::root`] and [`PageTable::levels`]
//! after a map.
//!
//! Present-entry counts per table are kept beside the tables (the hardware
//! format has no spare bits for it), so an emptied table is found and freed
//! in O(1) instead of by scanning 512 entries.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use syscall::error::{EEXIST, EINVAL, ENOENT, Error, Result};

use crate::format::{Entry, PageTableFormat};
use crate::phys::PageTableMemory;
pub use crate::pte::Access;
use crate::pte::{AMD_V1, PHYS_LIMIT};

/// 4 KiB.
pub const PAGE_4K: u64 = 1 << 12;
/// 2 MiB: a level-2 leaf.
pub const PAGE_2M: u64 = 1 << 21;
/// 1 GiB: a level-3 leaf.
pub const PAGE_1G: u64 = 1 << 30;
/// Levels of a fresh table (39-bit IOVAs).
pub const INITIAL_LEVELS: u8 = 3;
/// Most levels the AMD-Vi v1 format allows.
pub const MAX_LEVELS: u8 = 6;
const ENTRIES: u64 = 512;

/// Which leaf sizes [`PageTable::map`] may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PagePolicy {
    /// The largest of 1 GiB / 2 MiB / 4 KiB that the IOVA, the physical
    /// address and the remaining length allow.
    #[default]
    Largest,
    /// 4 KiB leaves only (for comparison and for debugging).
    Only4K,
}

/// The result of a successful translation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Translation {
    /// The physical address of the translated byte.
    pub phys: u64,
    /// The leaf's permissions.
    pub access: Access,
    /// The size of the leaf that maps it (4 KiB, 2 MiB or 1 GiB).
    pub page_size: u64,
}

/// Hashes table addresses (4 KiB multiples) by multiplication: the keys are
/// already well spread, SipHash would only cost time on every map.
#[derive(Default)]
struct TableHasher(u64);

impl Hasher for TableHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_u64(&mut self, value: u64) {
        self.0 = (value >> 12).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

const fn shift(level: u8) -> u32 {
    12 + 9 * (level as u32 - 1)
}

const fn entry_size(level: u8) -> u64 {
    1 << shift(level)
}

const fn index(level: u8, iova: u64) -> u64 {
    (iova >> shift(level)) & (ENTRIES - 1)
}

/// Whether `levels` levels reach IOVA `last`.
const fn covers(levels: u8, last: u64) -> bool {
    let bits = 12 + 9 * levels as u32;
    bits >= 64 || last >> bits == 0
}

/// One domain's I/O page tables.
#[derive(Debug)]
pub struct PageTable {
    format: &'static dyn PageTableFormat,
    root: u64,
    levels: u8,
    max_levels: u8,
    /// Present entries per table (including the root).
    counts: HashMap<u64, u16, BuildHasherDefault<TableHasher>>,
    /// Tables taken out of the tree, not yet freed.
    gathered: Vec<u64>,
    /// Linked tables other than the root that hold no entry: while there
    /// are none, [`PageTable::prune`] has nothing to do and returns at once.
    empty_linked: usize,
}

impl std::fmt::Debug for TableHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TableHasher")
    }
}

impl PageTable {
    /// An empty 3-level table that may grow to `max_levels` (3..=6; 4 gives
    /// 48-bit IOVAs). `EINVAL` for other level counts, `ENOMEM` from memory.
    /// The table uses the AMD-Vi v1 format.
    pub fn new<M: PageTableMemory + ?Sized>(mem: &mut M, max_levels: u8) -> Result<Self> {
        Self::with_format(mem, &AMD_V1, INITIAL_LEVELS, max_levels)
    }

    /// An empty table in `format` with `levels` levels that may grow to
    /// `max_levels`. `EINVAL` unless `levels <= max_levels` and both lie in
    /// the format's [`level_range`](PageTableFormat::level_range).
    pub fn with_format<M: PageTableMemory + ?Sized>(
        mem: &mut M,
        format: &'static dyn PageTableFormat,
        levels: u8,
        max_levels: u8,
    ) -> Result<Self> {
        let range = format.level_range();
        if levels > max_levels || !range.contains(&levels) || !range.contains(&max_levels) {
            return Err(Error::new(EINVAL));
        }
        let root = mem.alloc_table()?;
        let mut counts = HashMap::default();
        counts.insert(root, 0);
        Ok(Self {
            format,
            root,
            levels,
            max_levels,
            counts,
            gathered: Vec::new(),
            empty_linked: 0,
        })
    }

    /// The entry format.
    pub fn format(&self) -> &'static dyn PageTableFormat {
        self.format
    }

    /// Physical address of the root table (for the device table entry).
    pub fn root(&self) -> u64 {
        self.root
    }

    /// Number of levels (the device table entry's Mode field).
    pub fn levels(&self) -> u8 {
        self.levels
    }

    /// Highest number of levels this table may grow to.
    pub fn max_levels(&self) -> u8 {
        self.max_levels
    }

    /// Tables in use, root included.
    pub fn table_count(&self) -> usize {
        self.counts.len()
    }

    /// Takes `table` out of the tree without freeing it: it waits in the
    /// gather list for an invalidation that covers it.
    fn detach(&mut self, table: u64) {
        if self.counts.remove(&table) == Some(0) && table != self.root {
            self.empty_linked = self.empty_linked.saturating_sub(1);
        }
        self.gathered.push(table);
    }

    /// Links a new, empty table into the bookkeeping.
    fn link_empty(&mut self, table: u64) {
        self.counts.insert(table, 0);
        self.empty_linked += 1;
    }

    /// Tables detached by unmaps (and by failed maps or growth) since the
    /// last call. The unit may still hold directory entries pointing into
    /// them, or be walking them: the caller frees them with
    /// [`PageTableMemory::free_table`] only after an invalidation covering
    /// the range they served (directory entries included: AMD PDE=1) has
    /// completed (Linux's `iommu_iotlb_gather` freelist).
    pub fn take_gathered(&mut self) -> Vec<u64> {
        std::mem::take(&mut self.gathered)
    }

    /// Tables waiting in the gather list.
    pub fn gathered_count(&self) -> usize {
        self.gathered.len()
    }

    fn count(&self, table: u64) -> u16 {
        self.counts.get(&table).copied().unwrap_or(0)
    }

    fn add_count(&mut self, table: u64, delta: i32) {
        let c = self.counts.entry(table).or_insert(0);
        let old = *c;
        *c = (i32::from(old) + delta).clamp(0, ENTRIES as i32) as u16;
        let new = *c;
        if table != self.root {
            if old == 0 && new > 0 {
                self.empty_linked = self.empty_linked.saturating_sub(1);
            } else if old > 0 && new == 0 {
                self.empty_linked += 1;
            }
        }
    }

    fn check_range(iova: u64, size: u64) -> Result<u64> {
        if size == 0 || !iova.is_multiple_of(PAGE_4K) || !size.is_multiple_of(PAGE_4K) {
            return Err(Error::new(EINVAL));
        }
        iova.checked_add(size).ok_or(Error::new(EINVAL))
    }

    /// Adds levels until `last` is reachable.
    fn grow_to<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, last: u64) -> Result<()> {
        while !covers(self.levels, last) {
            if self.levels >= self.max_levels {
                return Err(Error::new(EINVAL));
            }
            let new_root = mem.alloc_table()?;
            if self.count(self.root) == 0 {
                // Nothing below the old root: chaining it would leave an
                // empty table nobody frees.
                // The unit may still walk the old root (its cached device
                // entry names it) until the entry is rewritten.
                self.detach(self.root);
                self.counts.insert(new_root, 0);
            } else {
                mem.write_u64(new_root, self.format.directory(self.root, self.levels + 1));
                self.counts.insert(new_root, 1);
            }
            self.root = new_root;
            self.levels += 1;
        }
        Ok(())
    }

    /// The leaf level to use at `iova` mapping `phys` with `remaining` bytes left.
    fn leaf_level(&self, policy: PagePolicy, iova: u64, phys: u64, remaining: u64) -> u8 {
        if policy == PagePolicy::Largest {
            for level in (2..=self.format.max_leaf_level().min(3)).rev() {
                let size = entry_size(level);
                if (iova | phys).is_multiple_of(size) && remaining >= size {
                    return level;
                }
            }
        }
        1
    }

    /// Maps `[iova, iova + size)` to `[phys, phys + size)`.
    ///
    /// All three must be 4 KiB aligned and `size > 0` (`EINVAL`); the
    /// physical range must fit the 52-bit address field (`EINVAL`); an IOVA
    /// beyond `max_levels` is `EINVAL`. If any page of the range is already
    /// mapped the call fails with `EEXIST` and maps nothing; `ENOMEM` from
    /// the table memory also leaves the table as it was (except for growth).
    pub fn map<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        iova: u64,
        phys: u64,
        size: u64,
        access: Access,
        policy: PagePolicy,
    ) -> Result<()> {
        let end = Self::check_range(iova, size)?;
        if !phys.is_multiple_of(PAGE_4K) || phys.checked_add(size).is_none_or(|e| e > PHYS_LIMIT) {
            return Err(Error::new(EINVAL));
        }
        self.grow_to(mem, end - 1)?;
        let mut cur = iova;
        while cur < end {
            if let Err(error) = self.map_run(mem, &mut cur, iova, phys, end, access, policy) {
                if cur > iova {
                    self.clear(mem, self.root, self.levels, iova, cur);
                }
                // Tables this call linked in (and any other empty ones in
                // the range) go to the gather list.
                self.prune(mem, iova, end - iova);
                return Err(error);
            }
        }
        Ok(())
    }

    /// Maps as many consecutive leaves of one level as fit in one table,
    /// starting at `*cur` (which maps to `phys + (*cur - iova)`), and
    /// advances `*cur` past every leaf written, also when it fails.
    #[allow(clippy::too_many_arguments)]
    fn map_run<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        cur: &mut u64,
        iova: u64,
        phys: u64,
        end: u64,
        access: Access,
        policy: PagePolicy,
    ) -> Result<()> {
        let mut phys = phys + (*cur - iova);
        let leaf_level = self.leaf_level(policy, *cur, phys, end - *cur);
        let format = self.format;
        let mut table = self.root;
        let mut level = self.levels;
        while level > leaf_level {
            let slot = table + index(level, *cur) * 8;
            match format.decode(mem.read_u64(slot), level) {
                Entry::Absent => {
                    let child = mem.alloc_table()?;
                    mem.write_u64(slot, format.directory(child, level));
                    self.add_count(table, 1);
                    self.link_empty(child);
                    table = child;
                }
                Entry::Table {
                    table: next,
                    next_level,
                } if next_level == level - 1 => table = next,
                _ => return Err(Error::new(EEXIST)),
            }
            level -= 1;
        }
        let size = entry_size(leaf_level);
        let mut idx = index(leaf_level, *cur);
        let mut written = 0;
        let result = loop {
            let slot = table + idx * 8;
            if format.decode(mem.read_u64(slot), leaf_level) != Entry::Absent
                && !(leaf_level > 1 && self.prune_slot(mem, table, leaf_level, *cur, *cur + size))
            {
                // A leaf, or a table with something mapped below it. (An
                // emptied table an unmap left linked is pruned instead.)
                break Err(Error::new(EEXIST));
            }
            mem.write_u64(slot, format.leaf(phys, leaf_level, access));
            written += 1;
            *cur += size;
            phys += size;
            idx += 1;
            if *cur >= end
                || idx == ENTRIES
                || self.leaf_level(policy, *cur, phys, end - *cur) != leaf_level
            {
                break Ok(());
            }
        };
        // One count update per run, not per leaf.
        self.add_count(table, written);
        result
    }

    /// Unmaps `[iova, iova + size)`, which must be mapped in full
    /// (`ENOENT` otherwise, and nothing changes). Superpages that straddle
    /// either end are split first; emptied tables stay linked until
    /// [`prune`](Self::prune) detaches them into the gather list
    /// ([`take_gathered`](Self::take_gathered)), never freed here. `ENOMEM` can only come from a split and leaves every
    /// translation as it was.
    pub fn unmap<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        iova: u64,
        size: u64,
    ) -> Result<()> {
        let end = Self::check_range(iova, size)?;
        if size == PAGE_4K && self.unmap_4k_leaf(mem, iova) {
            return Ok(());
        }
        if !covers(self.levels, end - 1)
            || self.mapped_bytes(mem, self.root, self.levels, iova, end) != size
        {
            return Err(Error::new(ENOENT));
        }
        self.split_at(mem, iova)?;
        self.split_at(mem, end)?;
        self.clear(mem, self.root, self.levels, iova, end);
        Ok(())
    }

    /// The common case of [`unmap`](Self::unmap), one 4 KiB leaf, in one
    /// walk instead of four (check, two splits, clear): clears the level-1
    /// leaf at `iova` and returns true; returns false, changing nothing,
    /// when `iova` is not mapped by a 4 KiB leaf (absent, a superpage, a
    /// foreign entry), leaving that to the general path.
    fn unmap_4k_leaf<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, iova: u64) -> bool {
        if !covers(self.levels, iova) {
            return false;
        }
        let format = self.format;
        let mut table = self.root;
        let mut level = self.levels;
        while level > 1 {
            match format.decode(mem.read_u64(table + index(level, iova) * 8), level) {
                Entry::Table {
                    table: next,
                    next_level,
                } if next_level == level - 1 => {
                    table = next;
                }
                _ => return false,
            }
            level -= 1;
        }
        let slot = table + index(1, iova) * 8;
        if !matches!(format.decode(mem.read_u64(slot), 1), Entry::Leaf { .. }) {
            return false;
        }
        mem.write_u64(slot, 0);
        self.add_count(table, -1);
        true
    }

    /// Bytes of `[start, end)` mapped under `table` (a level-`level` table).
    fn mapped_bytes<M: PageTableMemory + ?Sized>(
        &self,
        mem: &M,
        table: u64,
        level: u8,
        start: u64,
        end: u64,
    ) -> u64 {
        let size = entry_size(level);
        let mut total = 0;
        let mut cur = start;
        while cur < end {
            let entry_start = cur & !(size - 1);
            let entry_end = entry_start.saturating_add(size).min(end);
            match self
                .format
                .decode(mem.read_u64(table + index(level, cur) * 8), level)
            {
                Entry::Leaf { .. } => total += entry_end - cur,
                Entry::Table { table, next_level } if level > 1 && next_level == level - 1 => {
                    total += self.mapped_bytes(mem, table, level - 1, cur, entry_end);
                }
                _ => {}
            }
            cur = entry_end;
        }
        total
    }

    /// Splits the superpage containing `addr` (if any) until `addr` is a
    /// leaf boundary.
    fn split_at<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, addr: u64) -> Result<()> {
        if addr.is_multiple_of(PAGE_1G) || !covers(self.levels, addr) {
            return Ok(());
        }
        let mut table = self.root;
        let mut level = self.levels;
        while level > 1 {
            let slot = table + index(level, addr) * 8;
            match self.format.decode(mem.read_u64(slot), level) {
                Entry::Leaf { phys, access } => {
                    if addr.is_multiple_of(entry_size(level)) {
                        return Ok(());
                    }
                    let child = mem.alloc_table()?;
                    let child_size = entry_size(level - 1);
                    for i in 0..ENTRIES {
                        mem.write_u64(
                            child + i * 8,
                            self.format.leaf(phys + i * child_size, level - 1, access),
                        );
                    }
                    self.counts.insert(child, ENTRIES as u16);
                    // The full child is in memory before the entry that
                    // makes the unit walk it.
                    mem.write_u64(slot, self.format.directory(child, level));
                    table = child;
                }
                Entry::Table { table: next, .. } => table = next,
                Entry::Absent | Entry::Foreign => return Ok(()),
            }
            level -= 1;
        }
        Ok(())
    }

    /// Clears every leaf in `[start, end)` (leaves are already split to fit).
    /// Tables that become empty stay linked (see [`prune`](Self::prune)).
    /// Never allocates, never fails.
    fn clear<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        table: u64,
        level: u8,
        start: u64,
        end: u64,
    ) {
        let size = entry_size(level);
        let mut cur = start;
        let mut cleared = 0;
        while cur < end {
            let entry_start = cur & !(size - 1);
            let entry_end = entry_start.saturating_add(size).min(end);
            let slot = table + index(level, cur) * 8;
            match self.format.decode(mem.read_u64(slot), level) {
                Entry::Leaf { .. } => {
                    mem.write_u64(slot, 0);
                    cleared += 1;
                }
                Entry::Table {
                    table: child,
                    next_level,
                } if level > 1 && next_level == level - 1 => {
                    self.clear(mem, child, level - 1, cur, entry_end);
                }
                _ => {}
            }
            cur = entry_end;
        }
        self.add_count(table, -cleared);
    }

    /// Detaches every table under `[iova, iova + size)` that holds nothing
    /// (no leaf below it) into the gather list, clearing the directory
    /// entries that pointed at them; the root stays. Unmaps leave emptied
    /// tables linked, so a map before the next invalidation reuses them; the
    /// caller prunes right before the invalidation that lets it free them.
    pub fn prune<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, iova: u64, size: u64) {
        if self.empty_linked == 0 {
            return;
        }
        let end = iova.saturating_add(size);
        let reach = if 12 + 9 * u32::from(self.levels) >= 64 {
            u64::MAX
        } else {
            1u64 << (12 + 9 * u32::from(self.levels))
        };
        if iova < reach {
            self.prune_level(mem, self.root, self.levels, iova, end.min(reach));
        }
    }

    /// [`prune`](Self::prune) of everything the table reaches.
    pub fn prune_all<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M) {
        self.prune(mem, 0, u64::MAX);
    }

    fn prune_level<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        table: u64,
        level: u8,
        start: u64,
        end: u64,
    ) {
        if level <= 1 || self.count(table) == 0 {
            return;
        }
        let size = entry_size(level);
        let mut cur = start;
        while cur < end {
            let entry_end = (cur & !(size - 1)).saturating_add(size).min(end);
            self.prune_slot(mem, table, level, cur, entry_end);
            cur = entry_end;
        }
    }

    /// Prunes below the entry of `table` (a level-`level` table) covering
    /// `[start, end)`, and detaches its child if that is left empty. True
    /// if the entry is now absent.
    fn prune_slot<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        table: u64,
        level: u8,
        start: u64,
        end: u64,
    ) -> bool {
        let slot = table + index(level, start) * 8;
        match self.format.decode(mem.read_u64(slot), level) {
            Entry::Absent => true,
            Entry::Table {
                table: child,
                next_level,
            } if level > 1 && next_level == level - 1 => {
                self.prune_level(mem, child, level - 1, start, end);
                if self.count(child) != 0 {
                    return false;
                }
                mem.write_u64(slot, 0);
                self.detach(child);
                self.add_count(table, -1);
                true
            }
            _ => false,
        }
    }

    /// Walks the tables as the IOMMU would. `None` for a not-present entry,
    /// an IOVA beyond the table's reach, or an entry this crate never writes
    /// ([`Entry::Foreign`]).
    pub fn translate<M: PageTableMemory + ?Sized>(
        &self,
        mem: &M,
        iova: u64,
    ) -> Option<Translation> {
        if !covers(self.levels, iova) {
            return None;
        }
        let mut table = self.root;
        let mut level = self.levels;
        loop {
            match self
                .format
                .decode(mem.read_u64(table + index(level, iova) * 8), level)
            {
                Entry::Leaf { phys, access } => {
                    let page_size = entry_size(level);
                    return Some(Translation {
                        phys: (phys & !(page_size - 1)) | (iova & (page_size - 1)),
                        access,
                        page_size,
                    });
                }
                Entry::Table {
                    table: next,
                    next_level,
                } if next_level < level && next_level > 0 => {
                    table = next;
                    level = next_level;
                }
                _ => return None,
            }
        }
    }

    /// Frees every table, root and gathered ones included. The caller must
    /// have made sure no unit can walk them any more.
    pub fn destroy<M: PageTableMemory + ?Sized>(mut self, mem: &mut M) {
        let mut tables: Vec<u64> = self.counts.drain().map(|(table, _)| table).collect();
        tables.append(&mut self.gathered);
        for table in tables {
            mem.free_table(table);
        }
    }
}
