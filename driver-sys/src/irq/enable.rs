//! Turning a function's interrupts on: the degradation plan run against real
//! vectors and real capability programming.
//!
//! [`enable_interrupts`] reads the function's MSI-X and MSI capabilities and its
//! INTx pin through pcid, then walks [`plan_interrupts`]: each attempt reserves
//! vectors from the `irq` scheme ([`InterruptVectors`]) and programs the device —
//! MSI-X: function mask on, enable, every entry masked, entries written and
//! unmasked, function mask off; MSI: an aligned block, the message and the
//! multiple-message field, then enable; INTx: open the routed line. A failed
//! attempt gives its vectors back and leaves the capability disabled, so the next
//! step starts clean. Each step is logged; the plan's steps are returned.
//! [`InterruptSetup::set_affinity`] later moves one interrupt to another CPU.

use std::path::Path;
use std::sync::Arc;

use crate::msi::{MsiCapability, MsiError, MsixCapability, MsixPba, MsixTable};
use crate::pci::function::{MappedBar, PciFunction};
use crate::pci::{CAP_ID_MSI, CAP_ID_MSIX, ConfigSpace, find_capability};
use crate::quirks::{QUIRKS_DIR, QuirkFlags, QuirkTable};
use crate::vector::CpuMask;

use super::handle::IrqHandle;
use super::plan::{IrqCapabilities, IrqMode, PlanError, PlanStep, plan_interrupts};
use super::vectors::InterruptVectors;

/// Offset of the interrupt-pin byte.
const REG_INTERRUPT_PIN: u16 = 0x3D;

/// The MSI-X structures of a function with MSI-X enabled.
pub struct MsixVectors {
    /// The capability.
    pub capability: MsixCapability,
    /// The table (through the mapped BAR).
    pub table: MsixTable<Arc<MappedBar>>,
    /// The pending bit array.
    pub pba: MsixPba<Arc<MappedBar>>,
}

/// A function's interrupts, set up.
pub struct InterruptSetup {
    /// Mode in use.
    pub mode: IrqMode,
    /// One handle per vector (entry i of the MSI-X table / message i of MSI), or
    /// the INTx line.
    pub handles: Vec<IrqHandle>,
    /// Every step of the degradation chain.
    pub steps: Vec<PlanStep>,
    /// MSI-X table access, in MSI-X mode.
    pub msix: Option<MsixVectors>,
    /// The MSI capability, in MSI mode.
    pub msi: Option<MsiCapability>,
    /// Whether any vector landed outside the affinity mask.
    pub affinity_broken: bool,
}

impl InterruptSetup {
    /// Whether the chain had to step down from the first choice.
    pub fn is_degraded(&self) -> bool {
        self.steps.len() > 1
    }

    /// Sends interrupt `index` to CPU `cpu`. The kernel has no affinity interface
    /// (redox-real.md §1.8): a vector's CPU is the `cpu-XX` it was reserved in plus
    /// the APIC id in the message. So this reserves a vector on `cpu`
    /// ([`IrqHandle::move_to_cpu`]; the old one stays in the process's idle pool)
    /// and rewrites the device's message: MSI-X entry `index` masked, programmed,
    /// unmasked (an interrupt meanwhile is held in the PBA and delivered at unmask);
    /// single-vector MSI reprogrammed and re-enabled. The handle's fd changes:
    /// subscribe it again and read it once. `EINVAL` for INTx (legacy lines go to
    /// the BSP) and for one vector of a multi-message MSI block (the block shares
    /// one address).
    pub fn set_affinity(
        &mut self,
        function: &mut PciFunction,
        index: usize,
        cpu: u32,
    ) -> syscall::Result<()> {
        use syscall::error::{EINVAL, EIO, Error};
        let addr = function.address();
        let eio = move |e: MsiError| {
            log::error!("{addr}: moving interrupt {index}: {e}");
            Error::new(EIO)
        };
        let single_msi = self.handles.len() == 1;
        let handle = self.handles.get_mut(index).ok_or(Error::new(EINVAL))?;
        match self.mode {
            IrqMode::MsiX => {
                let msix = self.msix.as_ref().ok_or(Error::new(EINVAL))?;
                let entry = u16::try_from(index).map_err(|_| Error::new(EINVAL))?;
                msix.table.mask(entry).map_err(eio)?;
                let moved = handle.move_to_cpu(cpu).and_then(|()| handle.msi_message());
                let r = match moved {
                    Ok(msg) => msix.table.program(entry, &msg).map_err(eio),
                    Err(e) => Err(e),
                };
                msix.table.unmask(entry).map_err(eio)?;
                r
            }
            IrqMode::Msi if single_msi => {
                let cap = self.msi.as_mut().ok_or(Error::new(EINVAL))?;
                handle.move_to_cpu(cpu)?;
                let msg = handle.msi_message()?;
                cap.program(function, &msg, 1).map_err(eio)?;
                cap.set_enabled(function, true).map_err(eio)
            }
            IrqMode::Msi | IrqMode::Intx => Err(Error::new(EINVAL)),
        }
    }
}

