//! The simulated DSMIL controller: a PCI function whose BAR0 holds the register
//! block of [`dsmil::controller::registers`], and whose DMA engine (through the
//! simulated IOMMU when one is attached) delivers the device table and device
//! data blocks into the driver's buffers, completing with interrupt 0.
//!
//! It is a [`SimPciFunction`] built from [`SimDsmilController::spec`]: vendor
//! and device ids [`dsmil::client::PCI_VENDOR_ID`]/[`dsmil::client::PCI_DEVICE_ID`]
//! (what `pcid-spawner` matches), class 0x0880 (other system peripheral), 16 KiB
//! of registers in BAR0, MSI-X (table at BAR2 + 0, PBA at BAR2 + 0x800), 64-bit
//! MSI with per-vector masking, INTx on line 11, 64-bit DMA.
//!
//! ## The doorbell model
//!
//! BAR memory is plain simulated RAM: the CPU's writes through the driver's
//! uncacheable mapping cannot be intercepted. So, like a device's command
//! processor, the controller runs its own thread ("sim-dsmil-ctrl") that watches
//! `DOORBELL`: when `CTRL.ENABLE` is set and `DOORBELL` differs from `COMPLETED`,
//! it runs the programmed command. Between looks it backs off — a few spins and
//! yields, then parks for 10 µs doubling up to 500 µs — which bounds the
//! latency of a doorbell the way a real device's fetch latency would; nothing
//! in the driver or the tests waits on that timing (the driver waits for the
//! completion interrupt). The thread ends when the controller is dropped.
//!
//! ## Commands
//!
//! * `ReadDeviceTable`: 108 40-byte [`DeviceInfo`] records in ascending token
//!   order (the `dsmil::wire` layout): quarantined tokens with state
//!   QUARANTINED, access NONE and the flag set; the rest SAFE and READ, with the
//!   token's value as `last_response` and the controller's temperature.
//! * `ReadDeviceData` (`ARG` = token): [`DEVICE_DATA_LEN`] bytes — the token's
//!   value (4 bytes LE), then byte `i` = `token as u8 ^ i as u8` (the same
//!   pattern as the simulated SMM firmware's register blocks).
//!
//! A result larger than `DMA_LEN` fails with `BufferTooSmall` and no DMA. A DMA
//! the engine refuses (an IOMMU fault, bus mastering off) fails with `DmaFault`
//! and `FAULT_ADDR`; the DMA engine writes nothing at all then.
//!
//! ## Fault injection (host side)
//!
//! * [`SimDsmilController::inject_rogue_dma`]: the next command DMAs to a bus
//!   address the host chose instead of the driver's buffer — what a buggy or
//!   malicious device does; the IOMMU must stop it.
//! * [`SimDsmilController::set_unresponsive`]: doorbells are left unanswered
//!   (`STATUS.BUSY` stays set), so the driver's wait times out.
//! * [`SimDsmilController::set_table_entries`]: a device table with
//!   a wrong number of records (a short transfer).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering, fence};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use driver_sys::pci::PciAddress;
use driver_sys::pci::pcid_wire::FullDeviceId;
use dsmil::controller::registers::{
    self as reg, Command, DEVICE_DATA_LEN, DEVICE_TABLE_LEN, ErrorCode, ID_MAGIC, INTERFACE_VERSION,
};
use dsmil::wire::{DEVICE_COUNT, DeviceAccess, DeviceInfo, DeviceState, Token};
use syscall::error::{EINVAL, Error, Result};

use crate::hw::pci_function::{SimFunctionSpec, SimPciFunction};
use crate::kernel::Kernel;
use crate::kernel::wait::lock;
use crate::mock::phys::PhysArena;

/// Spins (with yields) before the command processor starts parking.
const SPINS_BEFORE_PARKING: u32 = 64;
/// First park of an idle command processor.
const MIN_PARK: Duration = Duration::from_micros(10);
/// Longest park: the worst-case doorbell latency.
const MAX_PARK: Duration = Duration::from_micros(500);

