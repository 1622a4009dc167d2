//! A domain: one I/O address space — an IOVA allocator plus the page tables
//! (in the unit's format) that the devices assigned to it are translated
//! through.
//!
//! Invalidation is deliberately not here: [`Domain::unmap`] returns the
//! range whose IOTLB entries the caller must invalidate (strictly, before
//! answering the client), and [`Domain::unmap_deferred`] +
//! [`Domain::release_iova`] let a lazy flush queue keep the IOVA out of
//! circulation until a later flush has completed. Page-table pages emptied
//! by an unmap are never freed here either: they stay linked until the
//! caller prunes them ([`Domain::prune_tables`]) into the gather list
//! ([`Domain::take_gathered_tables`]) right before its invalidation.

use std::cell::Cell;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use syscall::error::{EINVAL, ENOENT, ENOSPC, Error, Result};

use crate::format::PageTableFormat;
use crate::iova::{IovaAllocator, WindowUsage};
use crate::page_table::{Access, PagePolicy, PageTable, Translation};
use crate::phys::PageTableMemory;
use crate::protocol::{MapFlags, PAGE_SIZE};
use crate::pte::AMD_V1;

/// How a domain is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainConfig {
    /// IOMMU address width: 39 (3-level tables) or 48 (up to 4 levels); any
    /// width from 32 to 63 works, the tables grow to the levels it needs.
    pub address_bits: u32,
    /// The narrowest DMA mask among the devices (IOVAs stay within it).
    pub dma_mask: u64,
    /// Most bytes that may be mapped at once (`ENOSPC` past it).
    pub quota_bytes: u64,
    /// Leaf sizes the page tables may use.
    pub page_policy: PagePolicy,
}

impl Default for DomainConfig {
    /// 48-bit, 64-bit DMA mask, no quota, superpages allowed.
    fn default() -> Self {
        Self {
            address_bits: 48,
            dma_mask: u64::MAX,
            quota_bytes: u64::MAX,
            page_policy: PagePolicy::Largest,
        }
    }
}

/// One mapping as the client asked for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mapping {
    /// First physical address.
    pub phys: u64,
    /// Length in bytes.
    pub size: u64,
    /// Flags of the MAP request.
    pub flags: MapFlags,
}

/// A removed mapping: the IOVA range the caller must invalidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Unmapped {
    /// First IOVA of the range.
    pub iova: u64,
    /// Length of the range (what UNMAP answers).
    pub size: u64,
    /// The mapping that was there.
    pub mapping: Mapping,
}

/// Counters of one domain.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DomainStats {
    /// Successful maps.
    pub maps: u64,
    /// Successful unmaps.
    pub unmaps: u64,
    /// Translations asked for.
    pub translations: u64,
    /// Maps refused (any error).
    pub failed_maps: u64,
    /// Unmaps refused.
    pub failed_unmaps: u64,
    /// Live mappings.
    pub mappings: u64,
    /// Bytes mapped now.
    pub mapped_bytes: u64,
    /// Page-table pages in use.
    pub page_tables: u64,
}

/// Page-table levels needed for `address_bits`.
fn levels_for(address_bits: u32) -> u8 {
    (address_bits.saturating_sub(12).div_ceil(9)).clamp(3, 6) as u8
}

fn access(flags: MapFlags) -> Access {
    Access {
        read: flags.contains(MapFlags::READ),
        write: flags.contains(MapFlags::WRITE),
    }
}

/// One I/O address space.
#[derive(Debug)]
pub struct Domain {
    id: u16,
    config: DomainConfig,
    iova: IovaAllocator,
    tables: PageTable,
    /// Mapping records by first IOVA. A hash map (std's, keyed per process,
    /// so a client choosing its IOVAs cannot make its lookups collide):
    /// MAP and UNMAP only ever look up exact IOVAs, and it costs a third of
    /// an ordered tree's insert + remove on the per-I/O path.
    records: HashMap<u64, Mapping>,
    mapped_bytes: u64,
    stats: DomainStats,
    translations: Cell<u64>,
}

impl Domain {
    /// A domain with empty AMD-Vi v1 page tables (one root table from `mem`).
    pub fn new<M: PageTableMemory + ?Sized>(
        id: u16,
        config: DomainConfig,
        mem: &mut M,
    ) -> Result<Self> {
        Self::with_format(id, config, &AMD_V1, mem)
    }

