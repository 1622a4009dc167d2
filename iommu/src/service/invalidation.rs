//! Invalidation: strict and lazy UNMAP, flushes of the deferred queue, and
//! the quarantine of IOVAs and page-table pages whose invalidation did not
//! complete. Page-table pages and IOVAs are reused only after the
//! invalidation that covers them completed.

use syscall::error::{EACCES, EBUSY, EIO, ENOENT, Error, Result};

use crate::access::Client;
use crate::domain::Domain;
use crate::flush_queue::{Deferred, Invalidation};
use crate::unit::IommuUnit;

use super::{DomainState, Iommu};

/// Whether the client may unmap `iova` of `d`: not a firmware identity
/// range (`EACCES`), not an ALLOC buffer another mapping aliases (`EBUSY`).
pub(super) fn unmappable(d: &DomainState, iova: u64) -> Result<()> {
    if d.unity.contains(&iova) {
        // The firmware's range stays while a device that needs it is here.
        return Err(Error::new(EACCES));
    }
    if d.buffers.contains_key(&iova) && d.aliases.values().any(|&b| b == iova) {
        return Err(Error::new(EBUSY));
    }
    Ok(())
}

impl Iommu {
    /// After a device's entry stopped pointing at domain `old` (or, for
    /// [`UNASSIGNED_DOMAIN_ID`](super::UNASSIGNED_DOMAIN_ID), stopped being the unassigned passthrough entry): drop what the IOTLBs
    /// hold for `old`, or the device keeps reaching its pages through cached
    /// translations. INV_DEV_ENTRY alone does not do it: QEMU's AMD-Vi caches
    /// translations per device and drops them only on INV_IOMMU_PAGES of their
    /// DomainID (`hw/i386/amd_iommu.c`), and AMD hardware showed the same stale
    /// DMA (Xen "iommu/amd-vi: flush IOMMU TLB when flushing the DTE", 2023);
    /// Linux flushes the old domain on detach too. The QEMU suite's
    /// `domain-move`, `detach` and `passthrough-unheld` scenarios fail without
    /// this (the last one through a passthrough translation left cached when the
    /// device was assigned again).
    pub(crate) fn forget_old_domain(&mut self, old: u16) -> Result<()> {
        Self::invalidate(&mut self.units, old, 0, u64::MAX)
    }

    /// Whether a unit caches not-present entries (NpCache, Caching Mode).
    pub fn caches_not_present(&self) -> bool {
        self.np_cache
    }

    /// Frees the page-table pages domain `id`'s tables detached outside an
    /// unmap (a failed map, growth) after a whole-domain invalidation; if
    /// that does not complete they wait in the flush queue instead.
    pub(super) fn settle_gathered(&mut self, id: u16) -> Result<()> {
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        let tables = d.domain.take_gathered_tables();
        if tables.is_empty() {
            return Ok(());
        }
        match Self::invalidate(&mut self.units, id, 0, u64::MAX) {
            Ok(()) => {
                self.metered(id, |s| Domain::free_tables(&mut s.memory, tables));
                Ok(())
            }
            Err(error) => {
                self.quarantine(id, None, tables);
                Err(error)
            }
        }
    }

    /// Keeps an IOVA range and page-table pages whose invalidation did not
    /// complete out of circulation until a later flush completes.
    pub(super) fn quarantine(
        &mut self,
        id: u16,
        unmapped: Option<crate::domain::Unmapped>,
        tables: Vec<u64>,
    ) {
        if unmapped.is_none() && tables.is_empty() {
            return;
        }
        if let Some(d) = self.domains.get_mut(&id) {
            let generation = d.generations.next();
            d.queue.push(Deferred { unmapped, tables }, generation);
            self.counters.quarantined += 1;
        }
    }

    /// Invalidates `[iova, iova + size)` of `domain` (`size == u64::MAX`:
    /// all of it) on every unit and waits until each unit completed it.
    pub(super) fn invalidate(
        units: &mut [Box<dyn IommuUnit>],
        domain: u16,
        iova: u64,
        size: u64,
    ) -> Result<()> {
        for unit in units.iter_mut().filter(|u| u.is_initialised()) {
            if size == u64::MAX {
                unit.invalidate_domain(domain)?;
            } else {
                unit.invalidate_range(domain, iova, size)?;
            }
        }
        for unit in units.iter_mut().filter(|u| u.is_initialised()) {
            unit.sync()?;
        }
        Ok(())
    }

    /// Unmaps the mapping starting at `iova`; returns its size.
    ///
    /// Strict: the IOTLBs no longer hold it when this returns, and only then
    /// are its IOVA and the page-table pages it emptied reused. If the
    /// invalidation does not complete, the mapping is gone from the tables
    /// but its IOVA and pages stay quarantined until a later flush completes,
    /// and the answer is `EIO`. Lazy: IOVA and pages are queued for the next
    /// flush.
    ///
    /// The firmware's identity ranges are not the client's (`EACCES`), and
    /// an ALLOC buffer another mapping of the domain still shows (a BATCH
    /// MAP from the buffer) stays until that mapping is gone (`EBUSY`).
    pub fn unmap(&mut self, id: u16, client: Client, iova: u64) -> Result<u64> {
        let d = self.domain_for_change(id, client)?;
        unmappable(d, iova)?;
        self.unmap_checked(id, iova)
    }