/// Counters of the controller.
#[derive(Debug, Default)]
pub struct SimDsmilStats {
    /// Doorbells taken.
    pub commands: AtomicU64,
    /// Commands that completed with an error.
    pub errors: AtomicU64,
    /// DMA transfers the engine refused.
    pub dma_faults: AtomicU64,
}

#[derive(Debug)]
struct Model {
    values: [u32; DEVICE_COUNT],
    celsius: i32,
    unresponsive: bool,
    rogue_target: Option<u64>,
    table_entries: usize,
}

struct Shared {
    function: Arc<SimPciFunction>,
    phys: Arc<PhysArena>,
    bar0: u64,
    model: Mutex<Model>,
    stop: AtomicBool,
    stats: SimDsmilStats,
}

/// The simulated DSMIL controller, plugged into a kernel's PCI bus.
pub struct SimDsmilController {
    shared: Arc<Shared>,
    worker: Option<JoinHandle<()>>,
}

impl core::fmt::Debug for SimDsmilController {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SimDsmilController")
            .field("addr", &self.shared.function.address())
            .finish_non_exhaustive()
    }
}

impl SimDsmilController {
    /// The function spec of a DSMIL controller at `addr` with `msix_vectors`
    /// MSI-X table entries.
    pub fn spec(addr: PciAddress, msix_vectors: u16) -> SimFunctionSpec {
        let mut spec = SimFunctionSpec::dsmil_like(addr, msix_vectors);
        spec.id = FullDeviceId {
            vendor_id: dsmil::client::PCI_VENDOR_ID,
            device_id: dsmil::client::PCI_DEVICE_ID,
            class: 0x08,
            subclass: 0x80,
            interface: 0,
            revision: 1,
        };
        spec
    }

    /// Builds the controller from `spec` (see [`SimDsmilController::spec`]; BAR0
    /// must hold the register block), plugs it into `kernel`'s PCI bus and
    /// starts its command processor.
    pub fn new(kernel: &Kernel, spec: SimFunctionSpec) -> Result<Self> {
        let function = SimPciFunction::new(kernel, spec)?;
        let (bar0, size) = function.bar(0).ok_or(Error::new(EINVAL))?;
        if size < reg::REGISTER_BLOCK_LEN as u64 {
            return Err(Error::new(EINVAL));
        }
        kernel.pci().add_function(function.clone())?;
        let mut values = [0u32; DEVICE_COUNT];
        for (v, t) in values.iter_mut().zip(Token::all()) {
            *v = 0x5000_0000 | u32::from(t.raw());
        }
        let shared = Arc::new(Shared {
            function,
            phys: kernel.phys().clone(),
            bar0,
            model: Mutex::new(Model {
                values,
                celsius: 45,
                unresponsive: false,
                rogue_target: None,
                table_entries: DEVICE_COUNT,
            }),
            stop: AtomicBool::new(false),
            stats: SimDsmilStats::default(),
        });
        // Reset values of the read-only registers.
        shared.set(reg::ID, ID_MAGIC);
        shared.set(reg::VERSION, INTERFACE_VERSION);
        shared.set(reg::DEVICE_COUNT_REG, DEVICE_COUNT as u32);
        shared.set(reg::DATA_LEN_REG, DEVICE_DATA_LEN as u32);
        let weak = Arc::downgrade(&shared);
        let worker = std::thread::Builder::new()
            .name("sim-dsmil-ctrl".into())
            .spawn(move || command_processor(weak))
            .map_err(|_| Error::new(syscall::error::EAGAIN))?;
        Ok(Self {
            shared,
            worker: Some(worker),
        })
    }

    /// The PCI function (config space, DMA engine, interrupts, counters).
    pub fn function(&self) -> &Arc<SimPciFunction> {
        &self.shared.function
    }

    /// Counters.
    pub fn stats(&self) -> &SimDsmilStats {
        &self.shared.stats
    }

