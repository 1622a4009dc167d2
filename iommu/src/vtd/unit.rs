//! Driving one VT-d unit in legacy mode: bring-up in Linux's order, context
//! entries with the flushes each change needs, the invalidation queue with
//! status-write waits, and the fault-recording registers.
//!
//! Memory the unit reads: one root table whose 256 entries all point at
//! zeroed context tables (one 1 MiB block allocated up front, as the AMD-Vi
//! driver allocates its whole device table), so a device nobody configured
//! faults with "context entry not present"; the 4 KiB invalidation queue
//! (QS = 0, 256 descriptors); and a status word for waits.
//!
//! Cache coherency: ECAP.C = 0 means the unit's page walks do not snoop the
//! CPU caches, so on such hardware every table write must be flushed from
//! the cache before the unit may see it (Linux `__iommu_flush_cache`). QEMU
//! reports C = 0 but reads guest memory directly, and the simulated unit is
//! coherent; iommud logs a warning on a C = 0 unit (see the README).

use syscall::error::{EBUSY, EINVAL, EIO, ENODEV, ENOSPC, EOPNOTSUPP, ETIMEDOUT, Error, Result};

use super::cap::Features;
use super::context::{ContextEntry, RootEntry};
use super::descriptor::{ContextScope, Descriptor, IotlbScope, page_selective_mask};
use super::fault::{FRCD_F, FaultRecord};
use super::registers::{POLL_LIMIT, Registers};
use super::{DESCRIPTOR_SIZE, ENTRY_SIZE, QUEUE_ENTRIES, TABLE_ENTRIES, VtdMmio, fsts, gcmd, reg};
use crate::contiguous::{ContiguousAllocator, ContiguousRegion};

/// PMEN.EPM: protected memory regions enabled.
const PMEN_EPM: u32 = 1 << 31;
/// PMEN.PRS: protected region status.
const PMEN_PRS: u32 = 1 << 0;

/// The DID of pass-through context entries: the highest the unit has (no
/// domain gets it; DID 0 stays reserved as Linux keeps it).
pub fn passthrough_did(features: &Features) -> u16 {
    (features.domains.min(1 << 16) - 1) as u16
}

/// Counters of one unit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VtdStats {
    /// Descriptors queued (waits included).
    pub descriptors: u64,
    /// Context-cache invalidations.
    pub context_invalidations: u64,
    /// Page-selective IOTLB invalidations.
    pub page_invalidations: u64,
    /// Domain-selective (or global) IOTLB invalidations.
    pub domain_invalidations: u64,
    /// Waits that completed.
    pub waits: u64,
    /// Context entries written.
    pub context_writes: u64,
    /// Fault records read.
    pub faults: u64,
    /// Times FSTS reported lost faults (PFO).
    pub fault_overflows: u64,
    /// Invalidation-queue errors (IQE/ITE/ICE) seen.
    pub queue_errors: u64,
    /// Waits that never completed.
    pub sync_timeouts: u64,
}

/// One VT-d unit and the memory it reads.
pub struct VtdUnit {
    regs: Registers,
    features: Features,
    root: ContiguousRegion,
    contexts: ContiguousRegion,
    queue: ContiguousRegion,
    status: ContiguousRegion,
    tail: u64,
    sequence: u32,
    initialised: bool,
    translating: bool,
    stats: VtdStats,
}

impl core::fmt::Debug for VtdUnit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VtdUnit")
            .field("root", &self.root.phys())
            .field("features", &self.features)
            .field("initialised", &self.initialised)
            .finish_non_exhaustive()
    }
}

