//! A simulated PCI function: configuration space with MSI and MSI-X capabilities,
//! memory BARs backed by simulated RAM, the MSI-X table and PBA living in BAR
//! memory, an interrupt sender, and a DMA engine.
//!
//! The driver reaches it exactly as it would reach hardware: config space through
//! the mocked `pci` scheme (pcid's channel), BARs through the `memory` scheme's
//! physmap or pcid's channel mmap. BAR memory lives in the machine's device window
//! below 4 GiB (not RAM: `physical@` may map it), so the MSI-X table the driver
//! writes through its mapping is what [`SimPciFunction::signal_msix`] reads.
//!
//! Interrupts follow the PCI rules: a message goes out only if the mode is
//! enabled; a masked MSI-X entry (or the function mask) sets the entry's PBA bit
//! instead, and [`SimPciFunction::deliver_pending`] sends it once unmasked. A
//! message is decoded as the local APIC would (address bits 19:12 = APIC id,
//! data bits 7:0 = vector) and raised on the `irq` scheme as `vector - 32` of CPU
//! `apic id` (the simulated machine numbers CPUs by APIC id).
//!
//! DMA needs bus mastering (command bit 2), respects the device's address width,
//! and goes through an optional translation hook — where a simulated IOMMU plugs
//! in ([`SimPciFunction::set_translation`]); without one, bus address = physical.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use driver_sys::pci::pcid_wire::{FullDeviceId, LegacyInterruptLine, PcidFunctionInfo};
use driver_sys::pci::{ConfigSpace, MemoryConfigSpace, PciAddress, PcidBar};
use syscall::error::{EINVAL, Error, Result};

mod dma;
mod interrupt;

pub use dma::{DmaAccess, DmaFault, DmaTranslation};

use crate::kernel::Kernel;
use crate::kernel::wait::lock;
use crate::mock::irq::IrqScheme;
use crate::mock::phys::{PAGE, PhysArena};

/// Where the MSI capability sits in config space.
pub const MSI_CAP_OFFSET: u8 = 0x50;
/// Where the MSI-X capability sits in config space.
pub const MSIX_CAP_OFFSET: u8 = 0x70;
/// Command register bit 2: the function may master the bus (do DMA).
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;

/// The MSI capability to build.
#[derive(Debug, Clone, Copy)]
pub struct SimMsi {
    /// log2 of the vectors the function can send (0..=5).
    pub log2_vectors: u8,
    /// 64-bit message address.
    pub is_64bit: bool,
    /// Mask and pending registers.
    pub per_vector_masking: bool,
}

/// The MSI-X capability to build.
#[derive(Debug, Clone, Copy)]
pub struct SimMsix {
    /// Table entries (1..=2048).
    pub table_size: u16,
    /// BAR holding the table, and the offset in it.
    pub table: (u8, u32),
    /// BAR holding the PBA, and the offset in it.
    pub pba: (u8, u32),
}

/// What a simulated function looks like.
#[derive(Debug, Clone)]
pub struct SimFunctionSpec {
    /// Address.
    pub addr: PciAddress,
    /// Vendor, device, class and revision.
    pub id: FullDeviceId,
    /// Sizes of memory BARs 0..6 (0 = no BAR); powers of two, at least a page.
    pub bar_sizes: [u32; 6],
    /// MSI, if any.
    pub msi: Option<SimMsi>,
    /// MSI-X, if any.
    pub msix: Option<SimMsix>,
    /// The legacy line the INTx pin is routed to, if any.
    pub intx_line: Option<u8>,
    /// Address bits the DMA engine can drive (32 for a 32-bit-only device).
    pub dma_address_bits: u8,
}

impl SimFunctionSpec {
    /// A function like the DSMIL controller: 16 KiB of registers in BAR0, MSI-X with
    /// `vectors` entries (table in BAR2 at 0, PBA in BAR2 at 0x800), 64-bit MSI with
    /// 4 vectors and masking, INTx on line 11, 64-bit DMA.
    pub fn dsmil_like(addr: PciAddress, vectors: u16) -> Self {
        Self {
            addr,
            id: FullDeviceId {
                vendor_id: 0x1028,
                device_id: 0xD511,
                class: 0x08,
                subclass: 0x80,
                interface: 0,
                revision: 1,
            },
            bar_sizes: [0x4000, 0, 0x1000, 0, 0, 0],
            msi: Some(SimMsi {
                log2_vectors: 2,
                is_64bit: true,
                per_vector_masking: true,
            }),
            msix: Some(SimMsix {
                table_size: vectors,
                table: (2, 0),
                pba: (2, 0x800),
            }),
            intx_line: Some(11),
            dma_address_bits: 64,
        }
    }
}

