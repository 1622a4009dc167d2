//! iommud's configuration.

use crate::flush_queue::Invalidation;

/// What the unit does with the DMA of a device no domain holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum UnassignedDevices {
    /// Untranslated, read and write allowed (AMD-Vi DTE V=1, TV=1, Mode=0,
    /// IR=IW=1; Linux's identity domain). Upstream Redox drivers (ahcid,
    /// nvmed, xhcid) program physical addresses, so this is the default:
    /// starting iommud must not stop their DMA.
    #[default]
    Passthrough,
    /// Refused (DTE V=1, TV=1, nothing else; Linux's blocked domain). For a
    /// machine where every bus master is driven through a domain.
    Blocked,
}

impl UnassignedDevices {
    /// The name used in `stats` and on the command line.
    pub const fn name(self) -> &'static str {
        match self {
            UnassignedDevices::Passthrough => "passthrough",
            UnassignedDevices::Blocked => "blocked",
        }
    }
}

/// Per-uid limits. Every Redox driver runs as root, so root has limits too:
/// they bound what one misbehaving driver can take from the others.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Domains one uid owns at once (`EMFILE` past it).
    pub domains_per_uid: usize,
    /// Open handles of one uid (`EMFILE` past it).
    pub handles_per_uid: usize,
    /// Bytes mapped over all domains of one uid (`ENOSPC` past it).
    pub mapped_bytes_per_uid: u64,
    /// I/O page-table pages over all domains of one uid (`ENOSPC` past it).
    pub page_tables_per_uid: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            domains_per_uid: 256,
            handles_per_uid: 4096,
            mapped_bytes_per_uid: 64 << 30,
            page_tables_per_uid: 1 << 16,
        }
    }
}

/// How iommud runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Scheme name (`iommu`).
    pub scheme_name: String,
    /// IOMMU address width of new domains (48: 4-level tables).
    pub address_bits: u32,
    /// Mapped-bytes quota of a new domain (`ENOSPC` past it).
    pub default_quota_bytes: u64,
    /// Invalidation mode of a new domain.
    pub default_invalidation: Invalidation,
    /// Deferred unmaps per domain before a lazy flush is forced (Linux: 256).
    pub flush_queue_size: usize,
    /// Longest a deferred unmap waits for its flush, in milliseconds (Linux: 10).
    pub flush_timeout_ms: u32,
    /// Page-table pages over all domains (`ENOMEM` past it).
    pub max_page_tables: usize,
    /// Domains at once (`ENOSPC` past it).
    pub max_domains: usize,
    /// Fault records kept for the `faults` file and DRAIN_EVENTS.
    pub fault_history: usize,
    /// What devices no domain holds get (passthrough unless configured).
    pub unassigned: UnassignedDevices,
    /// Per-uid limits.
    pub limits: Limits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            scheme_name: "iommu".into(),
            address_bits: 48,
            default_quota_bytes: 64 << 30,
            default_invalidation: Invalidation::Strict,
            flush_queue_size: 256,
            flush_timeout_ms: 10,
            max_page_tables: 1 << 18,
            max_domains: 4096,
            fault_history: 1024,
            unassigned: UnassignedDevices::Passthrough,
            limits: Limits::default(),
        }
    }
}
