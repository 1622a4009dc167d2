//! [`DsmilController`]: the driver's hold on the DSMIL PCI function.
//!
//! Bring-up, in the order a Redox PCI driver does it: the pcid channel, decode
//! and bus mastering, BAR0 mapped uncacheable and identified, quirks, one
//! completion interrupt through driver-sys (MSI-X, stepping down to MSI and INTx
//! as capabilities, vectors and quirks allow — each step logged by driver-sys),
//! then two DMA buffers from `IommuDmaAllocator::for_function`: a domain of
//! dsmild's own (id chosen by iommud) with the function assigned by passing
//! iommud the pcid channel (passthrough, with a warning, when there is no
//! `iommu` scheme). Then the device is enabled.
//!
//! Each command is one doorbell cycle (see [`super::registers`]): program the
//! buffer's IOVA and length, ring, wait for the completion interrupt with a
//! deadline, acknowledge, check `STATUS`, bounds-check `XFER_LEN`, decode. Every
//! value the device hands back is checked before use; failures are errno values
//! (`EIO` for a device error or a blocked DMA, `ETIMEDOUT` when no completion
//! arrives in time, `EACCES` for a quarantined token, which never reaches the
//! device).

use std::path::PathBuf;
use std::sync::Arc;

use driver_sys::dma::{DmaAllocation, IommuDmaAllocator};
use driver_sys::irq::{
    InterruptSetup, InterruptVectors, IrqMode, enable_interrupts, function_quirks,
};
use driver_sys::msi::Mmio;
use driver_sys::pci::{MappedBar, PciAddress, PciFunction};
use driver_sys::quirks::QuirkFlags;
use iommu::Bdf;
use iommu::client::IommuDomain;
use syscall::error::{EACCES, EBUSY, EINVAL, EIO, ENODEV, EOPNOTSUPP, Error, Result};

use super::completion::CompletionWait;
use super::registers::{
    self as reg, Command, DEVICE_DATA_LEN, DEVICE_TABLE_LEN, ErrorCode, ID_MAGIC,
    INTERFACE_VERSION, REGISTER_BLOCK_LEN,
};
use crate::wire::{
    DEVICE_COUNT, DeviceAccess, DeviceInfo, DeviceState, FIRST_TOKEN, Token, decode_device_list,
};

/// Default bound on one command, doorbell to completion interrupt.
pub const DEFAULT_COMMAND_TIMEOUT_MS: u32 = 100;
/// Address bits the controller's DMA engine drives.
pub const DMA_ADDRESS_BITS: u8 = 64;

/// How to bring the controller up.
#[derive(Clone, Debug)]
pub struct ControllerConfig {
    /// Quirk files (`/etc/quirks.d` when `None`).
    pub quirks_dir: Option<PathBuf>,
    /// Quirks added to whatever the table says (configuration, tests).
    pub extra_quirks: QuirkFlags,
    /// Bound on one command.
    pub command_timeout_ms: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            quirks_dir: None,
            extra_quirks: QuirkFlags::empty(),
            command_timeout_ms: DEFAULT_COMMAND_TIMEOUT_MS,
        }
    }
}

/// Counters, for `stats`-style diagnostics and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ControllerStats {
    /// Doorbells rung.
    pub commands: u64,
    /// Completion interrupts taken (including stale ones).
    pub interrupts: u64,
    /// Interrupts that did not carry the awaited completion.
    pub stale_interrupts: u64,
    /// Commands that reported an error.
    pub errors: u64,
    /// Commands whose completion did not arrive in time.
    pub timeouts: u64,
}

fn pcid(what: &str, e: driver_sys::pci::PcidError) -> Error {
    log::error!("dsmil controller: {what}: {e}");
    Error::new(e.errno())
}

/// The DSMIL PCI controller, bound and enabled.
pub struct DsmilController {
    address: PciAddress,
    regs: Arc<MappedBar>,
    irq: InterruptSetup,
    completion: CompletionWait,
    domain: Option<u16>,
    dma: IommuDmaAllocator,
    table: DmaAllocation,
    data: DmaAllocation,
    sequence: u32,
    timeout_ms: u32,
    stats: ControllerStats,
    // Last: the channel stays open while the rest is torn down.
    _pci: PciFunction,
}

