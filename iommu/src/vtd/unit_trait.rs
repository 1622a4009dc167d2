//! [`VtdUnit`] behind the vendor-neutral [`IommuUnit`] trait.

use syscall::error::{EINVAL, Error, Result};

use super::context::{ContextEntry, TranslationType};
use super::fault::FaultRecord;
use super::format::format_for;
use super::unit::VtdUnit;
use crate::format::PageTableFormat;
use crate::unit::{
    DeviceState, DomainTables, FaultCause, IommuUnit, UnitCapabilities, UnitFault, UnitStats,
    Vendor,
};

impl VtdUnit {
    fn entry_for(&self, state: DeviceState) -> Result<ContextEntry> {
        let f = self.features();
        Ok(match state {
            DeviceState::Blocked => ContextEntry::BLOCKED,
            DeviceState::Passthrough => {
                if !f.pass_through {
                    return Err(Error::new(syscall::error::EOPNOTSUPP));
                }
                ContextEntry::pass_through(self.passthrough_did(), f.agaw)
            }
            DeviceState::Translated(t) => {
                // The context AW names the levels; the tables must have them.
                if t.levels != f.levels || t.domain_id == self.passthrough_did() {
                    return Err(Error::new(EINVAL));
                }
                ContextEntry::translated(t.domain_id, t.root, f.agaw)
            }
        })
    }
}

/// The vendor-neutral record of a fault record. VT-d reports a missing page
/// and a missing permission alike (reason 5 for a write, 6 for a read), so
/// both count as [`FaultCause::Permission`]; the raw reason is in `code`.
pub fn fault_of(record: &FaultRecord, domain_id: u16) -> UnitFault {
    let cause = match record.reason.0 {
        0x1 | 0x2 | 0x4 => FaultCause::NotPresent,
        0x5 | 0x6 => FaultCause::Permission,
        _ => FaultCause::Other,
    };
    UnitFault {
        requester_id: record.source_id,
        domain_id,
        address: record.address,
        write: !record.read,
        cause,
        code: u16::from(record.reason.0),
    }
}

impl IommuUnit for VtdUnit {
    fn vendor(&self) -> Vendor {
        Vendor::Vtd
    }

    /// [`VtdUnit::init`], then translation on (Linux enables TE last, once
    /// the context entries exist; here they all exist from construction).
    fn init(&mut self) -> Result<bool> {
        if !VtdUnit::init(self)? {
            return Ok(false);
        }
        self.enable_translation()?;
        Ok(true)
    }

    fn is_initialised(&self) -> bool {
        VtdUnit::is_initialised(self)
    }

    fn capabilities(&self) -> UnitCapabilities {
        let f = self.features();
        UnitCapabilities {
            caches_not_present: f.caching_mode,
            max_levels: f.levels,
            // DID 0 is reserved below, the pass-through DID above.
            max_domain_id: self.passthrough_did().saturating_sub(1),
        }
    }

    fn page_table_format(&self) -> &'static dyn PageTableFormat {
        let f = self.features();
        format_for(f.levels, f.superpage_2m, f.superpage_1g)
    }

    fn table_phys(&self) -> u64 {
        self.root_table()
    }

    fn set_device(&mut self, rid: u16, state: DeviceState) -> Result<()> {
        let entry = self.entry_for(state)?;
        self.set_context(rid, entry)
    }

    fn device(&self, rid: u16) -> Option<DeviceState> {
        let e = self.context_entry(rid);
        if e == ContextEntry::BLOCKED {
            return Some(DeviceState::Blocked);
        }
        let did = e.domain()?;
        match e.translation_type()? {
            TranslationType::PassThrough => Some(DeviceState::Passthrough),
            TranslationType::Translated => Some(DeviceState::Translated(DomainTables {
                domain_id: did,
                root: e.root(),
                levels: e.agaw() + 2,
            })),
        }
    }

    /// A PSI with IH = 0 (the caller does not say whether tables were
    /// freed, so paging-structure caches are always dropped too), or a DSI.
    fn invalidate_range(&mut self, domain_id: u16, iova: u64, size: u64) -> Result<()> {
        VtdUnit::invalidate_range(self, domain_id, iova, size, false)
    }

    fn invalidate_domain(&mut self, domain_id: u16) -> Result<()> {
        VtdUnit::invalidate_domain(self, domain_id)
    }

    /// Device-selective context-cache invalidation tagged with the DID the
    /// entry holds now (DID 0 for a not-present one: what caching mode
    /// caches it under), plus a DSI of that DID.
    fn invalidate_device(&mut self, rid: u16) -> Result<()> {
        let did = self.context_entry(rid).domain().unwrap_or(0);
        self.invalidate_device_context(rid, did)
    }

    fn sync(&mut self) -> Result<()> {
        VtdUnit::sync(self)
    }

    fn drain_faults(&mut self, sink: &mut dyn FnMut(UnitFault)) -> usize {
        let mut records = Vec::new();
        let n = VtdUnit::drain_faults(self, |r| records.push(r));
        for r in &records {
            let did = self.context_entry(r.source_id).domain().unwrap_or(0);
            sink(fault_of(r, did));
        }
        n
    }

    fn stats(&self) -> UnitStats {
        let s = VtdUnit::stats(self);
        UnitStats {
            commands: s.descriptors,
            page_invalidations: s.page_invalidations + s.domain_invalidations,
            device_invalidations: s.context_invalidations,
            completion_waits: s.waits,
            sync_timeouts: s.sync_timeouts,
            events: s.faults,
            event_overflows: s.fault_overflows,
        }
    }
}
