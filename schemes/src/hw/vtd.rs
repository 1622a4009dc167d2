//! A simulated Intel VT-d remapping unit (legacy mode), modelled on what
//! QEMU 7.2's `intel-iommu` does (`hw/i386/intel_iommu.c`, notes
//! `iommu-hw.md` §A and §C.1) and on what the VT-d specification lets real
//! units cache.
//!
//! iommud programs it through [`SimVtdMmio`] (the `VtdMmio` register trait)
//! and writes the root, context and page tables and the invalidation queue
//! into simulated RAM; the unit reads them from [`PhysArena`] with its own
//! decoding of every format:
//!
//! * **Registers** ([`regs`]): 32-bit registers take 4-byte accesses only —
//!   an 8-byte write aborts QEMU 7.2 (`assert(size == 4)`), and the
//!   simulated machine aborts the same way (a panic naming the register).
//!   GCMD acts on `GSTS ^ written` like QEMU's `vtd_handle_gcmd_write`, so a
//!   write that drops TE turns translation off; RTADDR is latched by SRTP
//!   and IQA when QIE turns on.
//! * **Translation** ([`walk`]): root entry, context entry (P, TT, AW
//!   against SAGAW, reserved bits, FPD), then the second-level walk with R/W
//!   checked at every level, PS leaves, reserved bits and the interrupt
//!   range, with QEMU's fault reasons.
//! * **Caches**: context entries are cached per source id, tagged with their
//!   DID, until a context-cache descriptor that matches them; translations
//!   are cached per (DID, page) until an IOTLB descriptor covering them. With
//!   caching mode (CAP.CM) not-present answers are cached too: context
//!   entries under DID 0, page translations under their DID.
//! * **Invalidation queue** ([`queue`]): executed synchronously inside the
//!   IQT write, as QEMU does, with QEMU 7.2's reserved-bit checks; a bad
//!   descriptor sets FSTS.IQE and stops the queue at it; a wait descriptor
//!   with both SW and IF aborts the machine (QEMU asserts).
//! * **Fault recording** ([`fault`]): `NFR + 1` fault-recording registers at
//!   `FRO × 16`, PPF/FRI in FSTS, PFO when the next record is busy, and
//!   QEMU's collapsing of a second fault from a source id that already has a
//!   pending record.

pub mod dmar;
pub mod fault;
pub mod queue;
pub mod regs;
pub mod walk;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use iommu::Bdf;
use iommu::vtd::VtdMmio;

use crate::hw::pci_function::{DmaAccess, DmaTranslation, SimPciFunction};
use crate::kernel::Kernel;
use crate::kernel::wait::lock;
use crate::mock::acpi::AcpiTables;
use crate::mock::phys::PhysArena;

/// OEM ID of the DMAR the simulated firmware publishes.
pub const DMAR_OEM_ID: [u8; 6] = *b"DSMILH";
/// OEM table ID of that DMAR.
pub const DMAR_OEM_TABLE_ID: [u8; 8] = *b"SIMVTD  ";

/// Where QEMU's q35 puts the unit (`Q35_HOST_BRIDGE_IOMMU_ADDR`).
pub const QEMU_REGISTER_BASE: u64 = 0xFED9_0000;
/// IOTLB entries held at once (an arbitrary one is evicted beyond it).
pub const IOTLB_CAPACITY: usize = 4096;

/// How the simulated unit is built (QEMU's `-device intel-iommu` properties).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SimVtdConfig {
    /// `caching-mode`: CAP.CM, not-present entries may be cached.
    pub caching_mode: bool,
    /// `aw-bits`: 39 (SAGAW 3 levels) or 48 (SAGAW 3 and 4 levels).
    pub aw_bits: u32,
    /// `pt`: ECAP.PT, pass-through context entries.
    pub pass_through: bool,
    /// Fault-recording registers (QEMU has 1).
    pub fault_records: u32,
    /// CAP.PSI (QEMU: always).
    pub page_selective: bool,
    /// CAP.SLLPS 2 MiB and 1 GiB pages (QEMU: always).
    pub superpages: bool,
    /// CAP.ND (QEMU: 6, 65 536 domains).
    pub nd: u8,
}

impl Default for SimVtdConfig {
    /// QEMU 7.2's defaults: CAP 0x00d2008c22260206, ECAP 0xf00f4a.
    fn default() -> Self {
        Self {
            caching_mode: false,
            aw_bits: 39,
            pass_through: true,
            fault_records: 1,
            page_selective: true,
            superpages: true,
            nd: 6,
        }
    }
}