impl core::fmt::Debug for InterruptSetup {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InterruptSetup")
            .field("mode", &self.mode)
            .field("handles", &self.handles)
            .field("steps", &self.steps)
            .finish_non_exhaustive()
    }
}

/// The quirks of `function`: the built-in table plus `*.toml` files in `dir`
/// (`/etc/quirks.d` when `None`). Bad files are logged and skipped.
pub fn function_quirks(function: &PciFunction, dir: Option<&Path>) -> QuirkFlags {
    let mut table = QuirkTable::builtin();
    for e in table.load_dir(dir.unwrap_or(Path::new(QUIRKS_DIR))) {
        log::warn!("quirks: {e}");
    }
    let flags = table.lookup(&function.identity());
    if !flags.is_empty() {
        log::info!("{}: quirks {flags}", function.address());
    }
    flags
}

enum Grant {
    MsiX(Vec<IrqHandle>, MsixVectors),
    Msi(Vec<IrqHandle>, MsiCapability),
    Intx(IrqHandle),
}

fn msi_err(e: MsiError) -> String {
    e.to_string()
}

fn setup_msix(
    function: &mut PciFunction,
    cap: &mut MsixCapability,
    handles: &[IrqHandle],
) -> Result<MsixVectors, String> {
    let table_bar = function.map_bar(cap.table.bir).map_err(|e| e.to_string())?;
    let pba_bar = function.map_bar(cap.pba.bir).map_err(|e| e.to_string())?;
    let table = MsixTable::from_capability(table_bar, cap);
    let pba = MsixPba::from_capability(pba_bar, cap);
    let addr = function.address();
    let r = (|| -> Result<(), String> {
        cap.set_function_masked(function, true).map_err(msi_err)?;
        cap.set_enabled(function, true).map_err(msi_err)?;
        table.mask_all().map_err(msi_err)?;
        for (i, h) in handles.iter().enumerate() {
            let msg = h.msi_message().map_err(|e| e.to_string())?;
            let index = u16::try_from(i).map_err(|_| "too many vectors".to_string())?;
            table.program(index, &msg).map_err(msi_err)?;
            table.unmask(index).map_err(msi_err)?;
            log::info!(
                "{addr}: MSI-X entry {i} -> CPU {} (APIC {}) vector {}",
                h.cpu().unwrap_or(0),
                h.apic_id(),
                h.vector()
            );
        }
        cap.set_function_masked(function, false).map_err(msi_err)
    })();
    if let Err(e) = r {
        let _ = table.mask_all();
        let _ = cap.set_enabled(function, false);
        return Err(e);
    }
    Ok(MsixVectors {
        capability: *cap,
        table,
        pba,
    })
}

