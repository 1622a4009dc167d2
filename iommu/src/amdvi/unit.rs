//! Driving one AMD-Vi unit: the device table, the command ring with
//! completion waits, and the event log.

use std::time::{Duration, Instant};

use syscall::error::{EIO, ETIMEDOUT, Error, Result};

use super::command::Command;
use super::device_table::DeviceTableEntry;
use super::event::{EventLogEntry, FLAG_PRESENT, FLAG_WRITE, IO_PAGE_FAULT};
use super::{
    AmdViMmio, DEVICE_TABLE_ENTRIES, DTE_SIZE, RING_ENTRY_SIZE, capability, control, reg, status,
};
use crate::contiguous::{ContiguousAllocator, ContiguousRegion};
use crate::format::PageTableFormat;
use crate::pte::AMD_V1;
use crate::unit::{
    DeviceState, DomainTables, FaultCause, IommuUnit, UnitCapabilities, UnitFault, UnitStats,
    Vendor,
};

/// Command ring and event log entries: 256 (`log2` = 8, the smallest size the
/// specification allows), 4 KiB each.
const RING_LOG2: u64 = 8;
const RING_BYTES: u64 = RING_ENTRY_SIZE << RING_LOG2;
/// How long the completion store / head pointer is polled before the unit
/// counts as hung: a unit that never answers must not hang the daemon.
/// Linux gives up after about 100 ms (`LOOP_TIMEOUT` polls 1 µs apart); a
/// second leaves room for a loaded machine.
const POLL_TIMEOUT: Duration = Duration::from_secs(1);

/// Polls `done` until it holds or [`POLL_TIMEOUT`] passed; the clock is
/// read once per 1024 polls.
fn poll_until(mut done: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    let mut polls: u32 = 0;
    while !done() {
        polls = polls.wrapping_add(1);
        if polls.is_multiple_of(1024) && start.elapsed() > POLL_TIMEOUT {
            return false;
        }
        core::hint::spin_loop();
    }
    true
}

/// One AMD-Vi unit and the memory it reads.
pub struct AmdViUnit {
    mmio: Box<dyn AmdViMmio>,
    device_table: ContiguousRegion,
    command_ring: ContiguousRegion,
    event_log: ContiguousRegion,
    completion: ContiguousRegion,
    tail: u64,
    token: u64,
    initialised: bool,
    stats: UnitStats,
}

impl core::fmt::Debug for AmdViUnit {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AmdViUnit")
            .field("device_table", &self.device_table.phys())
            .field("initialised", &self.initialised)
            .finish_non_exhaustive()
    }
}

impl AmdViUnit {
    /// Allocates the unit's device table (2 MiB, every entry
    /// [`DeviceTableEntry::BLOCKED`]), command ring, event log and completion
    /// store. The unit is not touched until [`init`](Self::init).
    pub fn new(mmio: Box<dyn AmdViMmio>, memory: &ContiguousAllocator) -> Result<Self> {
        Self::with_default_entry(mmio, memory, DeviceTableEntry::BLOCKED)
    }

    /// [`new`](Self::new) with every device table entry `default` (what a
    /// device no domain holds gets: passthrough or blocked).
    pub fn with_default_entry(
        mmio: Box<dyn AmdViMmio>,
        memory: &ContiguousAllocator,
        default: DeviceTableEntry,
    ) -> Result<Self> {
        let device_table = memory.alloc((DEVICE_TABLE_ENTRIES * DTE_SIZE) as usize)?;
        let q0 = default.to_quadwords()[0];
        for rid in 0..DEVICE_TABLE_ENTRIES as usize {
            device_table.write_u64(rid * DTE_SIZE as usize, q0);
        }
        Ok(Self {
            mmio,
            device_table,
            command_ring: memory.alloc(RING_BYTES as usize)?,
            event_log: memory.alloc(RING_BYTES as usize)?,
            completion: memory.alloc(8)?,
            tail: 0,
            token: 0,
            initialised: false,
            stats: UnitStats::default(),
        })
    }