impl SimVtdConfig {
    /// The capability register (QEMU `vtd_init`).
    pub fn cap(&self) -> u64 {
        let mut cap = u64::from(self.nd & 7)
            | (0x22 << 24) // FRO: records at 0x220
            | (u64::from(self.fault_records.clamp(1, 256) - 1) << 40)
            | (18 << 48) // MAMV
            | (1 << 54) | (1 << 55) // DWD, DRD
            | (u64::from(self.aw_bits - 1) << 16);
        cap |= if self.aw_bits >= 48 {
            0x6 << 8
        } else {
            0x2 << 8
        };
        if self.caching_mode {
            cap |= 1 << 7;
        }
        if self.superpages {
            cap |= 3 << 34;
        }
        if self.page_selective {
            cap |= 1 << 39;
        }
        cap
    }

    /// The extended capability register: QI, IR, PT, IRO = 0xF, MHMV = 15.
    pub fn ecap(&self) -> u64 {
        let mut ecap = (1 << 1) | (1 << 3) | (0xF << 8) | (0xF << 20);
        if self.pass_through {
            ecap |= 1 << 6;
        }
        ecap
    }

    /// SAGAW bit for AW `agaw` is set.
    pub fn supports_agaw(&self, agaw: u64) -> bool {
        (self.cap() >> 8) & 0x1F & (1 << agaw) != 0
    }
}

/// Counters of the simulated unit.
#[derive(Debug, Default)]
pub struct SimVtdStats {
    /// DMA chunks translated (faults included).
    pub translations: AtomicU64,
    /// Translations answered from the IOTLB.
    pub iotlb_hits: AtomicU64,
    /// Context entries answered from the context cache.
    pub context_hits: AtomicU64,
    /// Second-level walks.
    pub walks: AtomicU64,
    /// Faults (recorded or not).
    pub faults: AtomicU64,
    /// Descriptors executed.
    pub descriptors: AtomicU64,
    /// IOTLB entries dropped by invalidations.
    pub iotlb_invalidated: AtomicU64,
    /// Context-cache entries dropped by invalidations.
    pub context_invalidated: AtomicU64,
}

/// A cached translation (or, under caching mode, a cached miss).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CachedTranslation {
    /// A leaf: page at `phys` of `size` bytes with its accumulated R/W.
    Page {
        /// Physical page base.
        phys: u64,
        /// Page size.
        size: u64,
        /// R on every level.
        read: bool,
        /// W on every level.
        write: bool,
    },
    /// No translation: the fault reason, or [`walk::NOT_PRESENT`] (reason 5
    /// or 6 by the access). Cached under caching mode only.
    Miss(u8),
}

/// The unit's state behind its lock.
#[derive(Default)]
pub struct UnitState {
    /// Registers.
    pub regs: regs::RegisterFile,
    /// Context cache: source id → (DID tag, decoded entry or fault reason).
    pub context_cache: HashMap<u16, (u16, Result<walk::Context, u8>)>,
    /// IOTLB: (DID, page base) → translation.
    pub iotlb: HashMap<(u16, u64), CachedTranslation>,
    /// Bit `k`: an entry of `2^k` bytes was cached at some point.
    pub sizes_seen: u64,
}

/// One simulated VT-d unit.
pub struct SimVtd {
    phys: Arc<PhysArena>,
    acpi: Arc<AcpiTables>,
    reserved: Option<(u64, usize)>,
    attached: Mutex<BTreeSet<Bdf>>,
    config: SimVtdConfig,
    state: Mutex<UnitState>,
    /// Counters.
    pub stats: SimVtdStats,
}

impl core::fmt::Debug for SimVtd {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimVtd")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl SimVtd {
    /// A unit with QEMU's default properties on `kernel`'s machine
    /// (translation off until iommud enables it).
    pub fn new(kernel: &Kernel) -> Arc<Self> {
        Self::with_config(kernel, SimVtdConfig::default())
    }

    /// A unit built as `config` says.
    pub fn with_config(kernel: &Kernel, config: SimVtdConfig) -> Arc<Self> {
        let state = UnitState {
            regs: regs::RegisterFile::new(&config),
            ..UnitState::default()
        };
        let unit = Arc::new(Self {
            phys: kernel.phys().clone(),
            acpi: kernel.acpi().clone(),
            reserved: kernel.config().reserved_memory,
            attached: Mutex::new(BTreeSet::new()),
            config,
            state: Mutex::new(state),
            stats: SimVtdStats::default(),
        });
        unit.publish_dmar();
        unit
    }

