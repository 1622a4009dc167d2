//! The state iommud serves: units, domains, device assignments, flush
//! queues, faults. The scheme (`crate::scheme`) only decodes requests and
//! calls these methods; everything here is typed and errno-returning.
//!
//! Permission rule: a domain belongs to the uid that created it (by CREATE_DOMAIN
//! or by opening `domain/<id>`); only that uid or root may change it (map,
//! unmap, assign or unassign a device, set its invalidation mode, destroy it).
//! Anyone may query and translate. Quotas are set by root only.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use syscall::error::{EACCES, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOSPC, Error, Result};

use crate::bdf::Bdf;
use crate::config::Config;
use crate::domain::{Domain, DomainConfig};
use crate::flush_queue::{FlushGenerations, FlushQueue, Invalidation};
use crate::page_table::Translation;
use crate::protocol::MapFlags;
use crate::pte::AMD_V1;
use crate::table_memory::SchemeTableMemory;
use crate::unit::{DeviceState, DomainTables, FaultCause, IommuUnit, UnitFault};

/// One domain and what iommud keeps beside it.
#[derive(Debug)]
pub struct DomainState {
    /// The address space.
    pub domain: Domain,
    /// The uid allowed to change it (besides root).
    pub owner: u32,
    /// Strict or lazy unmaps.
    pub invalidation: Invalidation,
    /// Deferred unmaps (lazy mode).
    pub queue: FlushQueue,
    /// Flush generations of this domain.
    pub generations: FlushGenerations,
    /// Requester ids assigned to it.
    pub devices: BTreeSet<u16>,
}

/// A device assignment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    /// Domain id.
    pub domain: u16,
    /// Unit index.
    pub unit: usize,
}

/// A fault as the `faults` file shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Unit that logged it.
    pub unit: usize,
    /// What the unit recorded.
    pub fault: UnitFault,
}

/// Daemon-wide counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// I/O page faults read from the event logs.
    pub faults: u64,
    /// Events of any kind read.
    pub events: u64,
    /// Events dropped because nobody drained them in time.
    pub events_dropped: u64,
    /// Strict unmaps (each one `INV_IOMMU_PAGES` + `COMPLETION_WAIT` per unit).
    pub strict_invalidations: u64,
    /// Lazy flushes (whole-domain invalidations).
    pub lazy_flushes: u64,
    /// Unmaps deferred to a flush queue.
    pub deferred_unmaps: u64,
    /// Device table entries written.
    pub device_entries_written: u64,
}

/// What a DRAIN_EVENTS found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events drained.
    pub count: u64,
    /// The first of them.
    pub first: Option<UnitFault>,
}

/// Everything iommud serves.
#[derive(Debug)]
pub struct Iommu {
    config: Config,
    units: Vec<Box<dyn IommuUnit>>,
    memory: SchemeTableMemory,
    domains: BTreeMap<u16, DomainState>,
    devices: BTreeMap<u16, Assignment>,
    pending: VecDeque<FaultRecord>,
    history: VecDeque<FaultRecord>,
    counters: Counters,
}

fn changeable(
    domains: &mut BTreeMap<u16, DomainState>,
    id: u16,
    uid: u32,
) -> Result<&mut DomainState> {
    let d = domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
    may_change(d.owner, uid)?;
    Ok(d)
}

fn may_change(owner: u32, uid: u32) -> Result<()> {
    if uid == 0 || uid == owner {
        Ok(())
    } else {
        Err(Error::new(EACCES))
    }
}