impl VtdUnit {
    /// Reads CAP/ECAP, decides the features (IOVAs of at most `max_bits`),
    /// and allocates the root table (every bus pointing at an empty context
    /// table), the invalidation queue and the status word. `ENODEV` for a
    /// unit iommud cannot drive. The unit is not touched beyond its
    /// capability registers until [`init`](Self::init).
    ///
    /// Every context entry starts as `unassigned` says: blocked (not
    /// present), or pass-through with the reserved [`Self::passthrough_did`]
    /// (`EOPNOTSUPP` on a unit without ECAP.PT).
    pub fn new(
        mmio: Box<dyn VtdMmio>,
        memory: &ContiguousAllocator,
        max_bits: u32,
        unassigned: crate::unit::DeviceState,
    ) -> Result<Self> {
        let regs = Registers::new(mmio);
        let features = Features::decide(regs.cap(), regs.ecap(), max_bits).map_err(|e| {
            log::error!("iommud: vt-d unit refused: {e}");
            Error::new(ENODEV)
        })?;
        if !features.coherent {
            log::warn!(
                "iommud: vt-d unit is not coherent (ECAP.C = 0): table writes need cache flushes on real hardware"
            );
        }
        let root = memory.alloc(4096)?;
        let contexts = memory.alloc((TABLE_ENTRIES * TABLE_ENTRIES * ENTRY_SIZE) as usize)?;
        for bus in 0..TABLE_ENTRIES {
            let table = contexts.phys() + bus * TABLE_ENTRIES * ENTRY_SIZE;
            let entry = RootEntry::present(table);
            root.write_u64((bus * ENTRY_SIZE + 8) as usize, entry.hi);
            root.write_u64((bus * ENTRY_SIZE) as usize, entry.lo);
        }
        let initial = match unassigned {
            crate::unit::DeviceState::Passthrough if !features.pass_through => {
                log::error!("iommud: vt-d unit has no pass-through (ECAP.PT = 0)");
                return Err(Error::new(EOPNOTSUPP));
            }
            crate::unit::DeviceState::Passthrough => {
                ContextEntry::pass_through(passthrough_did(&features), features.agaw)
            }
            _ => ContextEntry::BLOCKED,
        };
        if initial.is_present() {
            for sid in 0..=u16::MAX {
                let off = Self::context_offset(sid);
                contexts.write_u64(off + 8, initial.hi);
                contexts.write_u64(off, initial.lo);
            }
        }
        Ok(Self {
            regs,
            features,
            root,
            contexts,
            queue: memory.alloc((QUEUE_ENTRIES * DESCRIPTOR_SIZE) as usize)?,
            status: memory.alloc(4096)?,
            tail: 0,
            sequence: 0,
            initialised: false,
            translating: false,
            stats: VtdStats::default(),
        })
    }

    /// What iommud uses of the unit.
    pub fn features(&self) -> &Features {
        &self.features
    }

    /// Counters.
    pub fn stats(&self) -> VtdStats {
        self.stats
    }

    /// Whether [`init`](Self::init) ran.
    pub fn is_initialised(&self) -> bool {
        self.initialised
    }

    /// Whether translation is on (GSTS.TES as iommud set it).
    pub fn is_translating(&self) -> bool {
        self.translating
    }

    /// Physical address of the root table.
    pub fn root_table(&self) -> u64 {
        self.root.phys()
    }

    /// The DID of pass-through entries on this unit.
    pub fn passthrough_did(&self) -> u16 {
        passthrough_did(&self.features)
    }

    /// The unit's GCMD shadow.
    pub fn gcmd_shadow(&self) -> u32 {
        self.regs.shadow()
    }