    /// Programs the base registers and enables translation, the command ring
    /// and the event log. Returns false if the unit was already initialised.
    pub fn init(&mut self) -> bool {
        if self.initialised {
            return false;
        }
        let size_pages = (DEVICE_TABLE_ENTRIES * DTE_SIZE / 4096) - 1;
        self.mmio.write_u64(
            reg::DEVICE_TABLE_BASE,
            self.device_table.phys() | size_pages,
        );
        self.mmio.write_u64(
            reg::COMMAND_BUFFER_BASE,
            self.command_ring.phys() | (RING_LOG2 << 56),
        );
        self.mmio.write_u64(
            reg::EVENT_LOG_BASE,
            self.event_log.phys() | (RING_LOG2 << 56),
        );
        self.mmio.write_u64(reg::COMMAND_HEAD, 0);
        self.mmio.write_u64(reg::COMMAND_TAIL, 0);
        self.mmio.write_u64(reg::EVENT_HEAD, 0);
        self.mmio.write_u64(reg::EVENT_TAIL, 0);
        self.tail = 0;
        self.mmio.write_u64(
            reg::CONTROL,
            control::IOMMU_ENABLE | control::EVENT_LOG_ENABLE | control::COMMAND_BUFFER_ENABLE,
        );
        self.initialised = true;
        true
    }

    /// Whether [`init`](Self::init) ran.
    pub fn is_initialised(&self) -> bool {
        self.initialised
    }

    /// Physical address of the device table.
    pub fn device_table_phys(&self) -> u64 {
        self.device_table.phys()
    }

    /// Counters.
    pub fn stats(&self) -> UnitStats {
        self.stats
    }

    /// The device table entry of requester `rid` as memory holds it.
    pub fn device_entry(&self, rid: u16) -> DeviceTableEntry {
        let off = usize::from(rid) * DTE_SIZE as usize;
        DeviceTableEntry::from_quadwords(
            self.device_table.read_u64(off),
            self.device_table.read_u64(off + 8),
        )
    }

    /// Writes requester `rid`'s device table entry in an order the unit can
    /// never read half-written, then invalidates the unit's cached copy and
    /// waits for completion, so the new entry is in force when this returns.
    ///
    /// The unit reads the 256-bit entry in one go but the CPU stores it a
    /// quadword at a time (Linux: two 128-bit halves, `update_dte256`), and
    /// the DomainID (quadword 1) sits apart from V, Mode, the root and IR/IW
    /// (quadword 0). So:
    /// 1. if the old entry lets DMA through and a quadword other than 0
    ///    changes, quadword 0 first becomes [`DeviceTableEntry::BLOCKED`]
    ///    (permissions cleared first when disabling or moving; V itself stays
    ///    set, because V = 0 would let DMA through untranslated);
    /// 2. the upper quadwords, then the DomainID;
    /// 3. quadword 0 with V, TV, Mode, root, IR/IW last (enabled last);
    /// 4. `INV_DEV_ENTRY` + `COMPLETION_WAIT`.
    ///
    /// Every state in between is the old entry, blocked, or the new entry;
    /// a device moving between domains is briefly blocked instead of being
    /// seen with the new DomainID and the old root.
    pub fn set_device_entry(&mut self, rid: u16, entry: DeviceTableEntry) -> Result<()> {
        let off = usize::from(rid) * DTE_SIZE as usize;
        let new = entry.to_quadwords();
        let old: [u64; 4] = core::array::from_fn(|i| self.device_table.read_u64(off + i * 8));
        let blocked = DeviceTableEntry::BLOCKED.to_quadwords()[0];
        // Only quadword 0 changing (the root and Mode after a level growth)
        // is one atomic store: no need to block in between.
        if DeviceTableEntry::from_quadwords(old[0], old[1]).lets_dma_through()
            && old[1..] != new[1..]
        {
            self.store_entry_word(off, blocked);
        }
        for i in [3, 2, 1] {
            if self.device_table.read_u64(off + i * 8) != new[i] {
                self.store_entry_word(off + i * 8, new[i]);
            }
        }
        self.store_entry_word(off, new[0]);
        self.submit(Command::InvalidateDeviceEntry { device_id: rid })?;
        self.wait()
    }