impl core::fmt::Debug for DsmilController {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DsmilController")
            .field("address", &self.address)
            .field("mode", &self.irq.mode)
            .field("dma_translated", &self.dma.translates())
            .finish_non_exhaustive()
    }
}

impl DsmilController {
    /// Opens the function at `address` through pcid and brings it up.
    pub fn connect(address: &PciAddress, config: &ControllerConfig) -> Result<Self> {
        let pci = PciFunction::connect(address).map_err(|e| pcid("connecting to pcid", e))?;
        Self::bind(pci, config)
    }

    /// Brings up the function behind an open pcid channel (what `pcid-spawner`
    /// hands over in `PCID_CLIENT_CHANNEL`).
    pub fn bind(mut pci: PciFunction, config: &ControllerConfig) -> Result<Self> {
        let address = pci.address();
        let id = pci.identity();
        if (id.vendor, id.device) != (crate::client::PCI_VENDOR_ID, crate::client::PCI_DEVICE_ID) {
            log::error!(
                "dsmil controller {address}: {:04x}:{:04x} is not a DSMIL controller",
                id.vendor,
                id.device
            );
            return Err(Error::new(ENODEV));
        }
        pci.enable_device()
            .map_err(|e| pcid("enabling decode and bus mastering", e))?;
        let regs = pci.map_bar(0).map_err(|e| pcid("mapping BAR0", e))?;
        if regs.size < REGISTER_BLOCK_LEN as u64 {
            log::error!(
                "dsmil controller {address}: BAR0 is only {} bytes",
                regs.size
            );
            return Err(Error::new(ENODEV));
        }
        let magic = read(&regs, reg::ID)?;
        let version = read(&regs, reg::VERSION)?;
        if magic != ID_MAGIC {
            log::error!("dsmil controller {address}: BAR0 id {magic:#010x} is not \"DSMC\"");
            return Err(Error::new(ENODEV));
        }
        if version >> 16 != INTERFACE_VERSION >> 16 {
            log::error!("dsmil controller {address}: interface version {version:#x} unsupported");
            return Err(Error::new(EOPNOTSUPP));
        }

        let quirks = function_quirks(&pci, config.quirks_dir.as_deref()) | config.extra_quirks;
        let vectors = InterruptVectors::open()?;
        let irq =
            enable_interrupts(&mut pci, &vectors, 1, quirks, &vectors.all_cpus()).map_err(|e| {
                log::error!("dsmil controller {address}: {e}");
                Error::new(EIO)
            })?;
        let Some(handle) = irq.handles.first() else {
            return Err(Error::new(EIO));
        };
        log::info!(
            "dsmil controller {address}: completion interrupt by {} (vector {}{})",
            irq.mode,
            handle.vector(),
            if irq.is_degraded() { ", degraded" } else { "" }
        );
        let completion = CompletionWait::new(handle)?;

        // A domain of our own, id chosen by iommud, the function assigned by
        // passing iommud our pcid channel: nobody can squat the id or claim the
        // function for theirs.
        let dma =
            IommuDmaAllocator::for_function(&pci, quirks, DMA_ADDRESS_BITS).inspect_err(|e| {
                log::error!("dsmil controller {address}: IOMMU domain: {e}");
            })?;
        let domain = dma.domain();
        match domain {
            Some(id) => log::info!("dsmil controller {address}: DMA confined to IOMMU domain {id}"),
            None => {
                log::warn!("dsmil controller {address}: DMA goes untranslated (no IOMMU isolation)")
            }
        }
        let table = dma.allocate(DEVICE_TABLE_LEN)?;
        let data = dma.allocate(DEVICE_DATA_LEN)?;

        write(&regs, reg::IRQ_STATUS, 0)?;
        write(&regs, reg::CTRL, reg::CTRL_ENABLE | reg::CTRL_IRQ_ENABLE)?;
        let sequence = read(&regs, reg::COMPLETED)?;
        Ok(Self {
            address,
            regs,
            irq,
            completion,
            domain,
            dma,
            table,
            data,
            sequence,
            timeout_ms: config.command_timeout_ms,
            stats: ControllerStats::default(),
            _pci: pci,
        })
    }

