//! One IOMMU unit, whatever its vendor: the trait everything above it
//! (domains, the IOVA allocator, flush queues, permissions, the scheme)
//! drives. AMD-Vi implements it in [`crate::amdvi::AmdViUnit`]; Intel VT-d
//! implements the same trait.
//!
//! # The ordering contract
//!
//! A unit caches what it reads from memory — device-table or context
//! entries, leaf translations, page-directory entries and, with
//! [`UnitCapabilities::caches_not_present`], "not present" answers — and may
//! read any entry at any moment, including between two stores of the
//! driver. The daemon therefore keeps four rules, and the methods below say
//! which part of them each implementation owes:
//!
//! 1. **Entries are never seen half-written.** [`IommuUnit::set_device`]
//!    stores a device's entry so that every intermediate state the unit can
//!    read is either the old entry, the new one, or blocked; a translated
//!    entry never pairs one domain's id with another domain's root.
//! 2. **Nothing cached is trusted until a completed sync.** The
//!    `invalidate_*` methods only queue; an invalidation has happened when a
//!    later [`IommuUnit::sync`] returned `Ok`. A failed sync (`ETIMEDOUT`,
//!    `EIO`) means nothing queued since the last good sync may be assumed
//!    done.
//! 3. **Page-table pages and IOVAs are reused only after** an
//!    [`IommuUnit::invalidate_range`] / [`IommuUnit::invalidate_domain`]
//!    covering them (which always drops directory entries too, AMD's PDE=1)
//!    was followed by a successful sync. The caller keeps them until then.
//! 4. **With `caches_not_present`, making entries present needs an
//!    invalidation too**: the caller invalidates a freshly mapped range and
//!    syncs before MAP answers.

use syscall::error::Result;

use crate::format::PageTableFormat;

/// How a unit treats one requester id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceState {
    /// Every DMA is refused (and, where the unit can, reported as a fault).
    Blocked,
    /// DMA addresses are physical addresses (no domain holds the device).
    Passthrough,
    /// DMA is translated through a domain's page tables.
    Translated(DomainTables),
}

/// What a unit needs to know of a domain to translate through it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainTables {
    /// Domain id (AMD DomainID, VT-d DID): tags the unit's cached entries.
    pub domain_id: u16,
    /// Physical address of the root table.
    pub root: u64,
    /// Levels of the tables (AMD Mode; VT-d derives AW from it).
    pub levels: u8,
}

/// What a unit can do and what it caches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitCapabilities {
    /// The unit may cache not-present entries (AMD NpCache, VT-d CAP.CM):
    /// every map and entry install must be invalidated before it is used,
    /// and the daemon runs strict, as Linux does for such units.
    pub caches_not_present: bool,
    /// Most page-table levels the unit walks.
    pub max_levels: u8,
    /// Highest domain id the unit tags entries with (VT-d: from CAP.ND).
    pub max_domain_id: u16,
}

/// Which vendor's unit it is: what a raw event code or fault reason means
/// depends on it, nothing else above the trait does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Vendor {
    /// AMD-Vi (IVRS): codes are event-log event codes.
    AmdVi,
    /// Intel VT-d (DMAR): codes are fault-recording fault reasons.
    Vtd,
}

impl Vendor {
    /// `amd-vi` or `vt-d`, as `stats` shows it.
    pub const fn name(self) -> &'static str {
        match self {
            Vendor::AmdVi => "amd-vi",
            Vendor::Vtd => "vt-d",
        }
    }
}

impl core::fmt::Display for Vendor {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a DMA faulted, in terms every vendor reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultCause {
    /// No translation: a not-present entry, or an address beyond the tables.
    NotPresent,
    /// A translation exists but does not allow the access.
    Permission,
    /// Anything else the unit logged (the raw code says what).
    Other,
}

/// One fault or event a unit logged, vendor-neutral.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnitFault {
    /// The requester id of the device.
    pub requester_id: u16,
    /// The domain id the unit used, if the record carries one.
    pub domain_id: u16,
    /// The DMA address (IOVA).
    pub address: u64,
    /// A write (else a read).
    pub write: bool,
    /// What went wrong.
    pub cause: FaultCause,
    /// The vendor's own code (AMD event code, VT-d fault reason), as
    /// DRAIN_EVENTS reports it.
    pub code: u16,
}