    /// A domain with empty page tables in `format`: as few levels as the
    /// format allows, growing up to what `config.address_bits` needs (within
    /// the format's range).
    pub fn with_format<M: PageTableMemory + ?Sized>(
        id: u16,
        config: DomainConfig,
        format: &'static dyn PageTableFormat,
        mem: &mut M,
    ) -> Result<Self> {
        let iova = IovaAllocator::new(config.address_bits)?;
        let range = format.level_range();
        let max = levels_for(config.address_bits).clamp(*range.start(), *range.end());
        let tables = PageTable::with_format(mem, format, *range.start(), max)?;
        Ok(Self {
            id,
            config,
            iova,
            tables,
            records: HashMap::new(),
            mapped_bytes: 0,
            stats: DomainStats::default(),
            translations: Cell::new(0),
        })
    }

    /// The domain id (the device table entry's DomainID).
    pub fn id(&self) -> u16 {
        self.id
    }

    /// The configuration.
    pub fn config(&self) -> &DomainConfig {
        &self.config
    }

    /// Root table physical address (device table entry root pointer).
    /// Changes when the tables grow a level.
    pub fn root(&self) -> u64 {
        self.tables.root()
    }

    /// Page-table levels (device table entry Mode).
    pub fn levels(&self) -> u8 {
        self.tables.levels()
    }

    /// Narrows (or widens) the DMA mask for future allocations, e.g. when a
    /// 32-bit device is assigned.
    pub fn set_dma_mask(&mut self, dma_mask: u64) {
        self.config.dma_mask = dma_mask;
    }

    /// Sets the mapped-bytes quota (existing mappings are kept).
    pub fn set_quota(&mut self, quota_bytes: u64) {
        self.config.quota_bytes = quota_bytes;
    }

