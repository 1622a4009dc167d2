//! driver-sys: what a Redox driver links.
//!
//! This crate is the pure-logic core of the driver stack: it knows the PCI
//! configuration-space layout, the MSI/MSI-X capability and message formats, how
//! interrupt vectors are handed out across CPUs, which devices need quirks, and how
//! to degrade from MSI-X to MSI to legacy INTx. Everything that touches hardware
//! goes through small traits ([`pci::ConfigSpace`], [`msi::Mmio`]) so the same code
//! runs against the real `pcid` channel, a mapped BAR, or an in-memory test double.
//!
//! Layout, one concept per module:
//! * [`pci`]: configuration space access, the capability list, BAR decoding.
//! * [`msi`]: MSI and MSI-X capabilities, x86 message composition, MSI-X table and
//!   PBA programming, MSI programming.
//! * [`vector`]: the per-CPU interrupt vector matrix and multi-queue spreading.
//! * [`quirks`]: per-device quirk flags from a built-in table and TOML files.
//! * [`irq`]: the interrupt-mode degradation planner, IRQ handles from the `irq`
//!   scheme, and [`irq::enable_interrupts`].
//! * [`dma`]: DMA buffers, the `IommuDmaAllocator`, streaming DMA with bounce buffers.
//! * [`memory`]: the `memory` scheme (contiguous memory, translation, physmaps).
//!
//! A PCI driver's start, with this crate:
//!
//! ```text
//! let mut pci = PciFunction::connect_default()?;            // pcid-spawner's channel
//! pci.enable_device()?;                                     // decode + bus mastering
//! let quirks = irq::function_quirks(&pci, None);            // built-in + /etc/quirks.d
//! let vectors = InterruptVectors::open()?;                  // CPUs, BSP, free vectors
//! let irqs = irq::enable_interrupts(&mut pci, &vectors, 4, quirks, &vectors.all_cpus())?;
//! for (i, h) in irqs.handles.iter().enumerate() { h.subscribe(&queue, i)?; h.pending()?; }
//! let dma = IommuDmaAllocator::for_function(&pci, quirks, 64)?; // own domain, assigned by channel
//! let ring = dma.allocate(4096)?;                           // give ring.iova() to the device
//! let regs = pci.map_bar(0)?;                               // uncacheable, mmap on the channel
//! ```
#![warn(missing_docs)]

pub mod daemon;
pub mod dma;
pub mod irq;
pub mod memory;
pub mod msi;
pub mod pci;
pub mod quirks;
pub mod vector;
