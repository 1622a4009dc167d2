//! iommud's configuration.

use crate::flush_queue::Invalidation;

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
        }
    }
}