/// Counters of one unit, vendor-neutral.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UnitStats {
    /// Commands / descriptors queued.
    pub commands: u64,
    /// Range and domain invalidations queued.
    pub page_invalidations: u64,
    /// Device (entry / context) invalidations queued.
    pub device_invalidations: u64,
    /// Syncs that completed.
    pub completion_waits: u64,
    /// Syncs that timed out.
    pub sync_timeouts: u64,
    /// Fault records read.
    pub events: u64,
    /// Times the unit reported lost records.
    pub event_overflows: u64,
}

/// One IOMMU unit. See the [module documentation](self) for the ordering
/// rules every implementation keeps.
///
/// No method may panic on what the hardware or the tables contain; errors
/// are errnos (`EIO` for a unit that is not up, `ETIMEDOUT` for one that
/// stopped answering).
pub trait IommuUnit: Send + core::fmt::Debug {
    /// AMD-Vi or VT-d.
    fn vendor(&self) -> Vendor;

    /// Brings the unit up: programs its table and queue bases, enables
    /// command/invalidation processing and fault recording, then
    /// translation, in the order the vendor's documentation (and Linux)
    /// uses. Every device starts in the state the unit was built with (see
    /// the implementation) and stays there until [`set_device`](Self::set_device).
    /// `Ok(false)` if the unit was already up.
    fn init(&mut self) -> Result<bool>;

    /// Whether [`init`](Self::init) succeeded.
    fn is_initialised(&self) -> bool;

    /// What the unit can do and caches.
    fn capabilities(&self) -> UnitCapabilities;

    /// The page-table format the unit walks. Every domain whose devices sit
    /// behind this unit uses it.
    fn page_table_format(&self) -> &'static dyn PageTableFormat;

    /// Physical address of the unit's top table (AMD device table, VT-d
    /// root table), for `stats`.
    fn table_phys(&self) -> u64;

    /// Puts requester `rid` in `state`. When this returns `Ok` the new state
    /// is in force: the entry was stored in an order the unit can never
    /// read half-written (rule 1: AMD writes the upper quadwords first and
    /// V/permissions last when enabling, and takes permissions away first
    /// when disabling or moving; VT-d sets P last and clears it first), the
    /// unit's cached copy of the old entry was invalidated (and, where the
    /// vendor tags cached translations by the entry, what the old entry
    /// cached), and a sync completed. On `Err` the entry may be old, new or
    /// blocked, never a mix.
    fn set_device(&mut self, rid: u16, state: DeviceState) -> Result<()>;

    /// The state requester `rid`'s entry holds in memory now (`None`: an
    /// entry this crate never writes).
    fn device(&self, rid: u16) -> Option<DeviceState>;

    /// Queues the invalidation of every translation the unit may cache for
    /// `[iova, iova + size)` of domain `domain_id`: leaves, page-directory
    /// entries on the way to them (AMD PDE=1) and cached not-present
    /// answers. The unit may widen the range (to an aligned block, or the
    /// whole domain). Done only once a later [`sync`](Self::sync) returns `Ok`.
    fn invalidate_range(&mut self, domain_id: u16, iova: u64, size: u64) -> Result<()>;

    /// Queues the invalidation of everything cached for domain `domain_id`
    /// (directory entries included). Done once a later sync returns `Ok`.
    fn invalidate_domain(&mut self, domain_id: u16) -> Result<()>;

    /// Queues the invalidation of the unit's cached copy of requester
    /// `rid`'s entry. Done once a later sync returns `Ok`.
    fn invalidate_device(&mut self, rid: u16) -> Result<()>;

    /// Waits until every invalidation queued before it has completed (AMD
    /// `COMPLETION_WAIT`, VT-d invalidation wait with a status write).
    /// `ETIMEDOUT` if the unit does not answer within its poll budget: the
    /// caller must then treat every queued invalidation as not done.
    fn sync(&mut self) -> Result<()>;

    /// Reads every fault the unit recorded since the last call, oldest
    /// first, hands each to `sink` and acknowledges it to the unit; returns
    /// how many there were.
    fn drain_faults(&mut self, sink: &mut dyn FnMut(UnitFault)) -> usize;

    /// Counters.
    fn stats(&self) -> UnitStats;
}
