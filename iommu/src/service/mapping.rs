//! MAP: a range of physical memory into a domain, within the uid's limits,
//! with the invalidation units that cache not-present entries need.

use syscall::error::{EACCES, EEXIST, EIO, ENOENT, ENOSPC, Error, Result};

use crate::access::{Budgeted, Client};
use crate::page_table::PAGE_4K;
use crate::protocol::MapFlags;

use super::Iommu;

impl Iommu {
    /// Maps `size` bytes at physical `phys` into domain `id`; returns the
    /// IOVA. A raw physical address is root's alone (`EACCES` otherwise): a
    /// client must never make a device reach memory it could not reach.
    pub fn map(
        &mut self,
        id: u16,
        client: Client,
        phys: u64,
        size: u64,
        flags: MapFlags,
        iova: Option<u64>,
    ) -> Result<u64> {
        self.domain_for_change(id, client)?;
        if !client.is_root() {
            return Err(Error::new(EACCES));
        }
        self.map_checked(id, phys, size, flags, iova)
    }

    /// MAP after the permission checks: the uid's byte and page-table
    /// limits, a lazy flush when the IOVA space is short, and a device
    /// entry rewrite when the tables grew a level.
    pub(crate) fn map_checked(
        &mut self,
        id: u16,
        phys: u64,
        size: u64,
        flags: MapFlags,
        iova: Option<u64>,
    ) -> Result<u64> {
        let uid = self.domain(id)?.charged_uid;
        self.accounts.check_bytes(uid, size)?;
        let left = self.accounts.tables_left(uid);
        let d = self.domains.get(&id).ok_or(Error::new(ENOENT))?;
        let before = (d.domain.root(), d.domain.levels());
        let mut result = self.map_budgeted(id, left, phys, size, flags, iova);
        // IOVAs waiting for a lazy flush may be exactly what is missing.
        let d = self.domain(id)?;
        let retry = matches!(&result, Err(e) if e.errno == ENOSPC
            || (e.errno == EEXIST && iova.is_some_and(|i| d.queue.holds(i, size))));
        if retry && !d.queue.is_empty() {
            self.flush_domain(id)?;
            let left = self.accounts.tables_left(uid);
            result = self.map_budgeted(id, left, phys, size, flags, iova);
        }
        let iova = match result {
            Ok(iova) => iova,
            Err(error) => {
                // Tables the failed map had already linked in.
                self.settle_gathered(id)?;
                return Err(error);
            }
        };
        self.accounts.add_bytes(uid, i128::from(size));
        let d = self.domain(id)?;
        if (d.domain.root(), d.domain.levels()) != before {
            // The tables grew a level: every device must walk from the new
            // root, and only then may an emptied old root be freed.
            self.rewrite_entries(id)?;
        }
        self.settle_gathered(id)?;
        if self.caches_not_present() {
            // The unit may hold "not present" for this range: drop it before
            // the client can hand the IOVA to its device (Linux's
            // `iotlb_sync_map` under NpCache).
            self.counters.map_invalidations += 1;
            if let Err(error) = Self::invalidate(&mut self.units, id, iova, size) {
                log::error!("iommud: invalidation after MAP failed ({error}); mapping withdrawn");
                let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
                let unmapped = d.domain.unmap_deferred(&mut self.memory, iova)?;
                let tables = d.domain.take_gathered_tables();
                self.quarantine(id, Some(unmapped), tables);
                self.accounts.add_bytes(uid, -i128::from(size));
                return Err(Error::new(EIO));
            }
        }
        Ok(iova)
    }

    /// A unit that caches not-present entries (VT-d CAP.CM) may still hold
    /// the miss of a page just made present: invalidate the new range and
    /// wait before anyone may use it (unit.rs rule 4; Linux
    /// `intel_iommu_iotlb_sync_map`). Nothing to do for other units. Used
    /// for the firmware's identity ranges; MAP does the same inline.
    pub(crate) fn sync_new_mapping(&mut self, id: u16, iova: u64, size: u64) -> Result<()> {
        if self.caches_not_present() {
            let span = size.next_multiple_of(PAGE_4K);
            Self::invalidate(&mut self.units, id, iova, span)?;
        }
        Ok(())
    }

    pub(super) fn map_budgeted(
        &mut self,
        id: u16,
        left: usize,
        phys: u64,
        size: u64,
        flags: MapFlags,
        iova: Option<u64>,
    ) -> Result<u64> {
        self.metered(id, |s| {
            let d = s.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
            let mut memory = Budgeted::new(&mut s.memory, left);
            d.domain.map(&mut memory, phys, size, flags, iova)
        })
    }
}