    /// Reads register `offset` of BAR0 (what the host sees; tests inspect it).
    pub fn register(&self, offset: usize) -> u32 {
        self.shared.get(offset)
    }

    /// Sets the value token `token` reports.
    pub fn set_value(&self, token: Token, value: u32) {
        if let Some(v) = lock(&self.shared.model).values.get_mut(token.index()) {
            *v = value;
        }
    }

    /// Sets the temperature the device table reports.
    pub fn set_celsius(&self, celsius: i32) {
        lock(&self.shared.model).celsius = celsius;
    }

    /// The next command DMAs to `bus` instead of the driver's buffer (once).
    pub fn inject_rogue_dma(&self, bus: u64) {
        lock(&self.shared.model).rogue_target = Some(bus);
    }

    /// Leaves doorbells unanswered (or answers them again: a command left
    /// hanging is then run).
    pub fn set_unresponsive(&self, on: bool) {
        let mut m = lock(&self.shared.model);
        m.unresponsive = on;
        if !on {
            self.shared.set(reg::STATUS, 0);
        }
    }

    /// Makes the device table carry `n` records (108 normally).
    pub fn set_table_entries(&self, n: usize) {
        lock(&self.shared.model).table_entries = n;
    }

    /// The data block the controller delivers for `token`.
    pub fn device_data(&self, token: Token) -> Vec<u8> {
        let value = lock(&self.shared.model)
            .values
            .get(token.index())
            .copied()
            .unwrap_or(0);
        data_block(token, value)
    }
}

impl Drop for SimDsmilController {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(worker) = self.worker.take() {
            worker.thread().unpark();
            let _ = worker.join();
        }
    }
}

fn data_block(token: Token, value: u32) -> Vec<u8> {
    let head = value.to_le_bytes();
    (0..DEVICE_DATA_LEN)
        .map(|i| match head.get(i) {
            Some(b) => *b,
            None => (token.raw() as u8) ^ (i as u8),
        })
        .collect()
}

impl Shared {
    fn reg_ptr(&self, offset: usize) -> Option<*mut u32> {
        if !offset.is_multiple_of(4) {
            return None;
        }
        self.phys
            .host_ptr(self.bar0 + offset as u64, 4)
            .map(|p| p.cast::<u32>())
    }

    /// A register as the device sees it (volatile: the CPU writes it behind our back).
    fn get(&self, offset: usize) -> u32 {
        // SAFETY: inside BAR0's RAM (host_ptr checked) and 4-byte aligned (BAR0 is
        // page aligned, the offset a multiple of 4).
        self.reg_ptr(offset)
            .map_or(0, |p| u32::from_le(unsafe { p.read_volatile() }))
    }

    fn set(&self, offset: usize, value: u32) {
        if let Some(p) = self.reg_ptr(offset) {
            // SAFETY: as in `get`.
            unsafe { p.write_volatile(value.to_le()) };
        }
    }

    /// A doorbell waiting to be served, if the device is enabled and answering.
    fn pending_doorbell(&self) -> Option<u32> {
        if self.get(reg::CTRL) & reg::CTRL_ENABLE == 0 {
            return None;
        }
        let bell = self.get(reg::DOORBELL);
        if bell == self.get(reg::COMPLETED) || self.get(reg::STATUS) & reg::STATUS_BUSY != 0 {
            return None;
        }
        if lock(&self.model).unresponsive {
            // Taken, never finished: the driver sees BUSY and no completion.
            self.set(reg::STATUS, reg::STATUS_BUSY);
            return None;
        }
        Some(bell)
    }

