//! A simulated AMD-Vi IOMMU unit.
//!
//! iommud programs it through [`SimAmdViMmio`] (the `AmdViMmio` register
//! trait) and writes the device table, page tables and command ring into
//! simulated RAM; the unit reads them from [`PhysArena`] exactly as hardware
//! would, with its own decoding of every format (so an encoding mistake in
//! iommud shows up as wrong behaviour here, not as a matching mistake):
//!
//! * **DMA translation** ([`SimAmdVi::translate`], plugged into a
//!   [`SimPciFunction`]'s DMA engine by [`SimAmdVi::attach`]): the 256-bit
//!   device table entry of the requester id (V, TV, Mode, root, DomainID,
//!   IR/IW; cached until `INV_DEV_ENTRY`), then the IOTLB, then a page walk
//!   honouring NextLevel (natural-size leaves at any level, NextLevel 7
//!   "other size" leaves, skipped levels) with IR/IW accumulated along the path.
//! * **Caches** ([`caches`]): the IOTLB, a page-directory cache (cleared
//!   only by `INV_IOMMU_PAGES` with PDE=1 covering the entry, or
//!   `INV_ALL`) and, with the NpCache capability
//!   ([`SimAmdViOptions::np_cache`], bit 26 of the capability header),
//!   cached not-present answers — each served even after iommud changed the
//!   page tables, until the command that clears it executes.
//! * **Device table reads between stores**: the unit may fetch a device
//!   table entry at any moment. At every store barrier of the driver
//!   ([`AmdViMmio::store_barrier`]) it fetches the entries of the requester
//!   ids it was told to watch ([`SimAmdVi::watch_device`]), caches them as
//!   it would any fetched entry, and records what it saw
//!   ([`SimAmdVi::observed_entries`]).
//! * **Command ring**: every command from head to tail is executed
//!   (`COMPLETION_WAIT` with its store to memory, `INV_DEV_ENTRY`,
//!   `INV_IOMMU_PAGES` with the S-bit range encoding) — either at once when
//!   the tail register is written ([`CommandExecution::Inline`], a unit with
//!   zero latency), or, as hardware does, by the unit's own command processor
//!   running beside the CPU ([`CommandExecution::Concurrent`], a thread woken
//!   by the tail write), so the driver really waits for its completion store.
//! * **Event log**: an I/O page fault (requester id, DomainID, address,
//!   read/write, present/permission) is written at the log tail; a full log
//!   sets EventOverflow and loses the event.
//! * **A hung unit** ([`SimAmdVi::set_stalled`]): the command processor
//!   stops fetching, so completion waits never complete, until released.

pub mod caches;
mod commands;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};

use caches::{Caches, Lookup};
use iommu::amdvi::{AmdViMmio, capability, control, reg, status};

use crate::hw::pci_function::{DmaAccess, DmaTranslation, SimPciFunction};
use crate::kernel::Kernel;
use crate::kernel::wait::lock;
use crate::mock::acpi::{AcpiTables, AmdViPlacement};
use crate::mock::phys::PhysArena;

pub use caches::IOTLB_CAPACITY;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// Counters of the simulated unit.
#[derive(Debug, Default)]
pub struct SimAmdViStats {
    /// DMA chunks translated (including faults).
    pub translations: AtomicU64,
    /// Translations served from the IOTLB.
    pub iotlb_hits: AtomicU64,
    /// Page walks.
    pub walks: AtomicU64,
    /// I/O page faults.
    pub faults: AtomicU64,
    /// Commands executed.
    pub commands: AtomicU64,
    /// IOTLB entries dropped by `INV_IOMMU_PAGES`.
    pub iotlb_invalidated: AtomicU64,
}

/// The translation half of a device table entry, as the unit decodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dte {
    /// V.
    pub valid: bool,
    /// TV.
    pub translation_valid: bool,
    /// Mode (page-table levels, 0 = untranslated).
    pub mode: u8,
    /// Page-table root.
    pub root: u64,
    /// IR.
    pub read: bool,
    /// IW.
    pub write: bool,
    /// DomainID.
    pub domain: u16,
}

impl Dte {
    fn decode(q0: u64, q1: u64) -> Self {
        Self {
            valid: q0 & 1 != 0,
            translation_valid: q0 & 2 != 0,
            mode: ((q0 >> 9) & 7) as u8,
            root: q0 & ADDR_MASK,
            read: q0 & (1 << 61) != 0,
            write: q0 & (1 << 62) != 0,
            domain: q1 as u16,
        }
    }
}

#[derive(Default)]
struct Registers {
    device_table: u64,
    device_table_len: u64,
    command_base: u64,
    command_len: u64,
    event_base: u64,
    event_len: u64,
    control: u64,
    command_head: u64,
    command_tail: u64,
    event_head: u64,
    event_tail: u64,
    status: u64,
}