    /// Maps `size` bytes at `phys` and returns the IOVA: `wanted_iova` if
    /// given (`EEXIST` if taken, `EINVAL` if outside the DMA mask or
    /// reserved), otherwise one from the allocator. `EINVAL` for a zero or
    /// unaligned size or address, `ENOSPC` past the quota or when the IOVA
    /// space is full, `ENOMEM` when no page table can be allocated. On any
    /// error nothing is mapped.
    pub fn map<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        phys: u64,
        size: u64,
        flags: MapFlags,
        wanted_iova: Option<u64>,
    ) -> Result<u64> {
        let result = self.try_map(mem, phys, size, flags, wanted_iova);
        match result {
            Ok(_) => self.stats.maps += 1,
            Err(_) => self.stats.failed_maps += 1,
        }
        result
    }

    fn try_map<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        phys: u64,
        size: u64,
        flags: MapFlags,
        wanted_iova: Option<u64>,
    ) -> Result<u64> {
        if size == 0 || !size.is_multiple_of(PAGE_SIZE) || !phys.is_multiple_of(PAGE_SIZE) {
            return Err(Error::new(EINVAL));
        }
        if self
            .mapped_bytes
            .checked_add(size)
            .is_none_or(|total| total > self.config.quota_bytes)
        {
            return Err(Error::new(ENOSPC));
        }
        let iova = match wanted_iova {
            Some(iova) => {
                let last = iova.checked_add(size - 1).ok_or(Error::new(EINVAL))?;
                if last > self.config.dma_mask {
                    return Err(Error::new(EINVAL));
                }
                self.iova.alloc_at(iova, size)?;
                iova
            }
            None => self.iova.alloc(size, self.config.dma_mask)?,
        };
        if let Err(error) = self.tables.map(
            mem,
            iova,
            phys,
            size,
            access(flags),
            self.config.page_policy,
        ) {
            let _ = self.iova.free(iova, size);
            return Err(error);
        }
        self.records.insert(iova, Mapping { phys, size, flags });
        self.mapped_bytes += size;
        Ok(iova)
    }

    fn remove<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, iova: u64) -> Result<Unmapped> {
        // One lookup: the entry found is the one removed.
        let Entry::Occupied(record) = self.records.entry(iova) else {
            self.stats.failed_unmaps += 1;
            return Err(Error::new(ENOENT));
        };
        let mapping = *record.get();
        if let Err(error) = self.tables.unmap(mem, iova, mapping.size) {
            self.stats.failed_unmaps += 1;
            return Err(error);
        }
        record.remove();
        self.mapped_bytes -= mapping.size;
        self.stats.unmaps += 1;
        Ok(Unmapped {
            iova,
            size: mapping.size,
            mapping,
        })
    }

    /// Removes the mapping that starts at `iova` (`ENOENT` if none does) and
    /// frees its IOVA at once. The caller must invalidate the returned range
    /// before the IOVA can be handed out again — i.e. before it serves the
    /// next MAP (strict mode).
    pub fn unmap<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        iova: u64,
    ) -> Result<Unmapped> {
        let unmapped = self.remove(mem, iova)?;
        self.iova.free(unmapped.iova, unmapped.size)?;
        Ok(unmapped)
    }

    /// Like [`unmap`](Self::unmap) but keeps the IOVA allocated: hand the
    /// result to [`release_iova`](Self::release_iova) once an invalidation
    /// issued after this call has completed (lazy mode).
    pub fn unmap_deferred<M: PageTableMemory + ?Sized>(
        &mut self,
        mem: &mut M,
        iova: u64,
    ) -> Result<Unmapped> {
        self.remove(mem, iova)
    }

    /// Returns the IOVA of a deferred unmap to the allocator.
    pub fn release_iova(&mut self, unmapped: Unmapped) -> Result<()> {
        self.iova.free(unmapped.iova, unmapped.size)
    }

    /// Page-table pages the tables detached since the last call (by unmaps,
    /// failed maps and growth). They must stay allocated until an
    /// invalidation covering them (directory entries included) completed;
    /// then [`free_tables`](Self::free_tables) returns them.
    pub fn take_gathered_tables(&mut self) -> Vec<u64> {
        self.tables.take_gathered()
    }

    /// Detaches the page-table pages under `[iova, iova + size)` that
    /// unmaps left empty into the gather list (see
    /// [`PageTable::prune`]): call it right before the invalidation that
    /// covers the range.
    pub fn prune_tables<M: PageTableMemory + ?Sized>(&mut self, mem: &mut M, iova: u64, size: u64) {
        self.tables.prune(mem, iova, size);
    }

    /// Frees page-table pages from [`take_gathered_tables`](Self::take_gathered_tables).
    pub fn free_tables<M: PageTableMemory + ?Sized>(mem: &mut M, tables: Vec<u64>) {
        for table in tables {
            mem.free_table(table);
        }
    }

    /// What the IOMMU would translate `iova` to.
    pub fn translate<M: PageTableMemory + ?Sized>(
        &self,
        mem: &M,
        iova: u64,
    ) -> Option<Translation> {
        self.translations.set(self.translations.get() + 1);
        self.tables.translate(mem, iova)
    }

    /// The mapping that starts at `iova`.
    pub fn mapping(&self, iova: u64) -> Option<&Mapping> {
        self.records.get(&iova)
    }

    /// All mappings, in IOVA order.
    pub fn mappings(&self) -> impl Iterator<Item = (u64, &Mapping)> {
        let mut all: Vec<(u64, &Mapping)> =
            self.records.iter().map(|(&iova, m)| (iova, m)).collect();
        all.sort_unstable_by_key(|&(iova, _)| iova);
        all.into_iter()
    }

    /// Live mappings.
    pub fn mapping_count(&self) -> usize {
        self.records.len()
    }

    /// Bytes mapped now.
    pub fn mapped_bytes(&self) -> u64 {
        self.mapped_bytes
    }

    /// Counters.
    pub fn stats(&self) -> DomainStats {
        DomainStats {
            translations: self.translations.get(),
            mappings: self.records.len() as u64,
            mapped_bytes: self.mapped_bytes,
            page_tables: self.tables.table_count() as u64,
            ..self.stats
        }
    }

    /// IOVA space left per window.
    pub fn iova_usage(&self) -> Vec<WindowUsage> {
        self.iova.usage()
    }

    /// IOVA bytes the domain's DMA mask can still be given.
    pub fn iova_free_bytes(&self) -> u64 {
        self.iova.free_bytes(self.config.dma_mask)
    }

    /// The IOVA allocator (read-only: stats and queries).
    pub fn iova_allocator(&self) -> &IovaAllocator {
        &self.iova
    }

    /// Frees every page table. Mappings vanish with them; the caller must
    /// have detached the devices and invalidated the domain first.
    pub fn destroy<M: PageTableMemory + ?Sized>(self, mem: &mut M) {
        self.tables.destroy(mem);
    }
}