impl Iommu {
    /// Serves `units` with page tables from `memory`. Units are not
    /// initialised here (see [`init_units`](Self::init_units)).
    pub fn new(config: Config, units: Vec<Box<dyn IommuUnit>>, memory: SchemeTableMemory) -> Self {
        Self {
            config,
            units,
            memory,
            domains: BTreeMap::new(),
            devices: BTreeMap::new(),
            pending: VecDeque::new(),
            history: VecDeque::new(),
            counters: Counters::default(),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The units.
    pub fn units(&self) -> &[Box<dyn IommuUnit>] {
        &self.units
    }

    /// Domains by id.
    pub fn domains(&self) -> &BTreeMap<u16, DomainState> {
        &self.domains
    }

    /// Assignments by requester id.
    pub fn devices(&self) -> &BTreeMap<u16, Assignment> {
        &self.devices
    }

    /// Counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// The last faults (oldest first), up to the configured history.
    pub fn fault_history(&self) -> impl Iterator<Item = &FaultRecord> {
        self.history.iter()
    }

    /// Page-table pages in use.
    pub fn page_tables(&self) -> usize {
        self.memory.live_tables()
    }

    /// Initialises unit `unit` (`None`: all). Returns (newly initialised,
    /// attempted); `ENODEV` for an unknown unit.
    pub fn init_units(&mut self, unit: Option<usize>) -> Result<(u32, u32)> {
        let range = match unit {
            Some(u) if u < self.units.len() => u..u + 1,
            Some(_) => return Err(Error::new(ENODEV)),
            None => 0..self.units.len(),
        };
        let mut newly = 0;
        let attempted = range.len() as u32;
        for u in self.units.get_mut(range).into_iter().flatten() {
            if u.init()? {
                newly += 1;
            }
        }
        Ok((newly, attempted))
    }

    /// Units initialised.
    pub fn initialised_units(&self) -> usize {
        self.units.iter().filter(|u| u.is_initialised()).count()
    }

    /// Creates domain `id` (`None`: the lowest free id from 1) owned by `uid`.
    /// `EEXIST` if it exists, `ENOSPC` past the domain limit or with no id left.
    pub fn create_domain(&mut self, id: Option<u16>, uid: u32) -> Result<u16> {
        if self.domains.len() >= self.config.max_domains {
            return Err(Error::new(ENOSPC));
        }
        let id = match id {
            Some(0) => return Err(Error::new(EINVAL)),
            Some(id) if self.domains.contains_key(&id) => return Err(Error::new(EEXIST)),
            Some(id) => id,
            None => (1..=u16::MAX)
                .find(|i| !self.domains.contains_key(i))
                .ok_or(Error::new(ENOSPC))?,
        };
        let config = DomainConfig {
            address_bits: self.config.address_bits,
            quota_bytes: self.config.default_quota_bytes,
            ..DomainConfig::default()
        };
        // One vendor per machine: every unit walks the same format.
        let format = self
            .units
            .first()
            .map_or(&AMD_V1 as _, |u| u.page_table_format());
        let domain = Domain::with_format(id, config, format, &mut self.memory)?;
        self.domains.insert(
            id,
            DomainState {
                domain,
                owner: uid,
                invalidation: self.config.default_invalidation,
                queue: FlushQueue::new(self.config.flush_queue_size),
                generations: FlushGenerations::default(),
                devices: BTreeSet::new(),
            },
        );
        Ok(id)
    }

    /// The domain `id`.
    pub fn domain(&self, id: u16) -> Result<&DomainState> {
        self.domains.get(&id).ok_or(Error::new(ENOENT))
    }

    fn domain_for_change(&mut self, id: u16, uid: u32) -> Result<&mut DomainState> {
        changeable(&mut self.domains, id, uid)
    }

    /// Destroys domain `id`: `EBUSY` while a device is assigned to it.
    pub fn destroy_domain(&mut self, id: u16, uid: u32) -> Result<()> {
        let d = self.domain_for_change(id, uid)?;
        if !d.devices.is_empty() {
            return Err(Error::new(EBUSY));
        }
        // No device can reach it any more; drop whatever the IOTLBs still hold
        // for the id before it can be given to a new domain.
        Self::invalidate(&mut self.units, id, 0, u64::MAX)?;
        if let Some(d) = self.domains.remove(&id) {
            d.domain.destroy(&mut self.memory);
        }
        Ok(())
    }

    /// Invalidates `[iova, iova + size)` of `domain` (`size == u64::MAX`:
    /// all of it) on every unit and waits until each unit completed it.
    fn invalidate(
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

    /// Maps `size` bytes at `phys` into domain `id`; returns the IOVA.
    pub fn map(
        &mut self,
        id: u16,
        uid: u32,
        phys: u64,
        size: u64,
        flags: MapFlags,
        iova: Option<u64>,
    ) -> Result<u64> {
        let d = changeable(&mut self.domains, id, uid)?;
        let before = (d.domain.root(), d.domain.levels());
        let mut result = d.domain.map(&mut self.memory, phys, size, flags, iova);
        // IOVAs waiting for a lazy flush may be exactly what is missing.
        let retry = matches!(&result, Err(e) if e.errno == ENOSPC
            || (e.errno == EEXIST && iova.is_some_and(|i| d.queue.holds(i, size))));
        if retry && !d.queue.is_empty() {
            self.flush_domain(id)?;
            let d = changeable(&mut self.domains, id, uid)?;
            result = d.domain.map(&mut self.memory, phys, size, flags, iova);
        }
        let iova = result?;
        let d = self.domain(id)?;
        if (d.domain.root(), d.domain.levels()) != before {
            // The tables grew a level: every device must walk from the new root.
            self.rewrite_entries(id)?;
        }
        Ok(iova)
    }

    fn rewrite_entries(&mut self, id: u16) -> Result<()> {
        let d = self.domains.get(&id).ok_or(Error::new(ENOENT))?;
        let entry = Self::translated(id, &d.domain);
        let devices: Vec<u16> = d.devices.iter().copied().collect();
        for rid in devices {
            let unit = self.devices.get(&rid).map_or(0, |a| a.unit);
            self.write_entry(unit, rid, entry)?;
        }
        Ok(())
    }

    fn translated(id: u16, domain: &Domain) -> DeviceState {
        DeviceState::Translated(DomainTables {
            domain_id: id,
            root: domain.root(),
            levels: domain.levels(),
        })
    }

    fn write_entry(&mut self, unit: usize, rid: u16, entry: DeviceState) -> Result<()> {
        let unit = self.units.get_mut(unit).ok_or(Error::new(ENODEV))?;
        unit.set_device(rid, entry)?;
        self.counters.device_entries_written += 1;
        Ok(())
    }

    /// Unmaps the mapping starting at `iova`; returns its size. Strict: the
    /// IOTLBs no longer hold it when this returns. Lazy: it is queued.
    pub fn unmap(&mut self, id: u16, uid: u32, iova: u64) -> Result<u64> {
        let d = changeable(&mut self.domains, id, uid)?;
        match d.invalidation {
            Invalidation::Strict => {
                let unmapped = d.domain.unmap(&mut self.memory, iova)?;
                self.counters.strict_invalidations += 1;
                Self::invalidate(&mut self.units, id, unmapped.iova, unmapped.size)?;
                Ok(unmapped.size)
            }
            Invalidation::Lazy => {
                let unmapped = d.domain.unmap_deferred(&mut self.memory, iova)?;
                let full = d.queue.push(unmapped, d.generations.next());
                self.counters.deferred_unmaps += 1;
                if full {
                    self.flush_domain(id)?;
                }
                Ok(unmapped.size)
            }
        }
    }

    /// Flushes domain `id`'s IOTLB entries and releases every deferred IOVA
    /// queued before the flush started; returns how many were released.
    pub fn flush_domain(&mut self, id: u16) -> Result<usize> {
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        if d.queue.is_empty() {
            return Ok(0);
        }
        d.generations.started += 1;
        let generation = d.generations.started;
        Self::invalidate(&mut self.units, id, 0, u64::MAX)?;
        self.counters.lazy_flushes += 1;
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        d.generations.completed = generation;
        let released = d.queue.release(generation);
        for unmapped in &released {
            d.domain.release_iova(*unmapped)?;
        }
        Ok(released.len())
    }

    /// [`flush_domain`](Self::flush_domain) on behalf of `uid` (owner or root).
    pub fn flush_domain_for(&mut self, id: u16, uid: u32) -> Result<usize> {
        self.domain_for_change(id, uid)?;
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
    pub fn set_invalidation(&mut self, id: u16, uid: u32, mode: Invalidation) -> Result<()> {
        self.domain_for_change(id, uid)?;
        if mode == Invalidation::Strict {
            self.flush_domain(id)?;
        }
        self.domain_for_change(id, uid)?.invalidation = mode;
        Ok(())
    }

    /// Sets domain `id`'s quota of mapped bytes (root only).
    pub fn set_quota(&mut self, id: u16, uid: u32, bytes: u64) -> Result<()> {
        if uid != 0 {
            return Err(Error::new(EACCES));
        }
        self.domains
            .get_mut(&id)
            .ok_or(Error::new(ENOENT))?
            .domain
            .set_quota(bytes);
        Ok(())
    }

    /// What domain `id`'s tables translate `iova` to (`ENOENT`: nothing).
    pub fn translate(&self, id: u16, iova: u64) -> Result<Translation> {
        self.domain(id)?
            .domain
            .translate(&self.memory, iova)
            .ok_or(Error::new(ENOENT))
    }

    /// Points `bdf`'s device table entry at domain `id` on `unit` (`None`:
    /// unit 0, which owns every device on a single-unit machine).
    pub fn assign(&mut self, bdf: Bdf, id: u16, unit: Option<usize>, uid: u32) -> Result<usize> {
        let unit = unit.unwrap_or(0);
        if unit >= self.units.len() {
            return Err(Error::new(ENODEV));
        }
        let rid = bdf.requester_id();
        self.domain_for_change(id, uid)?;
        if let Some(old) = self.devices.get(&rid).copied() {
            // Moving a device takes it from its old domain: that owner's right too.
            self.domain_for_change(old.domain, uid)?;
        }
        let d = self.domain(id)?;
        let entry = Self::translated(id, &d.domain);
        self.write_entry(unit, rid, entry)?;
        if let Some(old) = self.devices.insert(rid, Assignment { domain: id, unit }) {
            if let Some(od) = self.domains.get_mut(&old.domain) {
                od.devices.remove(&rid);
            }
            if old.unit != unit {
                self.write_entry(old.unit, rid, DeviceState::Blocked)?;
            }
        }
        if let Some(d) = self.domains.get_mut(&id) {
            d.devices.insert(rid);
        }
        Ok(unit)
    }

    /// Blocks `bdf`'s DMA and detaches it from its domain; returns the old assignment.
    pub fn unassign(&mut self, bdf: Bdf, uid: u32) -> Result<Assignment> {
        let rid = bdf.requester_id();
        let a = *self.devices.get(&rid).ok_or(Error::new(ENOENT))?;
        self.domain_for_change(a.domain, uid)?;
        self.write_entry(a.unit, rid, DeviceState::Blocked)?;
        self.devices.remove(&rid);
        if let Some(d) = self.domains.get_mut(&a.domain) {
            d.devices.remove(&rid);
        }
        Ok(a)
    }

    /// Reads the units' event logs into the pending queue and the history.
    pub fn collect_events(&mut self) {
        let limit = self.config.fault_history.max(1);
        for (index, unit) in self.units.iter_mut().enumerate() {
            let (pending, history, counters) =
                (&mut self.pending, &mut self.history, &mut self.counters);
            unit.drain_faults(&mut |fault| {
                counters.events += 1;
                if fault.cause != FaultCause::Other {
                    counters.faults += 1;
                }
                let record = FaultRecord { unit: index, fault };
                if pending.len() >= limit {
                    pending.pop_front();
                    counters.events_dropped += 1;
                }
                pending.push_back(record);
                if history.len() >= limit {
                    history.pop_front();
                }
                history.push_back(record);
            });
        }
    }

    /// DRAIN_EVENTS: collects, then hands out (and forgets) every event not
    /// drained before, of `unit` or of all units.
    pub fn drain_events(&mut self, unit: Option<usize>) -> Result<Drained> {
        if unit.is_some_and(|u| u >= self.units.len()) {
            return Err(Error::new(ENODEV));
        }
        self.collect_events();
        let mut drained = Drained::default();
        self.pending.retain(|r| {
            if unit.is_some_and(|u| u != r.unit) {
                return true;
            }
            drained.count += 1;
            drained.first.get_or_insert(r.fault);
            false
        });
        Ok(drained)
    }
}