    /// Publishes the machine's DMAR (`/scheme/acpi/tables/DMAR-…`) as
    /// firmware would describe this unit now: one DRHD at
    /// [`QEMU_REGISTER_BASE`] listing the I/O APIC and every attached
    /// function, and an RMRR of the machine's reserved memory for them. The
    /// machine has one VT-d unit, as QEMU allows one vIOMMU.
    fn publish_dmar(&self) {
        let devices: Vec<Bdf> = lock(&self.attached).iter().copied().collect();
        let mut scopes = vec![dmar::Scope::IoApic(0)];
        scopes.extend(devices.iter().map(|&d| dmar::Scope::Endpoint(d)));
        let units = [dmar::DmarUnit {
            base: QEMU_REGISTER_BASE,
            include_pci_all: false,
            scopes,
        }];
        let reserved: Vec<dmar::DmarReserved> = self
            .reserved
            .filter(|&(base, len)| len > 0 && base % 4096 == 0 && len % 4096 == 0)
            .filter(|_| !devices.is_empty())
            .map(|(base, len)| dmar::DmarReserved {
                base,
                limit: base + len as u64 - 1,
                devices: devices.clone(),
            })
            .into_iter()
            .collect();
        let body = dmar::body(self.config.aw_bits, &units, &reserved);
        if let Err(e) = self
            .acpi
            .publish(*b"DMAR", DMAR_OEM_ID, DMAR_OEM_TABLE_ID, &body)
        {
            log::error!("sim vt-d: DMAR not published: {e}");
        }
    }

    /// The configuration.
    pub fn config(&self) -> &SimVtdConfig {
        &self.config
    }

    /// The register interface iommud drives.
    pub fn mmio(self: &Arc<Self>) -> Box<dyn VtdMmio> {
        Box::new(SimVtdMmio(self.clone()))
    }

    /// Puts the unit in front of `function`'s DMA engine; the DMAR lists
    /// the function under this unit from now on.
    pub fn attach(self: &Arc<Self>, function: &SimPciFunction) {
        let a = function.address();
        if let Some(bdf) = Bdf::new(a.bus, a.device, a.function) {
            lock(&self.attached).insert(bdf);
            self.publish_dmar();
        }
        let unit = self.clone();
        let hook: DmaTranslation =
            Arc::new(move |rid, bus, len, access| unit.translate(rid, bus, len, access));
        function.set_translation(Some(hook));
    }

    /// IOTLB entries cached now (misses included).
    pub fn iotlb_entries(&self) -> usize {
        lock(&self.state).iotlb.len()
    }

    /// Context-cache entries now.
    pub fn context_entries(&self) -> usize {
        lock(&self.state).context_cache.len()
    }

    /// GSTS as the unit holds it.
    pub fn gsts(&self) -> u32 {
        lock(&self.state).regs.gsts
    }

    /// Translates one page-bounded DMA chunk of requester `rid`; `None` is a
    /// refused request (recorded in the fault registers unless FPD says not
    /// to, or it was an interrupt-window write).
    pub fn translate(&self, rid: u16, iova: u64, len: usize, access: DmaAccess) -> Option<u64> {
        self.stats.translations.fetch_add(1, Ordering::Relaxed);
        let mut st = lock(&self.state);
        if st.regs.gsts & iommu::vtd::gcmd::TE == 0 {
            return Some(iova);
        }
        let write = access == DmaAccess::Write;
        if (walk::INTERRUPT_FIRST..=walk::INTERRUPT_LAST).contains(&iova) {
            // QEMU overlays the interrupt window on every device's address
            // space: such a request is an interrupt, never memory.
            return None;
        }
        match self.resolve(&mut st, rid, iova, len, write) {
            Ok(phys) => Some(phys),
            Err(walk::Refusal { reason, record }) => {
                self.stats.faults.fetch_add(1, Ordering::Relaxed);
                if record {
                    fault::record(&mut st.regs, rid, iova, reason, write);
                }
                None
            }
        }
    }
}

/// The register interface of a [`SimVtd`].
pub struct SimVtdMmio(Arc<SimVtd>);

impl VtdMmio for SimVtdMmio {
    fn read_u32(&self, offset: u64) -> u32 {
        self.0.read_reg(offset, 4) as u32
    }
    fn write_u32(&mut self, offset: u64, value: u32) {
        self.0.write_reg(offset, 4, u64::from(value))
    }
    fn read_u64(&self, offset: u64) -> u64 {
        self.0.read_reg(offset, 8)
    }
    fn write_u64(&mut self, offset: u64, value: u64) {
        self.0.write_reg(offset, 8, value)
    }
}
