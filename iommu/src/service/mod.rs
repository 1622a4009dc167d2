//! The state iommud serves: units, domains, device assignments, flush
//! queues, faults. The scheme (`crate::scheme`) only decodes requests and
//! calls these methods; everything here is typed and errno-returning.
//!
//! Permission rule (the table is in the README): a domain belongs to the
//! *process* that created it (CREATE_DOMAIN, or opening `domain/new` or a
//! free `domain/<id>`); only that process changes it, translates in it or
//! assigns devices to it. Every method takes the [`Client`] its handle
//! recorded at open, never the uid of the request itself. MAP of a raw
//! physical address is root only; ASSIGN by BDF is root only and only for a
//! device no domain holds; ASSIGN through a pcid channel needs no uid (the
//! channel is the proof). Per-uid limits come from [`Accounts`].

mod batch;
mod events;
mod invalidation;
mod mapping;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use syscall::error::{EACCES, EBUSY, EEXIST, EINVAL, ENODEV, ENOENT, ENOSPC, Error, Result};

use crate::access::{Accounts, Client};
use crate::config::{Config, UnassignedDevices};
use crate::domain::{Domain, DomainConfig};
use crate::flush_queue::{FlushGenerations, FlushQueue, Invalidation};
use crate::page_table::Translation;
use crate::pte::AMD_V1;
use crate::table_memory::SchemeTableMemory;
use crate::topology::Topology;
use crate::unit::{DeviceState, DomainTables, IommuUnit, UnitFault};

/// The domain id unassigned devices' entries carry (AMD-Vi PASSTHROUGH and BLOCKED
/// DTEs have DomainID 0): never a domain's id (CREATE_DOMAIN refuses 0), so the
/// unit's cache entries under it are exactly the passthrough translations.
pub const UNASSIGNED_DOMAIN_ID: u16 = 0;

/// One domain and what iommud keeps beside it.
#[derive(Debug)]
pub struct DomainState {
    /// The address space.
    pub domain: Domain,
    /// The process that owns it (`None`: its owner closed every handle
    /// while devices were still assigned; only their unassignment remains).
    pub owner: Option<Client>,
    /// The uid its mapped bytes and page tables are charged to.
    pub charged_uid: u32,
    /// Page-table pages it holds (root included).
    pub page_tables: usize,
    /// Strict or lazy unmaps.
    pub invalidation: Invalidation,
    /// Deferred unmaps (lazy mode).
    pub queue: FlushQueue,
    /// Flush generations of this domain.
    pub generations: FlushGenerations,
    /// Requester ids assigned to it.
    pub devices: BTreeSet<u16>,
    /// IOVAs of the firmware's identity-mapped ranges in it (not the
    /// client's to unmap).
    pub unity: BTreeSet<u64>,
    /// Memory iommud allocated for the domain (ALLOC), by IOVA.
    pub buffers: BTreeMap<u64, crate::contiguous::ContiguousRegion>,
    /// Mappings a BATCH MAP made of part of an ALLOC buffer: their IOVA →
    /// the buffer's IOVA. A buffer is not freed while one remains.
    pub aliases: BTreeMap<u64, u64>,
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
    /// Unmaps (or maps) whose invalidation did not complete: their IOVAs
    /// and page-table pages wait for a later completed flush.
    pub quarantined: u64,
    /// Maps invalidated before answering (units caching not-present entries).
    pub map_invalidations: u64,
}

/// What a DRAIN_EVENTS found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Drained {
    /// Events drained.
    pub count: u64,
    /// The first of them, and the unit that logged it.
    pub first: Option<FaultRecord>,
}

/// Everything iommud serves.
#[derive(Debug)]
pub struct Iommu {
    pub(crate) config: Config,
    pub(crate) units: Vec<Box<dyn IommuUnit>>,
    pub(crate) memory: SchemeTableMemory,
    pub(crate) domains: BTreeMap<u16, DomainState>,
    pub(crate) devices: BTreeMap<u16, Assignment>,
    pub(crate) pending: VecDeque<FaultRecord>,
    pub(crate) history: VecDeque<FaultRecord>,
    pub(crate) counters: Counters,
    /// An initialised unit caches not-present entries (read at bring-up:
    /// the capability does not change, and MAP asks on every call).
    pub(crate) np_cache: bool,
    pub(crate) accounts: Accounts,
    pub(crate) topology: Topology,
}

/// Domain `id` if `client` owns it: `ENOENT` if there is none, `EACCES` if
/// another process (root or not) owns it.
fn changeable(
    domains: &mut BTreeMap<u16, DomainState>,
    id: u16,
    client: Client,
) -> Result<&mut DomainState> {
    let d = domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
    if !client.owns(d.owner) {
        return Err(Error::new(EACCES));
    }
    Ok(d)
}