    /// Brings the unit up to the point where context entries can be
    /// written, in Linux's order (notes §A.1 "Bring-up sequences", Linux
    /// `init_dmars`): adopt GSTS into the shadow, clear old faults, take
    /// over or restart queued invalidation, protected regions off, QI on
    /// with the new queue, root table via SRTP followed by global
    /// context-cache and IOTLB invalidation. Translation stays off until
    /// [`enable_translation`](Self::enable_translation), once the context
    /// entries exist. The fault event stays masked (FECTL.IM): the records
    /// are drained by polling, so no MSI is needed. Returns false if already
    /// initialised.
    pub fn init(&mut self) -> Result<bool> {
        if self.initialised {
            return Ok(false);
        }
        let status = self.regs.adopt_status();
        // Old faults: read them once, then write FSTS back to itself.
        self.drain_faults(|f| log::warn!("iommud: fault left from before: {f}"));
        let old = self.regs.read32(reg::FSTS);
        self.regs.write32(reg::FSTS, old);
        if status & gcmd::TE != 0 {
            // Firmware left translation on with its own tables (Linux turns
            // it off before replacing the root table).
            self.regs.set_persistent(gcmd::TE, false)?;
        }
        if status & gcmd::QIE != 0 {
            self.quiesce_queue()?;
            self.regs.set_persistent(gcmd::QIE, false)?;
        }
        if self.regs.cap().protected_regions() {
            let pmen = self.regs.read32(reg::PMEN);
            self.regs.write32(reg::PMEN, pmen & !PMEN_EPM);
            self.poll(|r| r.read32(reg::PMEN) & PMEN_PRS == 0)?;
        }
        // QI: IQT = 0, IQA = base with QS = 0 and DW = 0 (legacy), then QIE.
        self.regs.write64(reg::IQT, 0);
        self.tail = 0;
        self.regs.write64(reg::IQA, self.queue.phys());
        self.regs.set_persistent(gcmd::QIE, true)?;
        // Root table (TTM = 00, legacy).
        self.regs.write64(reg::RTADDR, self.root.phys());
        self.regs.one_shot(gcmd::SRTP)?;
        self.initialised = true;
        if !self.features.srtp_invalidates {
            self.submit(&[
                Descriptor::ContextCache(ContextScope::Global),
                self.iotlb(IotlbScope::Global),
            ])?;
            self.sync()?;
        }
        Ok(true)
    }

    /// Turns translation on (GCMD.TE via the shadow), Linux's last step.
    pub fn enable_translation(&mut self) -> Result<()> {
        if !self.initialised {
            return Err(Error::new(EIO));
        }
        self.regs.set_persistent(gcmd::TE, true)?;
        self.translating = true;
        Ok(())
    }