/// What became of an interrupt the function sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterruptOutcome {
    /// Raised on `cpu` as `vector`; `claimed` says whether a handle held it.
    Delivered {
        /// CPU (= APIC id).
        cpu: usize,
        /// IDT vector.
        vector: u8,
        /// Whether someone had reserved the vector (false = spurious).
        claimed: bool,
    },
    /// Masked: the pending bit was set instead.
    Pending,
    /// The mode is disabled (or the entry is invalid); nothing was sent.
    Dropped,
}

/// Counters of the function.
#[derive(Debug, Default)]
pub struct SimFunctionStats {
    /// Bytes the DMA engine moved.
    pub dma_bytes: AtomicU64,
    /// DMA transfers refused.
    pub dma_faults: AtomicU64,
    /// Messages delivered.
    pub interrupts: AtomicU64,
}

/// One simulated PCI function.
pub struct SimPciFunction {
    spec: SimFunctionSpec,
    config: Mutex<MemoryConfigSpace>,
    bars: [Option<(u64, u64)>; 6],
    phys: Arc<PhysArena>,
    irq: Arc<IrqScheme>,
    translation: RwLock<Option<DmaTranslation>>,
    claimed: AtomicBool,
    /// Counters.
    pub stats: SimFunctionStats,
}

impl core::fmt::Debug for SimPciFunction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimPciFunction")
            .field("addr", &self.spec.addr)
            .finish_non_exhaustive()
    }
}