fn setup_msi(
    function: &mut PciFunction,
    cap: &mut MsiCapability,
    handles: &[IrqHandle],
) -> Result<(), String> {
    let first = handles.first().ok_or("no vectors")?;
    let msg = first.msi_message().map_err(|e| e.to_string())?;
    let count = handles.len() as u32;
    let r = cap
        .program(function, &msg, count)
        .and_then(|()| cap.set_enabled(function, true));
    if let Err(e) = r {
        let _ = cap.set_enabled(function, false);
        return Err(e.to_string());
    }
    log::info!(
        "{}: MSI x{count} -> APIC {} vectors {}..",
        function.address(),
        first.apic_id(),
        first.vector()
    );
    Ok(())
}

/// Enables `wanted` interrupts of `function`, degrading MSI-X → fewer MSI-X
/// vectors → MSI → INTx as vectors, capabilities and `quirks` allow. MSI-X
/// vectors are spread round-robin over `affinity`; an MSI block goes to one CPU
/// of it.
pub fn enable_interrupts(
    function: &mut PciFunction,
    vectors: &InterruptVectors,
    wanted: u32,
    quirks: QuirkFlags,
    affinity: &CpuMask,
) -> Result<InterruptSetup, PlanError> {
    let no_steps = || PlanError::NoInterrupt { steps: Vec::new() };
    let msix_off = find_capability(function, CAP_ID_MSIX)
        .ok()
        .flatten()
        .map(|c| c.offset);
    let msi_off = find_capability(function, CAP_ID_MSI)
        .ok()
        .flatten()
        .map(|c| c.offset);
    let bar_sizes = function.bar_sizes();
    let mut msix = msix_off
        .and_then(|o| MsixCapability::parse(function, o).ok())
        .filter(|c| match c.validate_bars(&bar_sizes) {
            Ok(()) => true,
            Err(e) => {
                log::warn!("{}: MSI-X unusable: {e}", function.address());
                false
            }
        });
    let mut msi = msi_off.and_then(|o| MsiCapability::parse(function, o).ok());
    let pin = function
        .read_u8(REG_INTERRUPT_PIN)
        .map_err(|_| no_steps())?;
    let line = function.info().legacy_interrupt_line.map(|l| l.irq);
    let caps = IrqCapabilities::from_capabilities(
        msix.as_ref(),
        msi.as_ref(),
        if line.is_some() { pin } else { 0 },
    );
    let rotate = function.address().device as usize;
    let plan = plan_interrupts(
        &caps,
        quirks,
        wanted,
        &mut |mode: IrqMode, count: u32| match mode {
            IrqMode::MsiX => {
                let cap = msix.as_mut().ok_or("no MSI-X")?;
                let handles = vectors
                    .reserve_spread(count as usize, affinity, rotate)
                    .map_err(|e| format!("vectors: {e}"))?;
                let table = setup_msix(function, cap, &handles)?;
                Ok(Grant::MsiX(handles, table))
            }
            IrqMode::Msi => {
                let cap = msi.as_mut().ok_or("no MSI")?;
                let handles = vectors
                    .reserve_block(affinity, count)
                    .map_err(|e| format!("vector block: {e}"))?;
                setup_msi(function, cap, &handles)?;
                Ok(Grant::Msi(handles, *cap))
            }
            IrqMode::Intx => {
                let line = line.ok_or("no INTx line")?;
                vectors
                    .open_legacy(line)
                    .map(Grant::Intx)
                    .map_err(|e| format!("INTx line {line}: {e}"))
            }
        },
    )?;
    let mut setup = InterruptSetup {
        mode: plan.mode,
        handles: Vec::new(),
        steps: plan.steps,
        msix: None,
        msi: None,
        affinity_broken: false,
    };
    match plan.grant {
        Grant::MsiX(h, t) => {
            setup.handles = h;
            setup.msix = Some(t);
        }
        Grant::Msi(h, c) => {
            setup.handles = h;
            setup.msi = Some(c);
        }
        Grant::Intx(h) => setup.handles = vec![h],
    }
    setup.affinity_broken = setup.handles.iter().any(IrqHandle::affinity_broken);
    if setup.affinity_broken {
        log::warn!(
            "{}: some interrupt vectors are outside the affinity mask (affinity broken)",
            function.address()
        );
    }
    Ok(setup)
}
