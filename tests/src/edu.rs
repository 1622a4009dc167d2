//! A small driver for QEMU's `edu` device (PCI 1234:11e8), written on driver-sys:
//! test equipment for the QEMU suite (`tests/qemu/`), not product.
//!
//! Register map (QEMU `docs/specs/edu.txt`, `hw/misc/edu.c`; `notes/iommu-hw.md` §C.3):
//! 0x00 id, 0x04 liveness (reads back the inverse), 0x80 DMA source, 0x88 DMA
//! destination, 0x90 count, 0x98 command (bit 0 start/busy, bit 1 direction:
//! 1 = device buffer → RAM). The device buffer is 4 KiB at device address
//! [`EDU_BUFFER`]; one side of every transfer lies in it, the other is a bus address
//! (an IOVA behind the IOMMU). A transfer runs 100 ms of virtual time after the
//! start write. QEMU 7.2 aborts on a transfer of 0 or 4096 bytes (an off-by-one in
//! its range check), so [`Edu`] refuses those with `EINVAL` before touching the
//! device. A transfer the IOMMU blocks completes silently: the data just does not
//! arrive.

use std::sync::Arc;
use std::time::{Duration, Instant};

use driver_sys::msi::Mmio;
use driver_sys::pci::{MappedBar, PciAddress, PciFunction, PcidError};
use iommu::Bdf;
use syscall::CallFlags;
use syscall::error::{EINVAL, EIO, ENODEV, ETIMEDOUT, Error, Result};

/// PCI vendor id of the edu device.
pub const EDU_VENDOR: u16 = 0x1234;
/// PCI device id of the edu device.
pub const EDU_DEVICE: u16 = 0x11e8;
/// Device address of edu's 4 KiB DMA buffer.
pub const EDU_BUFFER: u64 = 0x40000;
/// Largest transfer QEMU 7.2 accepts (its range check is off by one).
pub const MAX_TRANSFER: usize = 4095;
/// How long a transfer may take before the device counts as hung (the device
/// needs 100 ms of virtual time; TCG on a loaded host is slower).
pub const TRANSFER_TIMEOUT: Duration = Duration::from_secs(10);

const REG_ID: usize = 0x00;
const REG_LIVENESS: usize = 0x04;
const REG_DMA_SRC: usize = 0x80;
const REG_DMA_DST: usize = 0x88;
const REG_DMA_COUNT: usize = 0x90;
const REG_DMA_CMD: usize = 0x98;
const CMD_START: u64 = 1 << 0;
const CMD_TO_RAM: u64 = 1 << 1;

fn pcid(e: PcidError) -> Error {
    Error::new(e.errno())
}

/// One edu function, bound through pcid's channel.
pub struct Edu {
    function: PciFunction,
    bar: Arc<MappedBar>,
}

impl core::fmt::Debug for Edu {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Edu")
            .field("address", &self.function.address())
            .finish_non_exhaustive()
    }
}

impl Edu {
    /// Finds the first edu function on `/scheme/pci` and binds it. Candidates are
    /// identified by reading their ids through pcid's `access` file (as
    /// pcid-spawner matches drivers), so only edu's channel is opened — opening a
    /// channel enables bus mastering on the function, which other devices must
    /// not get as a side effect.
    pub fn find() -> Result<Self> {
        let listing = driver_sys::irq::listing::list_dir("/scheme/pci")?;
        let access = libredox::Fd::open(
            "/scheme/pci/access",
            libredox::flag::O_RDWR | libredox::flag::O_CLOEXEC,
            0,
        )
        .map_err(driver_sys::memory::errno)?;
        for addr in listing
            .iter()
            .filter_map(|n| PciAddress::parse_scheme_name(n))
        {
            let packed = (u64::from(addr.segment) << 28)
                | (u64::from(addr.bus) << 20)
                | (u64::from(addr.device) << 15)
                | (u64::from(addr.function) << 12);
            let mut id = [0u8; 4];
            libredox::call::call_ro(access.raw(), &mut id, CallFlags::empty(), &[1, packed])
                .map_err(driver_sys::memory::errno)?;
            let id = u32::from_le_bytes(id);
            if id as u16 == EDU_VENDOR && (id >> 16) as u16 == EDU_DEVICE {
                return Self::bind(PciFunction::connect(&addr).map_err(pcid)?);
            }
        }
        Err(Error::new(ENODEV))
    }