impl SimPciFunction {
    /// Builds the function on `kernel`'s machine: BAR memory comes from its RAM.
    pub fn new(kernel: &Kernel, spec: SimFunctionSpec) -> Result<Arc<Self>> {
        let phys = kernel.phys().clone();
        let mut bars = [None; 6];
        let mut cfg = MemoryConfigSpace::new();
        // Building a fixed in-memory layout at constant, aligned offsets cannot fail.
        let w32 = |cfg: &mut MemoryConfigSpace, off: u16, v: u32| {
            let _ = cfg.write_u32(off, v);
        };
        let id = spec.id;
        w32(
            &mut cfg,
            0x00,
            u32::from(id.vendor_id) | (u32::from(id.device_id) << 16),
        );
        w32(
            &mut cfg,
            0x08,
            u32::from(id.revision) | (id.class_code() << 8),
        );
        for (i, &size) in spec.bar_sizes.iter().enumerate() {
            if size == 0 {
                continue;
            }
            if !size.is_power_of_two() || (size as usize) < PAGE {
                return Err(Error::new(EINVAL));
            }
            let base = phys.alloc_mmio(size as usize)?;
            bars[i] = Some((base, u64::from(size)));
            let off = 0x10 + 4 * i as u16;
            w32(&mut cfg, off, base as u32);
            cfg.set_bar_size_mask(i, !(size - 1));
        }
        let mut status: u16 = 0;
        let mut next_ptr: u16 = 0x34;
        if let Some(msi) = spec.msi {
            status |= 1 << 4;
            let _ = cfg.write_u8(next_ptr, MSI_CAP_OFFSET);
            let mut control = u16::from(msi.log2_vectors.min(5)) << 1;
            if msi.is_64bit {
                control |= 1 << 7;
            }
            if msi.per_vector_masking {
                control |= 1 << 8;
            }
            w32(
                &mut cfg,
                u16::from(MSI_CAP_OFFSET),
                0x05 | (u32::from(control) << 16),
            );
            next_ptr = u16::from(MSI_CAP_OFFSET) + 1;
        }
        if let Some(msix) = spec.msix {
            status |= 1 << 4;
            let _ = cfg.write_u8(next_ptr, MSIX_CAP_OFFSET);
            let base = u16::from(MSIX_CAP_OFFSET);
            let control = u32::from(msix.table_size.clamp(1, 2048) - 1);
            w32(&mut cfg, base, 0x11 | (control << 16));
            w32(&mut cfg, base + 4, msix.table.1 | u32::from(msix.table.0));
            w32(&mut cfg, base + 8, msix.pba.1 | u32::from(msix.pba.0));
            // The table must lie inside its BAR, the PBA inside its own.
            let fits = |(bir, off): (u8, u32), len: u64| {
                bars.get(usize::from(bir))
                    .copied()
                    .flatten()
                    .is_some_and(|(_, size)| u64::from(off) + len <= size)
            };
            let n = u64::from(msix.table_size);
            if !fits(msix.table, n * 16) || !fits(msix.pba, n.div_ceil(64) * 8) {
                return Err(Error::new(EINVAL));
            }
        }
        let _ = cfg.write_u16(0x06, status);
        // INTx: pin A and the line firmware routed it to; no pin, no line (0xFF).
        match spec.intx_line {
            Some(line) => {
                let _ = cfg.write_u8(0x3D, 1);
                let _ = cfg.write_u8(0x3C, line);
            }
            None => {
                let _ = cfg.write_u8(0x3C, 0xFF);
            }
        }
        // Every entry starts masked, as the spec requires after reset.
        let f = Arc::new(Self {
            config: Mutex::new(cfg),
            bars,
            phys,
            irq: kernel.irq().clone(),
            translation: RwLock::new(None),
            claimed: AtomicBool::new(false),
            stats: SimFunctionStats::default(),
            spec,
        });
        if let Some(msix) = f.spec.msix {
            for i in 0..msix.table_size {
                if let Some(a) = f.msix_entry_addr(i) {
                    f.phys.write(a + 12, &1u32.to_le_bytes());
                }
            }
        }
        Ok(f)
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.spec.addr
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &SimFunctionSpec {
        &self.spec
    }

    /// The machine's physical address space the function's BARs live in.
    pub fn phys(&self) -> &Arc<PhysArena> {
        &self.phys
    }

    /// Base and size of BAR `i`.
    pub fn bar(&self, i: usize) -> Option<(u64, u64)> {
        self.bars.get(i).copied().flatten()
    }

    /// What pcid reports for this function. The INTx line is the line register when
    /// the pin register names a pin (base `drivers/pcid/src/main.rs`
    /// `enable_function`, run when a channel opens).
    pub fn info(&self) -> PcidFunctionInfo {
        let intr = self.config_read_u32(0x3C).unwrap_or(0);
        let (line, pin) = (intr as u8, (intr >> 8) as u8);
        let bars = self.bars.map(|b| match b {
            Some((addr, size)) => PcidBar::Memory32 {
                addr: addr as u32,
                size: size as u32,
            },
            None => PcidBar::None,
        });
        PcidFunctionInfo {
            addr: self.spec.addr,
            bars,
            rom: None,
            legacy_interrupt_line: (1..=4).contains(&pin).then_some(LegacyInterruptLine {
                irq: line,
                phandled: None,
            }),
            full_device_id: self.spec.id,
        }
    }

    /// Claims the function for one driver (pcid hands out one channel at a time).
    pub(crate) fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    /// Releases the claim.
    pub(crate) fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// Runs `f` on the configuration space (pcid's config access).
    pub fn with_config<R>(&self, f: impl FnOnce(&mut MemoryConfigSpace) -> R) -> R {
        f(&mut lock(&self.config))
    }

    /// Writes a config dword as the hardware would: read-only capability fields
    /// (MSI-X table size, MSI capabilities bits, capability ids and pointers) keep
    /// their value.
    pub fn config_write_u32(&self, offset: u16, value: u32) -> Result<()> {
        let mut cfg = lock(&self.config);
        let old = cfg.read_u32(offset).map_err(|_| Error::new(EINVAL))?;
        // Writable bits per dword of our capabilities (the rest read-only).
        let writable: u32 = match offset {
            o if o == u16::from(MSI_CAP_OFFSET) => (0x0001 | 0x0070) << 16,
            o if o == u16::from(MSIX_CAP_OFFSET) => 0xC000 << 16,
            o if o == u16::from(MSIX_CAP_OFFSET) + 4 || o == u16::from(MSIX_CAP_OFFSET) + 8 => 0,
            0x00 | 0x08 | 0x34 => 0,
            0x04 => 0xF900_FFFF, // status low bits are read-only; error bits RW1C ignored
            _ => u32::MAX,
        };
        let merged = (value & writable) | (old & !writable);
        cfg.write_u32(offset, merged)
            .map_err(|_| Error::new(EINVAL))
    }

    /// Reads a config dword.
    pub fn config_read_u32(&self, offset: u16) -> Result<u32> {
        lock(&self.config)
            .read_u32(offset)
            .map_err(|_| Error::new(EINVAL))
    }

    fn command(&self) -> u16 {
        lock(&self.config).read_u16(0x04).unwrap_or(0)
    }
}