    /// UNMAP after the checks: the accounts, the alias record and the ALLOC
    /// buffer follow the mapping.
    pub(super) fn unmap_checked(&mut self, id: u16, iova: u64) -> Result<u64> {
        let size = self.metered(id, |s| s.unmap_owned(id, iova))?;
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        // Only once the unmap succeeded: an alias whose invalidation failed
        // keeps its buffer (the IOTLB may still reach it) until the domain goes.
        d.aliases.remove(&iova);
        let uid = d.charged_uid;
        self.accounts.add_bytes(uid, -i128::from(size));
        self.release_buffer(id, iova)?;
        Ok(size)
    }

    pub(super) fn unmap_owned(&mut self, id: u16, iova: u64) -> Result<u64> {
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        match d.invalidation {
            Invalidation::Strict => {
                let unmapped = d.domain.unmap_deferred(&mut self.memory, iova)?;
                d.domain
                    .prune_tables(&mut self.memory, unmapped.iova, unmapped.size);
                let tables = d.domain.take_gathered_tables();
                self.counters.strict_invalidations += 1;
                // With PDE=1 the range invalidation also drops the directory
                // entries pointing at the emptied tables: each of them
                // served part of this range.
                match Self::invalidate(&mut self.units, id, unmapped.iova, unmapped.size) {
                    Ok(()) => {
                        Domain::free_tables(&mut self.memory, tables);
                        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
                        d.domain.release_iova(unmapped)?;
                        Ok(unmapped.size)
                    }
                    Err(error) => {
                        log::error!(
                            "iommud: UNMAP {:#x} of domain {id}: invalidation failed ({error}); IOVA quarantined",
                            unmapped.iova
                        );
                        self.quarantine(id, Some(unmapped), tables);
                        Err(Error::new(EIO))
                    }
                }
            }
            Invalidation::Lazy => {
                // Emptied tables stay linked (a map before the flush reuses
                // them); the flush prunes and frees them.
                let unmapped = d.domain.unmap_deferred(&mut self.memory, iova)?;
                let tables = d.domain.take_gathered_tables();
                let deferred = Deferred {
                    unmapped: Some(unmapped),
                    tables,
                };
                let full = d.queue.push(deferred, d.generations.next());
                self.counters.deferred_unmaps += 1;
                if full {
                    self.flush_unmetered(id)?;
                }
                Ok(unmapped.size)
            }
        }
    }

    /// Flushes domain `id`'s IOTLB and directory entries and releases every
    /// deferred IOVA and page-table page queued before the flush started;
    /// returns how many unmaps were released.
    pub fn flush_domain(&mut self, id: u16) -> Result<usize> {
        self.metered(id, |s| s.flush_unmetered(id))
    }

    /// [`flush_domain`](Self::flush_domain) inside an already metered call.
    pub(super) fn flush_unmetered(&mut self, id: u16) -> Result<usize> {
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        if d.queue.is_empty() {
            return Ok(0);
        }
        d.generations.started += 1;
        let generation = d.generations.started;
        // Tables the queued unmaps emptied leave the tree now, before the
        // invalidation (PDE=1, whole domain) that lets them be freed.
        let ranges: Vec<(u64, u64)> = d.queue.ranges().collect();
        for (iova, size) in ranges {
            d.domain.prune_tables(&mut self.memory, iova, size);
        }
        let pruned = d.domain.take_gathered_tables();
        if let Err(error) = Self::invalidate(&mut self.units, id, 0, u64::MAX) {
            self.quarantine(id, None, pruned);
            return Err(error);
        }
        self.counters.lazy_flushes += 1;
        Domain::free_tables(&mut self.memory, pruned);
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        d.generations.completed = generation;
        let released = d.queue.release(generation);
        let count = released.iter().filter(|r| r.unmapped.is_some()).count();
        for deferred in released {
            Domain::free_tables(&mut self.memory, deferred.tables);
            if let Some(unmapped) = deferred.unmapped {
                d.domain.release_iova(unmapped)?;
            }
        }
        Ok(count)
    }

    /// [`flush_domain`](Self::flush_domain) on behalf of `client` (its owner).
    pub fn flush_domain_for(&mut self, id: u16, client: Client) -> Result<usize> {
        self.domain_for_change(id, client)?;
        self.flush_domain(id)
    }

    /// Whether any deferred unmap waits for a flush.
    pub fn flush_pending(&self) -> bool {
        self.domains.values().any(|d| !d.queue.is_empty())
    }

    /// Flushes every domain with deferred unmaps (the daemon's timeout).
    pub fn flush_all(&mut self) -> Result<usize> {
        let ids: Vec<u16> = self
            .domains
            .iter()
            .filter(|(_, d)| !d.queue.is_empty())
            .map(|(&id, _)| id)
            .collect();
        let mut released = 0;
        for id in ids {
            released += self.flush_domain(id)?;
        }
        Ok(released)
    }

    /// Sets domain `id`'s invalidation mode (leaving lazy flushes first).
    pub fn set_invalidation(&mut self, id: u16, client: Client, mode: Invalidation) -> Result<()> {
        self.domain_for_change(id, client)?;
        if mode == Invalidation::Strict {
            self.flush_domain(id)?;
        }
        self.domain_for_change(id, client)?.invalidation = mode;
        Ok(())
    }
}
