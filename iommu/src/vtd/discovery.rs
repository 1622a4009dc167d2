//! Bring-up from a `DMAR`: iommud on an Intel machine needs no arguments.
//!
//! The DMAR is read from acpid ([`crate::acpi::read_table`]), parsed
//! ([`crate::dmar`]) into the vendor-neutral [`Topology`] the AMD-Vi side
//! fills from its IVRS: one [`UnitSite`] per DRHD of segment 0 (the units
//! that list their devices first, the INCLUDE_PCI_ALL one last, so the
//! first unit covering a device is the one Linux's
//! `dmar_find_matched_drhd_unit` picks), and one identity-mapped
//! [`UnityRange`] per RMRR and device. Each DRHD's register window is
//! mapped by the caller's `map` (a physmap on Redox, the simulated unit on
//! Linux).

use syscall::error::{EINVAL, ENODEV, ENOENT};

use super::{VtdMmio, VtdUnit};
use crate::config::{Config, UnassignedDevices};
use crate::daemon::{DaemonError, build_with};
use crate::dmar::{Dmar, Drhd, FlatTopology, PciTopology, ScopeKind};
use crate::ivrs::{Coverage, DeviceRange, DeviceSet};
use crate::protocol::MapFlags;
use crate::service::Iommu;
use crate::topology::{Topology, UnitSite, UnityRange};
use crate::unit::{DeviceState, IommuUnit};

/// Signature of the table.
pub const SIGNATURE: [u8; 4] = *b"DMAR";

/// The requester ids one DRHD lists: endpoints, bridges with every bus
/// below them (when `topology` knows it), I/O APIC/HPET source ids; or all.
fn coverage(drhd: &Drhd, topology: &dyn PciTopology) -> Coverage {
    let mut ranges = Vec::new();
    for scope in &drhd.scopes {
        match scope.kind {
            ScopeKind::Endpoint | ScopeKind::Bridge => {
                let Some(bdf) = scope.resolve(topology) else {
                    log::warn!("iommud: DMAR scope {scope:?} does not resolve, skipped");
                    continue;
                };
                let rid = bdf.requester_id();
                ranges.push(DeviceRange {
                    first: rid,
                    last: rid,
                    alias: None,
                });
                if scope.kind == ScopeKind::Bridge
                    && let Some((sec, sub)) = topology.bridge_buses(bdf)
                {
                    ranges.push(DeviceRange {
                        first: u16::from(sec) << 8,
                        last: (u16::from(sub) << 8) | 0xFF,
                        alias: None,
                    });
                }
            }
            // An I/O APIC or HPET: its source id is start bus + path.
            ScopeKind::IoApic | ScopeKind::Hpet => {
                if let Some(&(dev, func)) = scope.path.first() {
                    let rid = (u16::from(scope.start_bus) << 8)
                        | (u16::from(dev & 0x1F) << 3)
                        | u16::from(func & 7);
                    ranges.push(DeviceRange {
                        first: rid,
                        last: rid,
                        alias: None,
                    });
                }
            }
            _ => log::info!("iommud: DMAR scope {:?} ignored", scope.kind),
        }
    }
    Coverage {
        all: drhd.include_pci_all(),
        ranges,
        specials: Vec::new(),
    }
}

/// The topology of a DMAR (see the module documentation).
pub fn topology_from_dmar(dmar: &Dmar, pci: &dyn PciTopology) -> Topology {
    let listed = dmar.units.iter().filter(|d| !d.include_pci_all());
    let catch_all = dmar.units.iter().filter(|d| d.include_pci_all());
    let units = listed
        .chain(catch_all)
        .filter(|d| {
            if d.segment != 0 {
                log::warn!("iommud: DRHD of PCI segment {} ignored", d.segment);
            }
            d.segment == 0
        })
        .map(|d| UnitSite {
            base: d.register_base,
            segment: 0,
            device_id: 0,
            coverage: coverage(d, pci),
        })
        .collect();
    let mut unity = Vec::new();
    for r in dmar.reserved.iter().filter(|r| r.segment == 0) {
        for scope in &r.scopes {
            let Some(bdf) = scope.resolve(pci) else {
                continue;
            };
            let rid = bdf.requester_id();
            unity.push(UnityRange {
                devices: DeviceSet::Range(rid, rid),
                start: r.base,
                length: r.size(),
                flags: MapFlags::READ_WRITE,
            });
        }
    }
    Topology { units, unity }
}

/// The DMAR's topology: `Ok(None)` when the firmware has no DMAR.
pub fn firmware_topology() -> Result<Option<Topology>, DaemonError> {
    let bytes = match crate::acpi::read_table(&SIGNATURE) {
        Ok(bytes) => bytes,
        Err(e) if e.errno == ENOENT => return Ok(None),
        Err(e) => return Err(DaemonError::Sys("reading the DMAR table", e.errno)),
    };
    let dmar = Dmar::parse(&bytes).map_err(|e| {
        log::error!("iommud: {e}");
        DaemonError::Sys("parsing the DMAR table", EINVAL)
    })?;
    Ok(Some(topology_from_dmar(&dmar, &FlatTopology)))
}

/// Bytes of register window mapped per unit: one page covers every unit
/// whose fault records and IOTLB registers lie in its first page (QEMU's
/// lie below 0x230); [`VtdUnit::new`] reads CAP/ECAP from it.
pub const REGISTER_WINDOW: u64 = 4096;

/// Builds the state for VT-d units behind `units`: each unit's root table,
/// context tables and invalidation queue, every context entry as
/// `config.unassigned` says (pass-through unless configured to block).
pub fn build_vtd(config: Config, units: Vec<Box<dyn VtdMmio>>) -> Result<Iommu, DaemonError> {
    let bits = config.address_bits;
    let unassigned = match config.unassigned {
        UnassignedDevices::Passthrough => DeviceState::Passthrough,
        UnassignedDevices::Blocked => DeviceState::Blocked,
    };
    build_with(config, |memory| {
        let mut drivers: Vec<Box<dyn IommuUnit>> = Vec::with_capacity(units.len());
        for mmio in units {
            drivers.push(Box::new(VtdUnit::new(mmio, memory, bits, unassigned)?));
        }
        Ok(drivers)
    })
}

/// The served state of a VT-d machine, from its DMAR: `Ok(None)` without a
/// DMAR (then the machine is an AMD one, [`crate::discovery::discover`]).
/// `map` maps a register base ([`REGISTER_WINDOW`] bytes).
pub fn discover(
    config: Config,
    mut map: impl FnMut(u64) -> syscall::Result<Box<dyn VtdMmio>>,
) -> Result<Option<Iommu>, DaemonError> {
    let Some(topology) = firmware_topology()? else {
        return Ok(None);
    };
    if topology.units.is_empty() {
        return Err(DaemonError::Sys("finding a DRHD in the DMAR", ENODEV));
    }
    let mut units = Vec::with_capacity(topology.units.len());
    for site in &topology.units {
        log::info!("iommud: VT-d unit at {:#x}", site.base);
        units.push(
            map(site.base).map_err(|e| DaemonError::Sys("mapping a unit's registers", e.errno))?,
        );
    }
    let mut iommu = build_vtd(config, units)?;
    iommu.set_topology(topology);
    Ok(Some(iommu))
}
