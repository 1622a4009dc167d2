//! Bring-up from the firmware: iommud with an `IVRS` needs no arguments.
//!
//! The IVRS is read from acpid (`/scheme/acpi/tables/IVRS-…`), parsed
//! ([`crate::ivrs`]) into a [`Topology`], and each unit's register base is
//! mapped by the caller's `map` (on Redox a physmap of the MMIO page,
//! [`crate::physmap::PhysmapMmio`]; on Linux the host's simulated unit).
//! Register bases given on the command line override the table's, in order;
//! with overrides a missing or malformed table is only a warning (the
//! command line then describes the machine), without them it is an error.
//! VT-d machines will find their units in `DMAR` and fill the same
//! [`Topology`].

use syscall::error::{EINVAL, ENODEV, ENOENT};

use crate::amdvi::AmdViMmio;
use crate::config::Config;
use crate::daemon::{DaemonError, build};
use crate::ivrs::Ivrs;
use crate::service::Iommu;
use crate::topology::Topology;

/// The topology the firmware describes: `Ok(None)` without an IVRS.
pub fn firmware_topology() -> Result<Option<Topology>, DaemonError> {
    let bytes = match crate::acpi::read_table(&crate::ivrs::SIGNATURE) {
        Ok(bytes) => bytes,
        Err(e) if e.errno == ENOENT => return Ok(None),
        Err(e) => return Err(DaemonError::Sys("reading the IVRS table", e.errno)),
    };
    let ivrs = Ivrs::parse(&bytes).map_err(|e| {
        log::error!("iommud: IVRS: {e}");
        DaemonError::Sys("parsing the IVRS table", EINVAL)
    })?;
    Ok(Some(Topology::from_ivrs(&ivrs)))
}

/// The topology and the register bases to drive: the firmware's, with
/// `overrides` (command-line bases) replacing its bases in order.
pub fn plan(overrides: &[u64]) -> Result<(Topology, Vec<u64>), DaemonError> {
    let firmware = match firmware_topology() {
        Ok(t) => t,
        Err(e) if !overrides.is_empty() => {
            log::warn!("iommud: {e}; using the command line's units only");
            None
        }
        Err(e) => return Err(e),
    };
    let mut topology = firmware.unwrap_or_default();
    if overrides.is_empty() {
        let bases: Vec<u64> = topology.units.iter().map(|u| u.base).collect();
        if bases.is_empty() {
            return Err(DaemonError::Sys("finding an IOMMU unit in IVRS", ENODEV));
        }
        return Ok((topology, bases));
    }
    if topology.units.len() == overrides.len() {
        for (unit, &base) in topology.units.iter_mut().zip(overrides) {
            unit.base = base;
        }
    } else {
        if !topology.units.is_empty() {
            log::warn!(
                "iommud: {} bases given, the IVRS lists {} units: device coverage from the table is not used",
                overrides.len(),
                topology.units.len()
            );
        }
        topology.units.clear();
    }
    Ok((topology, overrides.to_vec()))
}

/// Builds the served state from the firmware's description (see the module
/// documentation): maps every unit with `map`, brings the units up with
/// every device in the configured default, and installs the topology.
pub fn discover(
    config: Config,
    overrides: &[u64],
    mut map: impl FnMut(u64) -> syscall::Result<Box<dyn AmdViMmio>>,
) -> Result<Iommu, DaemonError> {
    let (topology, bases) = plan(overrides)?;
    let mut units = Vec::with_capacity(bases.len());
    for base in bases {
        log::info!("iommud: AMD-Vi unit at {base:#x}");
        units.push(map(base).map_err(|e| DaemonError::Sys("mapping a unit's registers", e.errno))?);
    }
    let mut iommu = build(config, units)?;
    iommu.set_topology(topology);
    Ok(iommu)
}
