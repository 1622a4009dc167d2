//! Starting the unmodified daemons on a simulated machine.

use std::sync::Arc;
use std::thread::JoinHandle;

use crate::kernel::{Cred, Kernel};

/// A daemon running on its own thread; dropping it shuts the scheme down (the daemon
/// reads EOF and returns) and joins the thread.
pub struct RunningDaemon {
    kernel: Arc<Kernel>,
    scheme: String,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl RunningDaemon {
    /// Name of the scheme it serves.
    pub fn scheme(&self) -> &str {
        &self.scheme
    }

    /// Shuts the scheme down and returns how the daemon ended.
    pub fn stop(mut self) -> Result<(), String> {
        self.stop_inner()
    }

    fn stop_inner(&mut self) -> Result<(), String> {
        self.kernel.shutdown_scheme(&self.scheme);
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err("daemon thread panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        if let Err(e) = self.stop_inner() {
            log::error!("{}: {e}", self.scheme);
        }
    }
}

/// Starts `dsmild` (as root) on the simulated DSMIL platform `sim` and waits until
/// its scheme is registered; the test keeps `sim` to poke the firmware and sensor
/// (faults, temperature) and to read the firmware's counters.
pub fn dsmild_simulated(
    kernel: &Arc<Kernel>,
    config: dsmil::Config,
    sim: &crate::hw::smm::SimulatedDsmil,
) -> RunningDaemon {
    dsmild(kernel, config, sim.hardware())
}

/// Starts `dsmild` (as root) and waits until its scheme is registered.
pub fn dsmild(
    kernel: &Arc<Kernel>,
    config: dsmil::Config,
    hardware: dsmil::Hardware,
) -> RunningDaemon {
    let scheme = config.scheme_name.clone();
    start(kernel, "dsmild", scheme, move || {
        dsmil::run(config, hardware).map_err(|e| e.to_string())
    })
}

/// Spawns a daemon as root and waits for its scheme. A daemon that ends before
/// registering is a failed start: this panics with its error rather than waiting
/// forever (these starters serve tests and the demo).
fn start(
    kernel: &Arc<Kernel>,
    name: &str,
    scheme: String,
    run: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> RunningDaemon {
    let thread = kernel.spawn(name, Cred::ROOT, run);
    if !kernel.wait_for_scheme_while(&scheme, || !thread.is_finished()) {
        let why = match thread.join() {
            Ok(Err(e)) => e,
            Ok(Ok(())) => "it returned without registering".into(),
            Err(_) => "it panicked".into(),
        };
        panic!("{name} failed to start scheme {scheme}: {why}");
    }
    RunningDaemon {
        kernel: kernel.clone(),
        scheme,
        thread: Some(thread),
    }
}

/// Starts `iommud` (as root) in front of the simulated AMD-Vi unit `unit` and
/// waits until its scheme is registered. Plug the unit into a device's DMA
/// engine with [`crate::hw::amdvi::SimAmdVi::attach`].
pub fn iommud(
    kernel: &Arc<Kernel>,
    config: iommu::Config,
    unit: &Arc<crate::hw::amdvi::SimAmdVi>,
) -> RunningDaemon {
    let scheme = config.scheme_name.clone();
    let mmio = unit.mmio();
    start(kernel, "iommud", scheme, move || {
        iommu::run(config, vec![mmio]).map_err(|e| e.to_string())
    })
}

/// Starts `iommud` (as root) exactly as its Redox `main.rs` does: the units come
/// from the DMAR (Intel VT-d) or else the IVRS in `/scheme/acpi/tables`
/// (`overrides`, the command-line register bases, name AMD-Vi units and replace
/// the IVRS's), each mapped through `/scheme/memory/physical@uc`
/// ([`iommu::physmap::PhysmapMmio`]). In guest mode the table is QEMU's and the
/// physmap reaches QEMU's unit through `/dev/mem`.
pub fn iommud_physmap(
    kernel: &Arc<Kernel>,
    config: iommu::Config,
    overrides: Vec<u64>,
) -> RunningDaemon {
    let scheme = config.scheme_name.clone();
    start(kernel, "iommud", scheme, move || {
        // As main.rs: an Intel machine's DMAR first, unless bases are given.
        if overrides.is_empty() {
            let map_vtd = |base| {
                iommu::physmap::PhysmapMmio::map_len(base, iommu::vtd::discovery::REGISTER_WINDOW)
                    .map(|m| Box::new(m) as Box<dyn iommu::vtd::VtdMmio>)
            };
            let found = iommu::vtd::discovery::discover(config.clone(), map_vtd)
                .map_err(|e| e.to_string())?;
            if let Some(state) = found {
                return iommu::daemon::serve(state, iommu::startup::InitNotify::none())
                    .map_err(|e| e.to_string());
            }
        }
        let map = |base| {
            iommu::physmap::PhysmapMmio::map(base)
                .map(|m| Box::new(m) as Box<dyn iommu::amdvi::AmdViMmio>)
        };
        let state =
            iommu::discovery::discover(config, &overrides, map).map_err(|e| e.to_string())?;
        iommu::daemon::serve(state, iommu::startup::InitNotify::none()).map_err(|e| e.to_string())
    })
}

/// Starts `iommud` the way it starts on a machine with an IVRS: no register
/// bases given, the units found in `/scheme/acpi/tables/IVRS-…` and brought
/// up from there (`iommu::discovery::discover`). Mapping a unit's register
/// base is the one step the host supplies, as it supplies the registers of
/// [`iommud`]: the base must be one of `units`' (`ENODEV` otherwise).
pub fn iommud_from_firmware(
    kernel: &Arc<Kernel>,
    config: iommu::Config,
    units: &[Arc<crate::hw::amdvi::SimAmdVi>],
) -> RunningDaemon {
    let scheme = config.scheme_name.clone();
    let units: Vec<_> = units.to_vec();
    start(kernel, "iommud", scheme, move || {
        let map = |base: u64| {
            units
                .iter()
                .find(|u| u.placement().mmio_base == base)
                .map(|u| u.mmio())
                .ok_or(syscall::Error::new(syscall::error::ENODEV))
        };
        let state = iommu::discovery::discover(config, &[], map).map_err(|e| e.to_string())?;
        iommu::daemon::serve(state, iommu::startup::InitNotify::none()).map_err(|e| e.to_string())
    })
}

/// Starts `iommud` the way it starts on an Intel machine: no arguments, the
/// unit found in the `DMAR` the simulated firmware publishes
/// (`iommu::vtd::discovery::discover`), the DRHD's register window being
/// `unit`'s (the host stand-in for the physmap iommud does on Redox; any
/// other base is `ENODEV`).
pub fn iommud_vtd(
    kernel: &Arc<Kernel>,
    config: iommu::Config,
    unit: &Arc<crate::hw::vtd::SimVtd>,
) -> RunningDaemon {
    let scheme = config.scheme_name.clone();
    let unit = unit.clone();
    start(kernel, "iommud", scheme, move || {
        let map = |base: u64| {
            if base == crate::hw::vtd::QEMU_REGISTER_BASE {
                Ok(unit.mmio())
            } else {
                Err(syscall::Error::new(syscall::error::ENODEV))
            }
        };
        let state = iommu::vtd::discovery::discover(config, map)
            .map_err(|e| e.to_string())?
            .ok_or("no DMAR published")?;
        iommu::daemon::serve(state, iommu::startup::InitNotify::none()).map_err(|e| e.to_string())
    })
}