    fn run(&self, seq: u32) {
        // The doorbell was read before the command registers: order the loads.
        fence(Ordering::Acquire);
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        self.set(reg::STATUS, reg::STATUS_BUSY);
        let (status, xfer) = match self.execute() {
            Ok(n) => (reg::STATUS_DONE, n),
            Err(code) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                (code.status(), 0)
            }
        };
        self.set(reg::XFER_LEN, xfer as u32);
        self.set(reg::STATUS, status);
        self.set(reg::COMPLETED, seq);
        if self.get(reg::CTRL) & reg::CTRL_IRQ_ENABLE != 0 {
            self.set(
                reg::IRQ_STATUS,
                self.get(reg::IRQ_STATUS) | reg::IRQ_COMPLETION,
            );
            fence(Ordering::Release);
            self.function.signal(0);
        }
    }

    /// Runs the programmed command; the bytes DMA'd, or why not.
    fn execute(&self) -> core::result::Result<usize, ErrorCode> {
        let bus =
            u64::from(self.get(reg::DMA_ADDR_LO)) | (u64::from(self.get(reg::DMA_ADDR_HI)) << 32);
        let room = self.get(reg::DMA_LEN) as usize;
        let (payload, rogue) = {
            let mut m = lock(&self.model);
            let payload = match Command::from_raw(self.get(reg::COMMAND)) {
                Some(Command::ReadDeviceTable) => device_table(&m),
                Some(Command::ReadDeviceData) => {
                    let token = u16::try_from(self.get(reg::ARG))
                        .ok()
                        .and_then(|t| Token::new(t).ok())
                        .ok_or(ErrorCode::BadToken)?;
                    let value = m.values.get(token.index()).copied().unwrap_or(0);
                    data_block(token, value)
                }
                None => return Err(ErrorCode::BadCommand),
            };
            (payload, m.rogue_target.take())
        };
        if payload.len() > room {
            return Err(ErrorCode::BufferTooSmall);
        }
        let target = rogue.unwrap_or(bus);
        match self.function.dma_write(target, &payload) {
            Ok(()) => Ok(payload.len()),
            Err(fault) => {
                log::warn!(
                    "sim dsmil controller {}: DMA to {target:#x} refused: {fault:?}",
                    self.function.address()
                );
                self.stats.dma_faults.fetch_add(1, Ordering::Relaxed);
                self.set(reg::FAULT_ADDR_LO, target as u32);
                self.set(reg::FAULT_ADDR_HI, (target >> 32) as u32);
                Err(ErrorCode::DmaFault)
            }
        }
    }
}

fn device_table(m: &Model) -> Vec<u8> {
    let mut out = vec![0u8; m.table_entries.min(DEVICE_COUNT) * DeviceInfo::SIZE];
    for (t, slot) in Token::all().zip(out.chunks_exact_mut(DeviceInfo::SIZE)) {
        let quarantined = t.is_quarantined();
        let info = DeviceInfo {
            device_id: t.raw(),
            state: if quarantined {
                DeviceState::Quarantined
            } else {
                DeviceState::Safe
            },
            access: if quarantined {
                DeviceAccess::None
            } else {
                DeviceAccess::Read
            },
            is_quarantined: quarantined,
            last_response: m.values.get(t.index()).copied().unwrap_or(0),
            timestamp: 0,
            thermal_celsius: m.celsius,
        };
        // The slot is exactly one record long.
        let _ = info.encode(slot);
    }
    debug_assert!(out.len() <= DEVICE_TABLE_LEN);
    out
}

/// The controller's command processor: serve doorbells until the controller is gone.
fn command_processor(shared: Weak<Shared>) {
    let mut idle = 0u32;
    loop {
        let Some(s) = shared.upgrade() else { return };
        if s.stop.load(Ordering::Acquire) {
            return;
        }
        if let Some(seq) = s.pending_doorbell() {
            s.run(seq);
            idle = 0;
            continue;
        }
        drop(s);
        idle = idle.saturating_add(1);
        if idle < SPINS_BEFORE_PARKING {
            std::hint::spin_loop();
            std::thread::yield_now();
        } else {
            let shift = (idle - SPINS_BEFORE_PARKING).min(6);
            std::thread::park_timeout((MIN_PARK * (1 << shift)).min(MAX_PARK));
        }
    }
}