    /// The function's address.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// The IOMMU domain iommud gave the function (`None`: no IOMMU).
    pub fn iommu_domain(&self) -> Option<u16> {
        self.domain
    }

    /// How completions are signalled (MSI-X, MSI or INTx).
    pub fn interrupt_mode(&self) -> IrqMode {
        self.irq.mode
    }

    /// The interrupt setup driver-sys arrived at, with every step it tried.
    pub fn interrupts(&self) -> &InterruptSetup {
        &self.irq
    }

    /// Whether an IOMMU translates (and so confines) the controller's DMA.
    pub fn dma_translated(&self) -> bool {
        self.dma.translates()
    }

    /// Bus address (IOVA) of the device-table buffer.
    pub fn table_buffer_iova(&self) -> u64 {
        self.table.iova()
    }

    /// Counters.
    pub fn stats(&self) -> ControllerStats {
        self.stats
    }

    /// Has the controller DMA the device table and decodes its 108 records.
    ///
    /// The quarantine list is this driver's, not the device's: the five
    /// quarantined tokens are reported quarantined (state `QUARANTINED`, access
    /// `NONE`) whatever the device claims.
    pub fn read_device_table(&mut self) -> Result<Vec<DeviceInfo>> {
        let count = read(&self.regs, reg::DEVICE_COUNT_REG)?;
        if usize::try_from(count).ok() != Some(DEVICE_COUNT) {
            log::error!("dsmil controller {}: reports {count} devices", self.address);
            return Err(Error::new(EIO));
        }
        let n = self.run(Command::ReadDeviceTable, 0, Buffer::Table)?;
        if n != DEVICE_TABLE_LEN {
            log::error!(
                "dsmil controller {}: device table of {n} bytes",
                self.address
            );
            return Err(Error::new(EIO));
        }
        let bytes = self.table.as_slice().get(..n).ok_or(Error::new(EIO))?;
        let mut devices = decode_device_list(bytes).map_err(|_| {
            log::error!("dsmil controller {}: malformed device table", self.address);
            Error::new(EIO)
        })?;
        for (i, d) in devices.iter_mut().enumerate() {
            let expected = Token::from_index(i)?;
            if d.device_id != expected.raw() {
                log::error!(
                    "dsmil controller {}: table entry {i} is token {:#06x}, not {:#06x}",
                    self.address,
                    d.device_id,
                    FIRST_TOKEN as usize + i
                );
                return Err(Error::new(EIO));
            }
            if expected.is_quarantined() {
                d.is_quarantined = true;
                d.state = DeviceState::Quarantined;
                d.access = DeviceAccess::None;
            }
        }
        Ok(devices)
    }

    /// Has the controller DMA `token`'s data block ([`DEVICE_DATA_LEN`] bytes).
    /// Quarantined tokens are refused with `EACCES` before the device is asked.
    pub fn read_device_data(&mut self, token: Token) -> Result<Vec<u8>> {
        if token.is_quarantined() {
            return Err(Error::new(EACCES));
        }
        let n = self.run(
            Command::ReadDeviceData,
            u32::from(token.raw()),
            Buffer::Data,
        )?;
        if n != DEVICE_DATA_LEN {
            log::error!(
                "dsmil controller {}: {n}-byte data block for {token}",
                self.address
            );
            return Err(Error::new(EIO));
        }
        self.data
            .as_slice()
            .get(..n)
            .map(<[u8]>::to_vec)
            .ok_or(Error::new(EIO))
    }