impl Iommu {
    /// Serves `units` with page tables from `memory`. Units are not
    /// initialised here (see [`init_units`](Self::init_units)).
    pub fn new(config: Config, units: Vec<Box<dyn IommuUnit>>, memory: SchemeTableMemory) -> Self {
        Self {
            accounts: Accounts::new(config.limits),
            config,
            units,
            memory,
            domains: BTreeMap::new(),
            devices: BTreeMap::new(),
            pending: VecDeque::new(),
            history: VecDeque::new(),
            counters: Counters::default(),
            np_cache: false,
            topology: Topology::default(),
        }
    }

    /// What the firmware said about the units (IVRS / DMAR): which unit owns
    /// a device, its alias, the ranges to identity map.
    pub fn set_topology(&mut self, topology: Topology) {
        self.topology = topology;
    }

    /// The topology in use.
    pub fn topology(&self) -> &Topology {
        &self.topology
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

    /// Per-uid usage.
    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Per-uid usage, mutably (the scheme counts handles).
    pub fn accounts_mut(&mut self) -> &mut Accounts {
        &mut self.accounts
    }

    /// The state of a device no domain holds.
    pub fn unassigned_entry(&self) -> DeviceState {
        match self.config.unassigned {
            UnassignedDevices::Passthrough => DeviceState::Passthrough,
            UnassignedDevices::Blocked => DeviceState::Blocked,
        }
    }

    /// Runs `f` on domain `id`'s tables and charges the page-table pages it
    /// allocated (or freed) to the domain and its uid.
    pub(crate) fn metered<R>(&mut self, id: u16, f: impl FnOnce(&mut Self) -> R) -> R {
        let before = self.memory.live_tables();
        let r = f(self);
        let delta = self.memory.live_tables() as isize - before as isize;
        if delta != 0
            && let Some(d) = self.domains.get_mut(&id)
        {
            d.page_tables = d.page_tables.saturating_add_signed(delta);
            let uid = d.charged_uid;
            self.accounts.add_tables(uid, delta);
        }
        r
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
        self.np_cache = self
            .units
            .iter()
            .any(|u| u.is_initialised() && u.capabilities().caches_not_present);
        Ok((newly, attempted))
    }

    /// Units initialised.
    pub fn initialised_units(&self) -> usize {
        self.units.iter().filter(|u| u.is_initialised()).count()
    }

    /// Creates a domain owned by `client` and returns its id: `wanted` if it
    /// is free, otherwise (or with `None`) the lowest free id from 1 — a
    /// wanted id is only a request, so nobody can squat on another driver's
    /// id. `ENOSPC` past the domain limit or with no id left, `EMFILE` past
    /// the uid's domain limit.
    pub fn create_domain(&mut self, wanted: Option<u16>, client: Client) -> Result<u16> {
        if self.domains.len() >= self.config.max_domains {
            return Err(Error::new(ENOSPC));
        }
        let id = match wanted {
            Some(id)
                if id != 0 && id <= self.max_domain_id() && !self.domains.contains_key(&id) =>
            {
                id
            }
            _ => (1..=self.max_domain_id())
                .find(|i| !self.domains.contains_key(i))
                .ok_or(Error::new(ENOSPC))?,
        };
        self.create_exact(id, client)
    }

    /// Creates domain `id` owned by `client`: `EEXIST` if it exists.
    pub fn create_exact(&mut self, id: u16, client: Client) -> Result<u16> {
        if id == 0 || id > self.max_domain_id() {
            return Err(Error::new(EINVAL));
        }
        if self.domains.contains_key(&id) {
            return Err(Error::new(EEXIST));
        }
        if self.domains.len() >= self.config.max_domains {
            return Err(Error::new(ENOSPC));
        }
        if self.accounts.tables_left(client.uid) == 0 {
            return Err(Error::new(ENOSPC));
        }
        self.accounts.take_domain(client.uid)?;
        // One vendor per machine: every unit walks the same format.
        let format = self
            .units
            .first()
            .map_or(&AMD_V1 as _, |u| u.page_table_format());
        // IOVAs only as wide as the format's tables reach (VT-d: the AW).
        let reach = 12 + 9 * u32::from(*format.level_range().end());
        let config = DomainConfig {
            address_bits: self.config.address_bits.min(reach),
            quota_bytes: self.config.default_quota_bytes,
            ..DomainConfig::default()
        };
        let before = self.memory.live_tables();
        let domain = match Domain::with_format(id, config, format, &mut self.memory) {
            Ok(d) => d,
            Err(e) => {
                self.accounts.give_domain(client.uid);
                return Err(e);
            }
        };
        let tables = self.memory.live_tables().saturating_sub(before);
        self.accounts.add_tables(client.uid, tables as isize);
        self.domains.insert(
            id,
            DomainState {
                domain,
                owner: Some(client),
                charged_uid: client.uid,
                page_tables: tables,
                invalidation: self.config.default_invalidation,
                queue: FlushQueue::new(self.config.flush_queue_size),
                generations: FlushGenerations::default(),
                devices: BTreeSet::new(),
                unity: BTreeSet::new(),
                buffers: BTreeMap::new(),
                aliases: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    /// The domain `id`.
    pub fn domain(&self, id: u16) -> Result<&DomainState> {
        self.domains.get(&id).ok_or(Error::new(ENOENT))
    }

    /// Domain `id` for a request of `client`: its owner only.
    pub fn owned(&self, id: u16, client: Client) -> Result<&DomainState> {
        let d = self.domain(id)?;
        if !client.owns(d.owner) {
            return Err(Error::new(EACCES));
        }
        Ok(d)
    }

    pub(crate) fn domain_for_change(
        &mut self,
        id: u16,
        client: Client,
    ) -> Result<&mut DomainState> {
        changeable(&mut self.domains, id, client)
    }

    /// Destroys domain `id` (its owner only): `EBUSY` while a device is
    /// assigned to it.
    pub fn destroy_domain(&mut self, id: u16, client: Client) -> Result<()> {
        let d = self.domain_for_change(id, client)?;
        if !d.devices.is_empty() {
            return Err(Error::new(EBUSY));
        }
        self.remove_domain(id)
    }

    pub(crate) fn remove_domain(&mut self, id: u16) -> Result<()> {
        // No device can reach it any more; drop whatever the IOTLBs still hold
        // for the id before it can be given to a new domain.
        Self::invalidate(&mut self.units, id, 0, u64::MAX)?;
        if let Some(mut d) = self.domains.remove(&id) {
            // That invalidation covered everything still queued.
            for deferred in d.queue.release(u64::MAX) {
                Domain::free_tables(&mut self.memory, deferred.tables);
            }
            let uid = d.charged_uid;
            self.accounts
                .add_bytes(uid, -i128::from(d.domain.mapped_bytes()));
            self.accounts.add_tables(uid, -(d.page_tables as isize));
            if d.owner.is_some() {
                self.accounts.give_domain(uid);
            }
            d.domain.destroy(&mut self.memory);
        }
        Ok(())
    }

    /// The last handle process `pid` opened was closed: its domains without
    /// devices are destroyed; those with devices become ownerless (their
    /// devices keep their translation until root unassigns them), so a later
    /// process reusing the pid inherits nothing.
    pub fn release_process(&mut self, pid: usize) {
        let ids: Vec<u16> = self
            .domains
            .iter()
            .filter(|(_, d)| d.owner.is_some_and(|o| o.pid == pid))
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            let Some(d) = self.domains.get_mut(&id) else {
                continue;
            };
            if d.devices.is_empty() {
                if let Err(e) = self.remove_domain(id) {
                    log::error!("iommud: destroying domain {id} of exited pid {pid}: {e}");
                }
            } else {
                d.owner = None;
                let uid = d.charged_uid;
                self.accounts.give_domain(uid);
            }
        }
    }

    /// The highest domain id every unit can tag entries with (VT-d: below
    /// CAP.ND's count, the top one kept for pass-through entries).
    fn max_domain_id(&self) -> u16 {
        self.units
            .iter()
            .map(|u| u.capabilities().max_domain_id)
            .min()
            .unwrap_or(u16::MAX)
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

    pub(crate) fn translated(id: u16, domain: &Domain) -> DeviceState {
        DeviceState::Translated(DomainTables {
            domain_id: id,
            root: domain.root(),
            levels: domain.levels(),
        })
    }

    pub(crate) fn write_entry(&mut self, unit: usize, rid: u16, entry: DeviceState) -> Result<()> {
        let unit = self.units.get_mut(unit).ok_or(Error::new(ENODEV))?;
        unit.set_device(rid, entry)?;
        self.counters.device_entries_written += 1;
        Ok(())
    }

    /// Sets domain `id`'s quota of mapped bytes (its owner, if root).
    pub fn set_quota(&mut self, id: u16, client: Client, bytes: u64) -> Result<()> {
        let d = self.domain_for_change(id, client)?;
        if !client.is_root() {
            return Err(Error::new(EACCES));
        }
        d.domain.set_quota(bytes);
        Ok(())
    }

    /// What domain `id`'s tables translate `iova` to (`ENOENT`: nothing);
    /// its owner only, since the answer is a physical address.
    pub fn translate(&self, id: u16, client: Client, iova: u64) -> Result<Translation> {
        self.owned(id, client)?
            .domain
            .translate(&self.memory, iova)
            .ok_or(Error::new(ENOENT))
    }
}
