//! The text files: `stats` (streamed, see [`StatsCursor`]) and `faults`,
//! plus the `domain` and `device` directory listings. `key: value` lines,
//! one fact per line.

use std::fmt::Write;
use std::ops::Bound;

use crate::bdf::Bdf;
use crate::service::{DomainState, Iommu};
use crate::unit::FaultCause;

/// Where a reader of `stats` is. The file is rendered at read time, one
/// piece (the summary, one unit, one uid, one domain) at a time, so an open
/// handle holds a cursor and at most one piece, never a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum StatsCursor {
    /// The summary lines come next.
    #[default]
    Summary,
    /// Unit `n` comes next.
    Unit(usize),
    /// The first uid above this one (`None`: the lowest) comes next.
    Uid(Option<u32>),
    /// The first domain above this one (`None`: the lowest) comes next.
    Domain(Option<u16>),
    /// Nothing is left.
    Done,
}

fn summary(iommu: &Iommu) -> String {
    let c = iommu.counters();
    let domains = iommu.domains();
    let mappings: u64 = domains
        .values()
        .map(|d| d.domain.mapping_count() as u64)
        .sum();
    let bytes: u64 = domains.values().map(|d| d.domain.mapped_bytes()).sum();
    let limits = iommu.accounts().limits();
    let mut s = String::new();
    let _ = writeln!(s, "units: {}", iommu.units().len());
    let _ = writeln!(s, "units_initialised: {}", iommu.initialised_units());
    let _ = writeln!(
        s,
        "unassigned_devices: {}",
        iommu.config().unassigned.name()
    );
    let _ = writeln!(s, "domains: {}", domains.len());
    let _ = writeln!(s, "devices_assigned: {}", iommu.devices().len());
    let _ = writeln!(s, "mappings: {mappings}");
    let _ = writeln!(s, "bytes_mapped: {bytes}");
    let _ = writeln!(s, "page_tables: {}", iommu.page_tables());
    let _ = writeln!(s, "invalidations_strict: {}", c.strict_invalidations);
    let _ = writeln!(s, "lazy_flushes: {}", c.lazy_flushes);
    let _ = writeln!(s, "deferred_unmaps: {}", c.deferred_unmaps);
    let _ = writeln!(s, "device_entries_written: {}", c.device_entries_written);
    let _ = writeln!(s, "quarantined: {}", c.quarantined);
    let _ = writeln!(s, "map_invalidations: {}", c.map_invalidations);
    let _ = writeln!(s, "faults: {}", c.faults);
    let _ = writeln!(s, "events: {}", c.events);
    let _ = writeln!(s, "events_dropped: {}", c.events_dropped);
    let _ = writeln!(
        s,
        "limits_per_uid: domains={} handles={} bytes_mapped={} page_tables={}",
        limits.domains_per_uid,
        limits.handles_per_uid,
        limits.mapped_bytes_per_uid,
        limits.page_tables_per_uid
    );
    s
}

fn unit_piece(iommu: &Iommu, i: usize) -> Option<String> {
    let unit = iommu.units().get(i)?;
    let u = unit.stats();
    Some(format!(
        "unit {i}: vendor={} initialised={} device_table={:#x} commands={} page_invalidations={} device_invalidations={} completion_waits={} sync_timeouts={} events={} event_overflows={}\n",
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
    ))
}

fn domain_piece(id: u16, d: &DomainState) -> String {
    let st = d.domain.stats();
    let mut s = String::new();
    let owner = match d.owner {
        Some(o) => format!("pid={} uid={}", o.pid, o.uid),
        None => "none".into(),
    };
    let _ = writeln!(
        s,
        "domain {id}: owner={owner} invalidation={} levels={} mappings={} bytes_mapped={} quota={} page_tables={} devices={} queued_unmaps={} iova_free={}",
        d.invalidation.name(),
        d.domain.levels(),
        st.mappings,
        st.mapped_bytes,
        d.domain.config().quota_bytes,
        d.page_tables,
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
    s
}

/// The next piece of `stats` at `cursor`, advancing it; `None` at the end.
pub fn stats_piece(iommu: &Iommu, cursor: &mut StatsCursor) -> Option<String> {
    loop {
        match *cursor {
            StatsCursor::Summary => {
                *cursor = StatsCursor::Unit(0);
                return Some(summary(iommu));
            }
            StatsCursor::Unit(i) => match unit_piece(iommu, i) {
                Some(piece) => {
                    *cursor = StatsCursor::Unit(i + 1);
                    return Some(piece);
                }
                None => *cursor = StatsCursor::Uid(None),
            },
            StatsCursor::Uid(after) => {
                let next = iommu
                    .accounts()
                    .all()
                    .find(|&(uid, _)| after.is_none_or(|a| uid > a));
                match next {
                    Some((uid, u)) => {
                        *cursor = StatsCursor::Uid(Some(uid));
                        return Some(format!(
                            "uid {uid}: domains={} handles={} bytes_mapped={} page_tables={}\n",
                            u.domains, u.handles, u.mapped_bytes, u.page_tables
                        ));
                    }
                    None => *cursor = StatsCursor::Domain(None),
                }
            }
            StatsCursor::Domain(after) => {
                let lower = match after {
                    None => Bound::Unbounded,
                    Some(a) => Bound::Excluded(a),
                };
                match iommu.domains().range((lower, Bound::Unbounded)).next() {
                    Some((&id, d)) => {
                        *cursor = StatsCursor::Domain(Some(id));
                        return Some(domain_piece(id, d));
                    }
                    None => *cursor = StatsCursor::Done,
                }
            }
            StatsCursor::Done => return None,
        }
    }
}

/// The whole of `stats` at once (tests and tools; the scheme streams it).
pub fn stats(iommu: &Iommu) -> String {
    let mut cursor = StatsCursor::default();
    std::iter::from_fn(|| stats_piece(iommu, &mut cursor)).collect()
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
