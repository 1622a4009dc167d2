//! The in-process programs of the simulated machine's binaries: what runs when
//! init or pcid-spawner executes `/usr/bin/iommud` or `/usr/lib/drivers/dsmild`.
//! Each is the daemon's own startup (`dsmil::startup::start`, `iommu::serve` with
//! `InitNotify` from the environment it was given), with the simulated hardware
//! in place of the real one.

use std::collections::BTreeMap;
use std::sync::Arc;

use driver_sys::daemon::InitNotify;
use dsmil::startup::Platform;

use super::Program;
use crate::hw::amdvi::SimAmdVi;
use crate::hw::smm::SimulatedDsmil;
use crate::hw::smm_calling_interface::{PhysSmiBuffer, SmmCallingInterface};
use crate::mock::phys::PhysArena;

/// The simulated DSMIL platform as dsmild's [`Platform`]: its SMM ports (legacy
/// SMI, calling interface, i8k) and command buffers in simulated RAM.
pub struct SimPlatform {
    sim: SimulatedDsmil,
    phys: Arc<PhysArena>,
}

impl SimPlatform {
    /// The platform of `sim`, with buffers from `phys`.
    pub fn new(sim: &SimulatedDsmil, phys: &Arc<PhysArena>) -> SimPlatform {
        SimPlatform {
            sim: sim.clone(),
            phys: phys.clone(),
        }
    }
}

impl Platform for SimPlatform {
    type Ports = SmmCallingInterface;
    type Buffer = PhysSmiBuffer;
    fn ports(&self) -> syscall::Result<SmmCallingInterface> {
        Ok(self.sim.calling_interface_trigger(&self.phys))
    }
    fn smi_buffer(&self) -> syscall::Result<PhysSmiBuffer> {
        PhysSmiBuffer::new(&self.phys)
    }
    fn mmio(
        &self,
        _base: u64,
        _resident: usize,
    ) -> syscall::Result<Box<dyn dsmil::platform::MmioAccess + Send>> {
        // The simulated machine has no MMIO window at a physical base (tests hand
        // dsmild a simulated one through `Hardware::mmio`).
        Err(syscall::Error::new(syscall::error::ENODEV))
    }
}

/// `dsmild` on the simulated DSMIL platform `sim`.
pub fn dsmild(sim: &SimulatedDsmil, phys: &Arc<PhysArena>) -> Program {
    let platform = Arc::new(SimPlatform::new(sim, phys));
    Arc::new(move |startup| dsmil::startup::start(&startup, &*platform))
}

/// `iommud` as its `main` runs it: command-line bases as overrides, the units
/// otherwise found in the IVRS the simulated machine publishes; mapping a unit's
/// register base (a physmap on Redox) is the step the host supplies, from `unit`.
pub fn iommud(unit: &Arc<SimAmdVi>) -> Program {
    let unit = unit.clone();
    Arc::new(move |startup| {
        let notify = InitNotify::from_startup(&startup, "iommud");
        let mut overrides = Vec::new();
        for arg in &startup.args {
            let hex = arg.strip_prefix("0x").unwrap_or(arg);
            let base = u64::from_str_radix(hex, 16)
                .map_err(|_| format!("iommud: `{arg}` is not a register base address"))?;
            overrides.push(base);
        }
        let map = |base: u64| {
            if unit.placement().mmio_base == base {
                Ok(unit.mmio())
            } else {
                Err(syscall::Error::new(syscall::error::ENODEV))
            }
        };
        iommu::discovery::discover(iommu::Config::default(), &overrides, map)
            .and_then(|state| iommu::daemon::serve(state, notify))
            .map_err(|e| e.to_string())
    })
}

/// Both daemons of the simulated machine, by binary name.
pub fn simulated_machine(
    sim: &SimulatedDsmil,
    phys: &Arc<PhysArena>,
    unit: &Arc<SimAmdVi>,
) -> BTreeMap<String, Program> {
    BTreeMap::from([
        ("dsmild".to_string(), dsmild(sim, phys)),
        ("iommud".to_string(), iommud(unit)),
    ])
}