    /// Binds an already connected function.
    pub fn bind(mut function: PciFunction) -> Result<Self> {
        function.enable_device().map_err(pcid)?;
        let bar = function.map_bar(0).map_err(pcid)?;
        // The DMA registers end at 0xA0; edu's BAR0 is 1 MiB.
        if bar.size < 0x100 {
            return Err(Error::new(ENODEV));
        }
        let edu = Self { function, bar };
        if edu.read32(REG_ID)? >> 16 != 0x0100 {
            return Err(Error::new(ENODEV));
        }
        Ok(edu)
    }

    /// Its requester id, as the IOMMU sees it.
    pub fn bdf(&self) -> Bdf {
        let a = self.function.address();
        Bdf::from_requester_id(a.requester_id())
    }

    /// Its pcid channel fd: what a driver hands iommud's ASSIGN by channel (fd
    /// passing; the driver keeps its channel).
    pub fn channel_fd(&self) -> usize {
        self.function.channel_fd()
    }

    /// Its PCI address.
    pub fn address(&self) -> PciAddress {
        self.function.address()
    }

    fn read32(&self, off: usize) -> Result<u32> {
        self.bar.read_u32(off).map_err(|_| Error::new(EIO))
    }

    fn write32(&self, off: usize, v: u32) -> Result<()> {
        self.bar.write_u32(off, v).map_err(|_| Error::new(EIO))
    }

    /// The DMA registers take 8-byte accesses (bus addresses above 4 GiB need them:
    /// a 4-byte write sets the whole register to the 32-bit value).
    fn write64(&self, off: usize, v: u64) -> Result<()> {
        if !(REG_DMA_SRC..=REG_DMA_CMD).contains(&off) || !off.is_multiple_of(8) {
            return Err(Error::new(EINVAL));
        }
        // SAFETY: inside BAR0 (1 MiB; checked offset), 8-byte aligned, a device register.
        unsafe { self.bar.as_ptr().add(off).cast::<u64>().write_volatile(v) };
        Ok(())
    }

    fn read64(&self, off: usize) -> Result<u64> {
        if !(REG_DMA_SRC..=REG_DMA_CMD).contains(&off) || !off.is_multiple_of(8) {
            return Err(Error::new(EINVAL));
        }
        // SAFETY: as in write64.
        Ok(unsafe { self.bar.as_ptr().add(off).cast::<u64>().read_volatile() })
    }

    /// Writes `v` to the liveness register and checks the inverse comes back.
    pub fn alive(&self) -> Result<bool> {
        self.write32(REG_LIVENESS, 0x1234_5678)?;
        Ok(self.read32(REG_LIVENESS)? == !0x1234_5678)
    }

    fn transfer(&self, src: u64, dst: u64, len: usize, cmd: u64) -> Result<()> {
        if len == 0 || len > MAX_TRANSFER {
            return Err(Error::new(EINVAL));
        }
        self.wait_idle()?;
        self.write64(REG_DMA_SRC, src)?;
        self.write64(REG_DMA_DST, dst)?;
        self.write64(REG_DMA_COUNT, len as u64)?;
        self.write64(REG_DMA_CMD, cmd | CMD_START)?;
        self.wait_idle()
    }

    /// Polls until no transfer runs (the device's own completion bit).
    fn wait_idle(&self) -> Result<()> {
        let deadline = Instant::now() + TRANSFER_TIMEOUT;
        while self.read64(REG_DMA_CMD)? & CMD_START != 0 {
            if Instant::now() > deadline {
                return Err(Error::new(ETIMEDOUT));
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        Ok(())
    }

    /// DMA `len` bytes from bus address `bus` into the device buffer (offset 0).
    pub fn read_from_bus(&self, bus: u64, len: usize) -> Result<()> {
        self.transfer(bus, EDU_BUFFER, len, 0)
    }

    /// DMA `len` bytes of the device buffer (offset 0) to bus address `bus`.
    pub fn write_to_bus(&self, bus: u64, len: usize) -> Result<()> {
        self.transfer(EDU_BUFFER, bus, len, CMD_TO_RAM)
    }
}
