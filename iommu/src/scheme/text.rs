//! The text files: `stats` and `faults`, plus the `domain` and `device`
//! directory listings. `key: value` lines, one fact per line.

use std::fmt::Write;

use crate::bdf::Bdf;
use crate::service::Iommu;
use crate::unit::FaultCause;

/// `stats`: domains, mappings, bytes mapped, IOVA space left per window,
/// invalidations, faults; then one block per unit and per domain.
pub fn stats(iommu: &Iommu) -> String {
    let c = iommu.counters();
    let domains = iommu.domains();
    let mappings: u64 = domains
        .values()
        .map(|d| d.domain.mapping_count() as u64)
        .sum();
    let bytes: u64 = domains.values().map(|d| d.domain.mapped_bytes()).sum();
    let mut s = String::new();
    let _ = writeln!(s, "units: {}", iommu.units().len());
    let _ = writeln!(s, "units_initialised: {}", iommu.initialised_units());
    let _ = writeln!(s, "domains: {}", domains.len());
    let _ = writeln!(s, "devices_assigned: {}", iommu.devices().len());
    let _ = writeln!(s, "mappings: {mappings}");
    let _ = writeln!(s, "bytes_mapped: {bytes}");
    let _ = writeln!(s, "page_tables: {}", iommu.page_tables());
    let _ = writeln!(s, "invalidations_strict: {}", c.strict_invalidations);
    let _ = writeln!(s, "lazy_flushes: {}", c.lazy_flushes);
    let _ = writeln!(s, "deferred_unmaps: {}", c.deferred_unmaps);
    let _ = writeln!(s, "device_entries_written: {}", c.device_entries_written);
    let _ = writeln!(s, "faults: {}", c.faults);
    let _ = writeln!(s, "events: {}", c.events);
    let _ = writeln!(s, "events_dropped: {}", c.events_dropped);
    for (i, unit) in iommu.units().iter().enumerate() {
        let u = unit.stats();
        let _ = writeln!(
            s,
            "unit {i}: vendor={} initialised={} device_table={:#x} commands={} page_invalidations={} device_invalidations={} completion_waits={} sync_timeouts={} events={} event_overflows={}",
            unit.vendor(),
            unit.is_initialised(),
            unit.table_phys(),
            u.commands,
            u.page_invalidations,
            u.device_invalidations,
            u.completion_waits,
            u.sync_timeouts,
            u.events,
            u.event_overflows
        );
    }
    for (id, d) in domains {
        let st = d.domain.stats();
        let _ = writeln!(
            s,
            "domain {id}: owner={} invalidation={} levels={} mappings={} bytes_mapped={} quota={} devices={} queued_unmaps={} iova_free={}",
            d.owner,
            d.invalidation.name(),
            d.domain.levels(),
            st.mappings,
            st.mapped_bytes,
            d.domain.config().quota_bytes,
            d.devices.len(),
            d.queue.len(),
            d.domain.iova_free_bytes()
        );
        for w in d.domain.iova_usage() {
            let _ = writeln!(
                s,
                "domain {id} window {:#x}-{:#x}: free={} usable={}",
                w.start, w.end, w.free_bytes, w.usable_bytes
            );
        }
    }
    s
}

/// `faults`: the last I/O page faults and other events, oldest first.
pub fn faults(iommu: &Iommu) -> String {
    let mut s = String::from("unit device domain address access cause\n");
    for r in iommu.fault_history() {
        let f = r.fault;
        let device = Bdf::from_requester_id(f.requester_id);
        let access = if f.write { "write" } else { "read" };
        let cause = match f.cause {
            FaultCause::NotPresent => "not-present".to_string(),
            FaultCause::Permission => "permission".to_string(),
            FaultCause::Other => format!("event-{:#x}", f.code),
        };
        let access = if f.cause == FaultCause::Other {
            "-"
        } else {
            access
        };
        let _ = writeln!(
            s,
            "{} {} {} {:#x} {} {}",
            r.unit, device, f.domain_id, f.address, access, cause
        );
    }
    s
}

/// `domain`: one domain id per line.
pub fn domain_listing(iommu: &Iommu) -> String {
    iommu.domains().keys().map(|id| format!("{id}\n")).collect()
}

/// `device`: one assigned device per line.
pub fn device_listing(iommu: &Iommu) -> String {
    iommu
        .devices()
        .keys()
        .map(|&rid| format!("{}\n", Bdf::from_requester_id(rid)))
        .collect()
}