#[derive(Default)]
struct UnitState {
    regs: Registers,
    dte_cache: HashMap<u16, Dte>,
    caches: Caches,
    /// Requester ids whose entries the unit fetches at every store barrier.
    watched: BTreeSet<u16>,
    /// What those fetches saw, in order.
    observed: Vec<(u16, Dte)>,
}

/// How a simulated unit is built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimAmdViOptions {
    /// When the unit executes queued commands.
    pub execution: CommandExecution,
    /// NpCache: advertised in the capability header, and not-present walks
    /// are cached (as QEMU's AMD-Vi advertises; real AMD units do not).
    pub np_cache: bool,
}

impl Default for SimAmdViOptions {
    /// Inline execution, no NpCache.
    fn default() -> Self {
        Self {
            execution: CommandExecution::Inline,
            np_cache: false,
        }
    }
}

/// Why a translation faulted.
struct Fault {
    domain: u16,
    present: bool,
}

/// When the unit executes queued commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandExecution {
    /// During the tail-register write (the driver's completion wait is
    /// satisfied before it starts polling).
    Inline,
    /// On the unit's own command-processor thread, as hardware runs its
    /// command buffer asynchronously to the CPU.
    Concurrent,
}

/// Wakes the command processor: `(tail written, unit gone)`.
#[derive(Default)]
struct Doorbell {
    rung: Mutex<(bool, bool)>,
    wake: Condvar,
}

impl Doorbell {
    fn ring(&self, shutdown: bool) {
        let mut r = lock(&self.rung);
        r.0 = true;
        r.1 |= shutdown;
        self.wake.notify_one();
    }

    /// Waits for a ring; false once the unit is gone.
    fn wait(&self) -> bool {
        let mut r = lock(&self.rung);
        while !r.0 {
            r = match self.wake.wait(r) {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
        }
        r.0 = false;
        !r.1
    }
}

/// One simulated AMD-Vi unit.
pub struct SimAmdVi {
    phys: Arc<PhysArena>,
    acpi: Arc<AcpiTables>,
    placement: AmdViPlacement,
    state: Mutex<UnitState>,
    doorbell: Option<Arc<Doorbell>>,
    options: SimAmdViOptions,
    stalled: AtomicBool,
    /// Counters.
    pub stats: SimAmdViStats,
}

impl core::fmt::Debug for SimAmdVi {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimAmdVi").finish_non_exhaustive()
    }
}

fn ring_len(value: u64) -> u64 {
    16u64 << ((value >> 56) & 0xF).max(8)
}

/// Capability header: CapID 0Fh, CapType 3 (bits 18:16), CapRev 1 (bits
/// 23:19), EFRSup, and NpCache when built with it.
fn capability_header(np_cache: bool) -> u32 {
    let mut header = 0x0F | (3 << 16) | (1 << 19) | capability::EFR_SUP;
    if np_cache {
        header |= capability::NP_CACHE;
    }
    header
}

impl SimAmdVi {
    /// A unit on `kernel`'s machine (disabled until iommud enables it) that
    /// executes commands inline.
    pub fn new(kernel: &Kernel) -> Arc<Self> {
        Self::with_execution(kernel, CommandExecution::Inline)
    }

    /// A unit executing commands as `execution` says. A concurrent unit's
    /// command processor thread ends when the unit is dropped.
    pub fn with_execution(kernel: &Kernel, execution: CommandExecution) -> Arc<Self> {
        Self::with_options(
            kernel,
            SimAmdViOptions {
                execution,
                ..SimAmdViOptions::default()
            },
        )
    }

    /// A unit built as `options` says.
    pub fn with_options(kernel: &Kernel, options: SimAmdViOptions) -> Arc<Self> {
        let doorbell =
            (options.execution == CommandExecution::Concurrent).then(Arc::<Doorbell>::default);
        let unit = Arc::new(Self {
            phys: kernel.phys().clone(),
            acpi: kernel.acpi().clone(),
            placement: kernel.acpi().add_amdvi_unit(),
            state: Mutex::new(UnitState::default()),
            doorbell: doorbell.clone(),
            options,
            stalled: AtomicBool::new(false),
            stats: SimAmdViStats::default(),
        });
        if let Some(bell) = doorbell {
            let weak: Weak<SimAmdVi> = Arc::downgrade(&unit);
            let spawned = std::thread::Builder::new()
                .name("sim-amdvi-cmd".into())
                .spawn(move || {
                    while bell.wait() {
                        let Some(unit) = weak.upgrade() else { break };
                        let mut st = lock(&unit.state);
                        unit.run_commands(&mut st);
                    }
                });
            if let Err(e) = spawned {
                log::error!("sim amd-vi: no command processor thread: {e}");
            }
        }
        unit
    }