    /// One ordered store into the device table.
    fn store_entry_word(&mut self, off: usize, value: u64) {
        self.device_table.write_u64(off, value);
        self.mmio.store_barrier();
    }

    /// Invalidates the IOTLB entries of `domain_id` covering `[iova, iova +
    /// size)` (`size == u64::MAX`: the whole domain) and waits for completion.
    pub fn invalidate_pages(&mut self, domain_id: u16, iova: u64, size: u64) -> Result<()> {
        self.submit(Command::InvalidatePages {
            domain_id,
            address: iova,
            size,
        })?;
        self.wait()
    }

    /// Queues one command: writes it at the tail and advances the tail register.
    pub fn submit(&mut self, cmd: Command) -> Result<()> {
        if !self.initialised {
            return Err(Error::new(EIO));
        }
        let next = (self.tail + RING_ENTRY_SIZE) % RING_BYTES;
        // Full ring: wait for the unit to consume an entry.
        let mmio = &self.mmio;
        if !poll_until(|| mmio.read_u64(reg::COMMAND_HEAD) & reg::RING_POINTER_MASK != next) {
            log::error!("iommud: command ring stuck (head does not move)");
            return Err(Error::new(ETIMEDOUT));
        }
        self.command_ring.write(self.tail as usize, &cmd.encode());
        self.tail = next;
        self.mmio.write_u64(reg::COMMAND_TAIL, self.tail);
        self.stats.commands += 1;
        match cmd {
            Command::InvalidatePages { .. } => self.stats.page_invalidations += 1,
            Command::InvalidateDeviceEntry { .. } => self.stats.device_invalidations += 1,
            Command::CompletionWait { .. } => {}
        }
        Ok(())
    }

    /// Queues `COMPLETION_WAIT` with a fresh token and polls the store until
    /// the unit wrote it: every earlier command has then completed.
    pub fn wait(&mut self) -> Result<()> {
        self.token = self.token.wrapping_add(1).max(1);
        let token = self.token;
        self.submit(Command::CompletionWait {
            store_address: self.completion.phys(),
            data: token,
        })?;
        let completion = &self.completion;
        if !poll_until(|| completion.read_u64(0) == token) {
            log::error!("iommud: completion wait {token} never completed");
            self.stats.sync_timeouts += 1;
            return Err(Error::new(ETIMEDOUT));
        }
        self.stats.completion_waits += 1;
        Ok(())
    }

    /// Reads every event the unit logged since the last call, oldest first,
    /// and hands it to `sink`; returns how many there were.
    pub fn drain_events(&mut self, mut sink: impl FnMut(EventLogEntry)) -> usize {
        if !self.initialised {
            return 0;
        }
        let status_bits = self.mmio.read_u64(reg::STATUS);
        if status_bits & status::EVENT_OVERFLOW != 0 {
            self.stats.event_overflows += 1;
            // RW1C, then re-enable logging as the specification asks.
            self.mmio.write_u64(reg::STATUS, status::EVENT_OVERFLOW);
        }
        let tail = self.mmio.read_u64(reg::EVENT_TAIL) & reg::RING_POINTER_MASK;
        let mut head = self.mmio.read_u64(reg::EVENT_HEAD) & reg::RING_POINTER_MASK;
        let mut n = 0;
        // At most one ring's worth, whatever the registers say.
        while head != tail && n < (RING_BYTES / RING_ENTRY_SIZE) as usize {
            let mut raw = [0u8; 16];
            self.event_log
                .read(head as usize % RING_BYTES as usize, &mut raw);
            sink(EventLogEntry::decode(&raw));
            head = (head + RING_ENTRY_SIZE) % RING_BYTES;
            n += 1;
        }
        self.mmio.write_u64(reg::EVENT_HEAD, head);
        self.stats.events += n as u64;
        n
    }
}

