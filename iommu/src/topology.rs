//! What the firmware says about the machine's IOMMUs, vendor-neutral: where
//! each unit is, which requester ids it translates (and under which alias),
//! and which memory ranges devices must keep reaching at their own address.
//!
//! AMD machines describe it in `IVRS` ([`Topology::from_ivrs`]); Intel
//! machines in `DMAR` (DRHD scopes, RMRRs), which fills the same structure.
//! [`crate::acpi`] finds the table; the service asks the topology which unit
//! owns a device, which alias its DMA carries, and which ranges to identity
//! map in every domain the device joins.

use crate::ivrs::{Coverage, DeviceSet, Ivrs};
use crate::protocol::MapFlags;

/// One unit as the firmware places it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnitSite {
    /// Register base (MMIO physical address).
    pub base: u64,
    /// PCI segment.
    pub segment: u16,
    /// The unit's own PCI function.
    pub device_id: u16,
    /// Requester ids it translates.
    pub coverage: Coverage,
}

/// Memory devices must reach untranslated: identity mapped (IOVA = physical
/// address) in every domain one of `devices` joins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnityRange {
    /// Which devices.
    pub devices: DeviceSet,
    /// First byte (page aligned).
    pub start: u64,
    /// Bytes (page multiple).
    pub length: u64,
    /// Device permissions.
    pub flags: MapFlags,
}

/// The firmware's description of the IOMMUs. Empty: one unit (index 0) that
/// covers everything, no aliases, no unity ranges (command-line units).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Topology {
    /// Units, in the order iommud drives them.
    pub units: Vec<UnitSite>,
    /// Identity-mapped ranges.
    pub unity: Vec<UnityRange>,
}

impl Topology {
    /// The units of an IVRS (its highest IVHD type; segment 0, the one this
    /// daemon drives) and its identity-mapped IVMD ranges.
    pub fn from_ivrs(ivrs: &Ivrs) -> Topology {
        let units = ivrs
            .units()
            .filter(|u| u.segment == 0)
            .map(|u| UnitSite {
                base: u.base,
                segment: u.segment,
                device_id: u.device_id,
                coverage: u.coverage.clone(),
            })
            .collect();
        let unity = ivrs
            .ivmds
            .iter()
            .filter(|m| m.segment == 0 && m.identity_mapped())
            .map(|m| {
                let mut flags = MapFlags::default();
                if m.readable() {
                    flags = flags.union(MapFlags::READ);
                }
                if m.writable() {
                    flags = flags.union(MapFlags::WRITE);
                }
                UnityRange {
                    devices: m.devices,
                    start: m.start,
                    length: m.length,
                    flags,
                }
            })
            .collect();
        Topology { units, unity }
    }

    /// The unit translating requester `rid`: the first whose coverage names
    /// it; with no firmware description, unit 0.
    pub fn unit_of(&self, rid: u16) -> Option<usize> {
        if self.units.is_empty() {
            return Some(0);
        }
        self.units.iter().position(|u| u.coverage.covers(rid))
    }

    /// The requester id `rid`'s DMA really carries, when firmware says it is
    /// aliased (the unit then looks up that id's entry).
    pub fn alias_of(&self, rid: u16) -> Option<u16> {
        self.units
            .iter()
            .find(|u| u.coverage.covers(rid))
            .and_then(|u| u.coverage.alias_of(rid))
            .filter(|&a| a != rid)
    }

    /// The ranges to identity map in a domain `rid` joins.
    pub fn unity_for(&self, rid: u16) -> impl Iterator<Item = &UnityRange> {
        self.unity.iter().filter(move |r| r.devices.contains(rid))
    }
}