    /// The register interface iommud drives.
    pub fn mmio(self: &Arc<Self>) -> Box<dyn AmdViMmio> {
        Box::new(SimAmdViMmio(self.clone()))
    }

    /// Where the machine put the unit: the register base and DeviceID its IVRS
    /// entry (`/scheme/acpi/tables/IVRS-…`) reports.
    pub fn placement(&self) -> AmdViPlacement {
        self.placement
    }

    /// Puts the unit in front of `function`'s DMA engine (the IVRS lists the
    /// function under this unit from now on).
    pub fn attach(self: &Arc<Self>, function: &SimPciFunction) {
        self.acpi
            .attach_amdvi(self.placement.index, function.address());
        let unit = self.clone();
        let hook: DmaTranslation =
            Arc::new(move |rid, bus, len, access| unit.translate(rid, bus, len, access));
        function.set_translation(Some(hook));
    }

    /// IOTLB entries cached now.
    pub fn iotlb_entries(&self) -> usize {
        lock(&self.state).caches.iotlb_len()
    }

    /// Page-directory entries cached now.
    pub fn pde_entries(&self) -> usize {
        lock(&self.state).caches.pde_len()
    }

    /// Not-present answers cached now (NpCache).
    pub fn not_present_entries(&self) -> usize {
        lock(&self.state).caches.not_present_len()
    }

    /// Makes the unit fetch (and cache) `rid`'s device table entry at every
    /// store barrier of the driver, and record what it saw.
    pub fn watch_device(&self, rid: u16) {
        lock(&self.state).watched.insert(rid);
    }

    /// The entries the watched fetches saw, in order, and forgets them.
    pub fn observed_entries(&self) -> Vec<(u16, Dte)> {
        std::mem::take(&mut lock(&self.state).observed)
    }

    /// Hangs (`true`) or releases the command processor. A hung unit
    /// fetches no command, so no completion wait completes; released, it
    /// runs what was queued at the next tail write.
    pub fn set_stalled(&self, stalled: bool) {
        self.stalled.store(stalled, Ordering::SeqCst);
    }

    fn snoop(&self) {
        let mut st = lock(&self.state);
        let watched: Vec<u16> = st.watched.iter().copied().collect();
        for rid in watched {
            // A fetch replaces whatever was cached, as hardware's would.
            st.dte_cache.remove(&rid);
            if let Some(d) = self.dte(&mut st, rid) {
                st.observed.push((rid, d));
            }
        }
    }