/// The DomainID of passthrough and blocked entries: no domain gets id 0, so
/// nothing the unit caches under it belongs to a domain.
pub const RESERVED_DOMAIN_ID: u16 = 0;

fn entry_for(state: DeviceState) -> DeviceTableEntry {
    match state {
        DeviceState::Blocked => DeviceTableEntry::BLOCKED,
        DeviceState::Passthrough => DeviceTableEntry::PASSTHROUGH,
        DeviceState::Translated(t) => DeviceTableEntry::translated(t.domain_id, t.root, t.levels),
    }
}

impl IommuUnit for AmdViUnit {
    fn vendor(&self) -> Vendor {
        Vendor::AmdVi
    }

    fn init(&mut self) -> Result<bool> {
        Ok(AmdViUnit::init(self))
    }

    fn is_initialised(&self) -> bool {
        self.initialised
    }

    fn capabilities(&self) -> UnitCapabilities {
        UnitCapabilities {
            caches_not_present: self
                .mmio
                .capability_header()
                .is_none_or(|header| header & capability::NP_CACHE != 0),
            max_levels: 6,
            max_domain_id: u16::MAX,
        }
    }

    fn page_table_format(&self) -> &'static dyn PageTableFormat {
        &AMD_V1
    }

    fn table_phys(&self) -> u64 {
        self.device_table.phys()
    }

    fn set_device(&mut self, rid: u16, state: DeviceState) -> Result<()> {
        self.set_device_entry(rid, entry_for(state))
    }

    fn device(&self, rid: u16) -> Option<DeviceState> {
        let e = self.device_entry(rid);
        if e == DeviceTableEntry::BLOCKED {
            Some(DeviceState::Blocked)
        } else if e == DeviceTableEntry::PASSTHROUGH {
            Some(DeviceState::Passthrough)
        } else if e == DeviceTableEntry::translated(e.domain_id, e.root, e.mode) && e.mode != 0 {
            Some(DeviceState::Translated(DomainTables {
                domain_id: e.domain_id,
                root: e.root,
                levels: e.mode,
            }))
        } else {
            None
        }
    }

    fn invalidate_range(&mut self, domain_id: u16, iova: u64, size: u64) -> Result<()> {
        self.submit(Command::InvalidatePages {
            domain_id,
            address: iova,
            size,
        })
    }

    fn invalidate_domain(&mut self, domain_id: u16) -> Result<()> {
        self.invalidate_range(domain_id, 0, u64::MAX)
    }

    fn invalidate_device(&mut self, rid: u16) -> Result<()> {
        self.submit(Command::InvalidateDeviceEntry { device_id: rid })
    }

    fn sync(&mut self) -> Result<()> {
        self.wait()
    }

    fn drain_faults(&mut self, sink: &mut dyn FnMut(UnitFault)) -> usize {
        self.drain_events(|e| sink(fault_of(&e)))
    }

    fn stats(&self) -> UnitStats {
        self.stats
    }
}

/// The vendor-neutral record of an event log entry.
pub fn fault_of(e: &EventLogEntry) -> UnitFault {
    let cause = if e.code != IO_PAGE_FAULT {
        FaultCause::Other
    } else if e.flags & FLAG_PRESENT != 0 {
        FaultCause::Permission
    } else {
        FaultCause::NotPresent
    };
    UnitFault {
        requester_id: e.device_id,
        domain_id: e.domain_id,
        address: e.address,
        write: e.flags & FLAG_WRITE != 0,
        cause,
        code: u16::from(e.code),
    }
}