    fn poll(&self, done: impl Fn(&Registers) -> bool) -> Result<()> {
        for _ in 0..POLL_LIMIT {
            if done(&self.regs) {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        Err(Error::new(ETIMEDOUT))
    }

    /// Waits until a queue someone else left running is empty (IQH = IQT).
    fn quiesce_queue(&self) -> Result<()> {
        self.poll(|r| {
            r.read64(reg::IQH) & reg::QUEUE_POINTER_MASK
                == r.read64(reg::IQT) & reg::QUEUE_POINTER_MASK
        })
    }

    fn context_offset(source_id: u16) -> usize {
        usize::from(source_id) * ENTRY_SIZE as usize
    }

    /// The context entry of `source_id` as memory holds it.
    pub fn context_entry(&self, source_id: u16) -> ContextEntry {
        let off = Self::context_offset(source_id);
        ContextEntry {
            lo: self.contexts.read_u64(off),
            hi: self.contexts.read_u64(off + 8),
        }
    }

    /// The IOTLB descriptor for `scope`, draining where the unit can.
    fn iotlb(&self, scope: IotlbScope) -> Descriptor {
        Descriptor::Iotlb {
            scope,
            drain_reads: self.features.drain_reads,
            drain_writes: self.features.drain_writes,
        }
    }

    /// Writes `source_id`'s context entry with every flush the change needs
    /// (notes §A.4 "Required ordering", Linux `domain_context_mapping_one`,
    /// `intel_context_flush_no_pasid`, `context_present_cache_flush`), and
    /// waits, so the entry is in force when this returns:
    ///
    /// * a present entry is torn down first: P cleared first, then the
    ///   context cache of the device (old DID) and the old domain's IOTLB are
    ///   invalidated;
    /// * a new entry is written high quadword first and P last; with caching
    ///   mode the unit may hold the not-present entry under DID 0, so the
    ///   device's context cache is invalidated with DID 0 and then the new
    ///   domain's IOTLB; otherwise only the write buffer is flushed (RWBF).
    ///
    /// `EINVAL` for DID 0 or a DID beyond CAP.ND in a present entry.
    pub fn set_context(&mut self, source_id: u16, entry: ContextEntry) -> Result<()> {
        if !self.initialised {
            return Err(Error::new(EIO));
        }
        if let Some(did) = entry.domain()
            && (did == 0 || u32::from(did) >= self.features.domains)
        {
            return Err(Error::new(EINVAL));
        }
        let off = Self::context_offset(source_id);
        let old = self.context_entry(source_id);
        if old == entry {
            return Ok(());
        }
        if let Some(old_did) = old.domain() {
            self.contexts.write_u64(off, 0);
            self.contexts.write_u64(off + 8, 0);
            self.stats.context_writes += 1;
            self.submit(&[
                Descriptor::ContextCache(ContextScope::Device {
                    did: old_did,
                    source_id,
                }),
                self.iotlb(IotlbScope::Domain(old_did)),
            ])?;
            self.sync()?;
        }
        if let Some(did) = entry.domain() {
            self.contexts.write_u64(off + 8, entry.hi);
            self.contexts.write_u64(off, entry.lo);
            self.stats.context_writes += 1;
            if self.features.caching_mode {
                self.submit(&[
                    Descriptor::ContextCache(ContextScope::Device { did: 0, source_id }),
                    self.iotlb(IotlbScope::Domain(did)),
                ])?;
                self.sync()?;
            } else {
                self.flush_write_buffer()?;
            }
        }
        Ok(())
    }

    /// GCMD.WBF when CAP.RWBF asks for it after table updates.
    pub fn flush_write_buffer(&mut self) -> Result<()> {
        if self.features.write_buffer_flush {
            self.regs.one_shot(gcmd::WBF)?;
        }
        Ok(())
    }

    /// Queues the invalidation of `did`'s IOTLB entries covering `[iova,
    /// iova + size)`: a PSI with the smallest aligned AM ≤ MAMV, otherwise
    /// (no PSI, or too large) a DSI. `leaf_only` sets IH (no page-table page
    /// was freed). Complete it with [`sync`](Self::sync).
    pub fn invalidate_range(
        &mut self,
        did: u16,
        iova: u64,
        size: u64,
        leaf_only: bool,
    ) -> Result<()> {
        let psi = self
            .features
            .max_address_mask
            .and_then(|max| page_selective_mask(iova, size, max));
        let scope = match psi {
            Some((address, mask)) => IotlbScope::Page {
                did,
                address,
                mask,
                leaf_only,
            },
            None => IotlbScope::Domain(did),
        };
        self.submit(&[self.iotlb(scope)])
    }

    /// Queues a domain-selective IOTLB invalidation of `did`.
    pub fn invalidate_domain(&mut self, did: u16) -> Result<()> {
        self.submit(&[self.iotlb(IotlbScope::Domain(did))])
    }

    /// Queues the invalidation of `source_id`'s cached context entry (tagged
    /// `did`) and of `did`'s IOTLB.
    pub fn invalidate_device_context(&mut self, source_id: u16, did: u16) -> Result<()> {
        self.submit(&[
            Descriptor::ContextCache(ContextScope::Device { did, source_id }),
            self.iotlb(IotlbScope::Domain(did)),
        ])
    }

    /// Copies `descriptors` to the queue and advances IQT once.
    pub fn submit(&mut self, descriptors: &[Descriptor]) -> Result<()> {
        if !self.initialised {
            return Err(Error::new(EIO));
        }
        if descriptors.len() as u64 >= QUEUE_ENTRIES {
            return Err(Error::new(ENOSPC));
        }
        for d in descriptors {
            let next = (self.tail + 1) % QUEUE_ENTRIES;
            // Full queue: wait for the unit to consume a descriptor.
            let head = |r: &Registers| (r.read64(reg::IQH) & reg::QUEUE_POINTER_MASK) >> 4;
            if head(&self.regs) == next {
                self.poll(|r| head(r) != next).inspect_err(|_| {
                    log::error!("iommud: vt-d invalidation queue stuck (IQH does not move)");
                })?;
            }
            let [lo, hi] = d.encode();
            let off = (self.tail * DESCRIPTOR_SIZE) as usize;
            self.queue.write_u64(off, lo);
            self.queue.write_u64(off + 8, hi);
            self.tail = next;
            self.stats.descriptors += 1;
            match d {
                Descriptor::ContextCache(_) => self.stats.context_invalidations += 1,
                Descriptor::Iotlb {
                    scope: IotlbScope::Page { .. },
                    ..
                } => self.stats.page_invalidations += 1,
                Descriptor::Iotlb { .. } => self.stats.domain_invalidations += 1,
                Descriptor::Wait { .. } => {}
            }
        }
        self.regs.write64(reg::IQT, self.tail << 4);
        Ok(())
    }

    fn status_word(&self) -> u32 {
        let mut raw = [0u8; 4];
        self.status.read(0, &mut raw);
        u32::from_le_bytes(raw)
    }

    /// Queues an invalidation wait with a status write and polls the status
    /// word until the unit wrote it: every earlier descriptor has then
    /// completed. An invalidation-queue error is repaired as Linux
    /// `qi_check_fault` does (the wait is copied over the bad descriptor)
    /// and answered with `EIO`.
    pub fn sync(&mut self) -> Result<()> {
        self.sequence = self.sequence.wrapping_add(1).max(1);
        let data = self.sequence;
        let wait = Descriptor::Wait {
            status_address: self.status.phys(),
            data,
        };
        self.submit(&[wait])?;
        let mut failed = false;
        for _ in 0..POLL_LIMIT {
            if self.status_word() == data {
                self.stats.waits += 1;
                return if failed { Err(Error::new(EIO)) } else { Ok(()) };
            }
            let status = self.regs.read32(reg::FSTS);
            if status & fsts::IQE != 0 {
                failed = true;
                self.stats.queue_errors += 1;
                let bad = (self.regs.read64(reg::IQH) & reg::QUEUE_POINTER_MASK) >> 4;
                let off = (bad % QUEUE_ENTRIES * DESCRIPTOR_SIZE) as usize;
                log::error!(
                    "iommud: vt-d refused descriptor {:#x}:{:#x}",
                    self.queue.read_u64(off),
                    self.queue.read_u64(off + 8)
                );
                let [lo, hi] = wait.encode();
                self.queue.write_u64(off, lo);
                self.queue.write_u64(off + 8, hi);
                self.regs.write32(reg::FSTS, fsts::IQE);
                // Processing resumes at the repaired descriptor.
                self.regs.write64(reg::IQT, self.tail << 4);
            } else if status & (fsts::ITE | fsts::ICE) != 0 {
                failed = true;
                self.stats.queue_errors += 1;
                self.regs
                    .write32(reg::FSTS, status & (fsts::ITE | fsts::ICE));
            }
            core::hint::spin_loop();
        }
        log::error!("iommud: vt-d invalidation wait {data} never completed");
        self.stats.sync_timeouts += 1;
        Err(Error::new(ETIMEDOUT))
    }

    /// Reads every pending primary fault record, oldest first, from FSTS.FRI
    /// on, clears each (F is write-1-to-clear), then clears PFO/PPF in
    /// FSTS — Linux `dmar_fault`. Returns how many records there were.
    pub fn drain_faults(&mut self, mut sink: impl FnMut(FaultRecord)) -> usize {
        let status = self.regs.read32(reg::FSTS);
        if status & fsts::PFO != 0 {
            self.stats.fault_overflows += 1;
            log::warn!("iommud: vt-d fault records overflowed, faults were lost");
        }
        let mut n = 0;
        if status & fsts::PPF != 0 {
            let records = self.features.fault_records.max(1);
            let mut index = (status >> fsts::FRI_SHIFT) & 0xFF;
            for _ in 0..records {
                let base = self.features.fault_record_offset + 16 * u64::from(index % records);
                let flags = self.regs.read32(base + 12);
                if flags & FRCD_F == 0 {
                    break;
                }
                let sid = self.regs.read32(base + 8);
                let fi = self.regs.read64(base);
                self.regs.write32(base + 12, FRCD_F);
                if let Some(record) = FaultRecord::decode(fi, sid, flags) {
                    sink(record);
                    n += 1;
                }
                index = (index + 1) % records;
            }
        }
        if status & (fsts::PFO | fsts::PPF) != 0 {
            self.regs
                .write32(reg::FSTS, fsts::PFO | fsts::PPF | fsts::PRO);
        }
        self.stats.faults += n as u64;
        n
    }

    /// `EBUSY` unless the unit is idle enough to hand over (nothing queued).
    pub fn queue_idle(&self) -> Result<()> {
        let head = (self.regs.read64(reg::IQH) & reg::QUEUE_POINTER_MASK) >> 4;
        if head == self.tail {
            Ok(())
        } else {
            Err(Error::new(EBUSY))
        }
    }
}