    /// Translates one page-bounded DMA chunk of requester `rid`; `None` is an
    /// I/O page fault (logged to the event log).
    pub fn translate(&self, rid: u16, iova: u64, len: usize, access: DmaAccess) -> Option<u64> {
        self.stats.translations.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.state);
        if st.regs.control & control::IOMMU_ENABLE == 0 {
            return Some(iova);
        }
        let write = access == DmaAccess::Write;
        match self.resolve(&mut st, rid, iova, len, write) {
            Ok(phys) => Some(phys),
            Err(fault) => {
                self.stats.faults.fetch_add(1, Ordering::Relaxed);
                self.log_fault(&mut st, rid, iova, write, fault);
                None
            }
        }
    }

    fn dte(&self, st: &mut UnitState, rid: u16) -> Option<Dte> {
        if let Some(d) = st.dte_cache.get(&rid) {
            return Some(*d);
        }
        let off = u64::from(rid) * 32;
        if off + 32 > st.regs.device_table_len {
            return None;
        }
        let q0 = self.phys.read_u64(st.regs.device_table + off)?;
        let q1 = self.phys.read_u64(st.regs.device_table + off + 8)?;
        let d = Dte::decode(q0, q1);
        st.dte_cache.insert(rid, d);
        Some(d)
    }

    fn resolve(
        &self,
        st: &mut UnitState,
        rid: u16,
        iova: u64,
        len: usize,
        write: bool,
    ) -> Result<u64, Fault> {
        let Some(dte) = self.dte(st, rid) else {
            return Err(Fault {
                domain: 0,
                present: false,
            });
        };
        if !dte.valid {
            // V = 0: the unit does not translate this requester.
            return Ok(iova);
        }
        let fault = |present| Fault {
            domain: dte.domain,
            present,
        };
        if !dte.translation_valid {
            return Err(fault(false));
        }
        let allowed = |r: bool, w: bool| if write { w } else { r };
        if dte.mode == 0 {
            return if allowed(dte.read, dte.write) {
                Ok(iova)
            } else {
                Err(fault(true))
            };
        }
        let entry = match st.caches.lookup(dte.domain, iova) {
            Lookup::Hit(e) => {
                self.stats.iotlb_hits.fetch_add(1, Ordering::Relaxed);
                e
            }
            Lookup::NotPresent => return Err(fault(false)),
            Lookup::Miss => {
                self.stats.walks.fetch_add(1, Ordering::Relaxed);
                st.caches
                    .walk(
                        &self.phys,
                        dte.domain,
                        dte.root,
                        dte.mode,
                        iova,
                        self.options.np_cache,
                    )
                    .ok_or(fault(false))?
            }
        };
        let offset = iova & (entry.size - 1);
        if offset + len as u64 > entry.size {
            return Err(fault(false));
        }
        if !allowed(dte.read && entry.read, dte.write && entry.write) {
            return Err(fault(true));
        }
        Ok(entry.phys + offset)
    }

    fn log_fault(&self, st: &mut UnitState, rid: u16, iova: u64, write: bool, fault: Fault) {
        let r = &mut st.regs;
        if r.control & control::EVENT_LOG_ENABLE == 0 || r.event_len == 0 {
            return;
        }
        let next = (r.event_tail + 16) % r.event_len;
        if next == r.event_head {
            r.status |= status::EVENT_OVERFLOW;
            return;
        }
        let mut flags: u32 = 0;
        if fault.present {
            flags |= 0x010 | 0x040;
        }
        if write {
            flags |= 0x020;
        }
        let d1 = u32::from(fault.domain) | (flags << 16) | (0x2 << 28);
        let mut entry = [0u8; 16];
        entry[0..4].copy_from_slice(&u32::from(rid).to_le_bytes());
        entry[4..8].copy_from_slice(&d1.to_le_bytes());
        entry[8..16].copy_from_slice(&iova.to_le_bytes());
        self.phys.write(r.event_base + r.event_tail, &entry);
        r.event_tail = next;
    }

    fn read_reg(&self, offset: u64) -> u64 {
        let st = lock(&self.state);
        let r = &st.regs;
        match offset {
            reg::DEVICE_TABLE_BASE => {
                r.device_table | (r.device_table_len / 4096).saturating_sub(1)
            }
            reg::CONTROL => r.control,
            reg::COMMAND_HEAD => r.command_head,
            reg::COMMAND_TAIL => r.command_tail,
            reg::EVENT_HEAD => r.event_head,
            reg::EVENT_TAIL => r.event_tail,
            reg::STATUS => {
                let mut s = r.status;
                if r.control & control::EVENT_LOG_ENABLE != 0 {
                    s |= status::EVENT_LOG_RUN;
                }
                if r.control & control::COMMAND_BUFFER_ENABLE != 0 {
                    s |= status::COMMAND_BUFFER_RUN;
                }
                s
            }
            _ => 0,
        }
    }

    fn write_reg(&self, offset: u64, value: u64) {
        let mut st = lock(&self.state);
        let r = &mut st.regs;
        match offset {
            reg::DEVICE_TABLE_BASE => {
                r.device_table = value & ADDR_MASK;
                r.device_table_len = ((value & 0x1FF) + 1) * 4096;
            }
            reg::COMMAND_BUFFER_BASE => {
                r.command_base = value & ADDR_MASK;
                r.command_len = ring_len(value);
            }
            reg::EVENT_LOG_BASE => {
                r.event_base = value & ADDR_MASK;
                r.event_len = ring_len(value);
            }
            reg::CONTROL => r.control = value,
            reg::COMMAND_HEAD => r.command_head = value & reg::RING_POINTER_MASK,
            reg::COMMAND_TAIL => {
                r.command_tail = value & reg::RING_POINTER_MASK;
                match &self.doorbell {
                    Some(bell) => bell.ring(false),
                    None => self.run_commands(&mut st),
                }
            }
            reg::EVENT_HEAD => r.event_head = value & reg::RING_POINTER_MASK,
            reg::EVENT_TAIL => r.event_tail = value & reg::RING_POINTER_MASK,
            // RW1C.
            reg::STATUS => r.status &= !(value & status::EVENT_OVERFLOW),
            _ => {}
        }
    }
}

impl Drop for SimAmdVi {
    fn drop(&mut self) {
        if let Some(bell) = &self.doorbell {
            bell.ring(true);
        }
    }
}

/// The register interface of a [`SimAmdVi`].
pub struct SimAmdViMmio(Arc<SimAmdVi>);

impl AmdViMmio for SimAmdViMmio {
    fn read_u64(&self, offset: u64) -> u64 {
        self.0.read_reg(offset)
    }

    fn write_u64(&mut self, offset: u64, value: u64) {
        self.0.write_reg(offset, value)
    }

    fn capability_header(&self) -> Option<u32> {
        Some(capability_header(self.0.options.np_cache))
    }

    fn store_barrier(&mut self) {
        core::sync::atomic::fence(Ordering::SeqCst);
        self.0.snoop();
    }
}