    /// One doorbell cycle; returns the bytes the device DMA'd (≤ the buffer).
    fn run(&mut self, command: Command, arg: u32, buffer: Buffer) -> Result<usize> {
        if read(&self.regs, reg::STATUS)? & reg::STATUS_BUSY != 0 {
            // Still working on a command that timed out: leave it alone.
            return Err(Error::new(EBUSY));
        }
        let buf = match buffer {
            Buffer::Table => &self.table,
            Buffer::Data => &self.data,
        };
        let (iova, len) = (buf.iova(), buf.len());
        let len32 = u32::try_from(len).map_err(|_| Error::new(EINVAL))?;
        self.sequence = match self.sequence.wrapping_add(1) {
            0 => 1,
            s => s,
        };
        let seq = self.sequence;
        let r = &self.regs;
        write(r, reg::DMA_ADDR_LO, iova as u32)?;
        write(r, reg::DMA_ADDR_HI, (iova >> 32) as u32)?;
        write(r, reg::DMA_LEN, len32)?;
        write(r, reg::ARG, arg)?;
        write(r, reg::COMMAND, command as u32)?;
        write(r, reg::IRQ_STATUS, 0)?;
        let deadline = self.completion.arm(self.timeout_ms)?;
        // The doorbell goes last: everything above must be in place when the
        // device looks.
        write(r, reg::DOORBELL, seq)?;
        self.stats.commands += 1;
        self.await_completion(seq, deadline)?;

        let status = read(&self.regs, reg::STATUS)?;
        if status & reg::STATUS_ERROR != 0 {
            self.stats.errors += 1;
            return Err(self.command_error(command, status));
        }
        if status & reg::STATUS_DONE == 0 {
            self.stats.errors += 1;
            log::error!(
                "dsmil controller {}: completion without DONE ({status:#x})",
                self.address
            );
            return Err(Error::new(EIO));
        }
        let n = usize::try_from(read(&self.regs, reg::XFER_LEN)?).map_err(|_| Error::new(EIO))?;
        if n > len {
            log::error!(
                "dsmil controller {}: claims {n} bytes DMA'd into a {len}-byte buffer",
                self.address
            );
            return Err(Error::new(EIO));
        }
        Ok(n)
    }

    fn await_completion(&mut self, seq: u32, deadline: Option<u64>) -> Result<()> {
        let Some(handle) = self.irq.handles.first() else {
            return Err(Error::new(EIO));
        };
        loop {
            let count = match self.completion.wait(handle, deadline) {
                Ok(c) => c,
                Err(e) => {
                    if e.errno == syscall::error::ETIMEDOUT {
                        self.stats.timeouts += 1;
                        log::warn!(
                            "dsmil controller {}: no completion of command {seq} within {} ms",
                            self.address,
                            self.timeout_ms
                        );
                    }
                    return Err(e);
                }
            };
            // A count that moved on meanwhile is not acknowledged (the kernel
            // ignores it); the next read returns the newer count, so nothing is lost.
            handle.ack(count)?;
            self.stats.interrupts += 1;
            if read(&self.regs, reg::COMPLETED)? == seq {
                write(&self.regs, reg::IRQ_STATUS, 0)?;
                return Ok(());
            }
            // A stale interrupt (a recycled vector, a shared INTx line): not ours.
            self.stats.stale_interrupts += 1;
        }
    }

    fn command_error(&self, command: Command, status: u32) -> Error {
        let code = ErrorCode::from_status(status);
        match code {
            Some(ErrorCode::DmaFault) => {
                let lo = read(&self.regs, reg::FAULT_ADDR_LO).unwrap_or(0);
                let hi = read(&self.regs, reg::FAULT_ADDR_HI).unwrap_or(0);
                let at = u64::from(lo) | (u64::from(hi) << 32);
                log::error!(
                    "dsmil controller {}: {command:?}: DMA blocked at bus address {at:#x}",
                    self.address
                );
            }
            other => log::error!(
                "dsmil controller {}: {command:?} failed: {other:?} (status {status:#x})",
                self.address
            ),
        }
        match code {
            Some(ErrorCode::BadCommand | ErrorCode::BadToken) => Error::new(EINVAL),
            _ => Error::new(EIO),
        }
    }
}

impl Drop for DsmilController {
    fn drop(&mut self) {
        // Quiesce the device before its buffers are unmapped and freed.
        let _ = write(&self.regs, reg::CTRL, 0);
        if let Some(id) = self.domain {
            let bdf = Bdf::from_requester_id(self.address.requester_id());
            if let Err(e) = IommuDomain::open(id).and_then(|d| d.unassign(bdf)) {
                log::warn!(
                    "dsmil controller {}: unassign from IOMMU domain: {e}",
                    self.address
                );
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Buffer {
    Table,
    Data,
}

fn read(regs: &MappedBar, offset: usize) -> Result<u32> {
    regs.read_u32(offset).map_err(|_| Error::new(EIO))
}

fn write(regs: &MappedBar, offset: usize, value: u32) -> Result<()> {
    regs.write_u32(offset, value).map_err(|_| Error::new(EIO))
}
