//! A driver's handle on its PCI function: upstream `pcid`'s channel.
//!
//! [`PciFunction`] speaks the [`pcid_wire`](super::pcid_wire) protocol over the
//! channel fd exactly as upstream `pcid_interface` does (base
//! `drivers/pcid/src/driver_interface/mod.rs`): one request per `write`, the bare
//! bincode bytes with no length prefix; the answer read back as an 8-byte
//! little-endian length and that many bytes of bincode. It implements
//! [`ConfigSpace`] with `ReadConfig`/`WriteConfig` (dword accesses, as pcid does
//! them), maps memory BARs by `mmap` on the channel (pcid after base `e9fd66c7`:
//! BAR index in offset bits 63–61, memory type in bits 60–59), and walks the
//! capability list.

use std::sync::Arc;

use libredox::{Fd, flag};
use syscall::error::{EBADMSG, EINVAL, EIO, ENODEV, ENOENT, Error};

use super::capability::{Capability, capabilities};
use super::config::{ConfigError, ConfigSpace, check_access};
use super::pcid_wire::{
    self, MAX_MESSAGE_BYTES, PciAddress, PciFeature, PciFeatureInfo, PcidBar, PcidClientRequest,
    PcidClientResponse, PcidFunctionInfo, RESPONSE_LENGTH_BYTES, SetFeatureInfo,
    SubdriverArguments, VendorSpecificCapability,
};
use crate::memory::{Mapping, MemoryType, errno, page_round};
use crate::msi::mmio::{Mmio, MmioError};
use crate::quirks::PciIdentity;

/// Environment variable through which `pcid-spawner` hands over the channel fd.
pub const PCID_CLIENT_CHANNEL: &str = "PCID_CLIENT_CHANNEL";

/// Why talking to pcid failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PcidError {
    /// The channel or a mapping failed with this errno.
    Io(Error),
    /// A message did not encode or decode.
    Wire(pcid_wire::WireError),
    /// pcid answered something other than what the request calls for.
    UnexpectedResponse(String),
    /// `PCID_CLIENT_CHANNEL` is missing or not a number.
    NoChannel,
    /// BAR `n` is not a memory BAR.
    NotMemoryBar(u8),
}

impl PcidError {
    /// The errno to report.
    pub fn errno(&self) -> i32 {
        match self {
            Self::Io(e) => e.errno,
            Self::Wire(_) | Self::UnexpectedResponse(_) => EBADMSG,
            Self::NoChannel => ENOENT,
            Self::NotMemoryBar(_) => ENODEV,
        }
    }
}

impl core::fmt::Display for PcidError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Io(e) => write!(f, "pcid channel: {e}"),
            Self::Wire(e) => write!(f, "{e}"),
            Self::UnexpectedResponse(r) => write!(f, "unexpected pcid response {r}"),
            Self::NoChannel => write!(f, "{PCID_CLIENT_CHANNEL} is not set to an fd"),
            Self::NotMemoryBar(n) => write!(f, "BAR {n} is not a memory BAR"),
        }
    }
}

impl std::error::Error for PcidError {}

impl From<Error> for PcidError {
    fn from(e: Error) -> Self {
        Self::Io(e)
    }
}

impl From<pcid_wire::WireError> for PcidError {
    fn from(e: pcid_wire::WireError) -> Self {
        Self::Wire(e)
    }
}

fn unexpected(r: PcidClientResponse) -> PcidError {
    PcidError::UnexpectedResponse(format!("{r:?}"))
}

/// A memory BAR mapped uncacheable; dword accesses are volatile and bounds-checked.
#[derive(Debug)]
pub struct MappedBar {
    mapping: Mapping,
    /// Physical (bus) address of the BAR.
    pub phys: u64,
    /// Size of the BAR in bytes.
    pub size: u64,
}

impl MappedBar {
    /// First byte of the mapping.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    fn check(&self, offset: usize) -> Result<(), MmioError> {
        if !offset.is_multiple_of(4) {
            return Err(MmioError::Misaligned { offset });
        }
        if offset
            .checked_add(4)
            .is_none_or(|end| end as u64 > self.size)
        {
            return Err(MmioError::OutOfRange { offset });
        }
        Ok(())
    }
}

impl Mmio for MappedBar {
    fn read_u32(&self, offset: usize) -> Result<u32, MmioError> {
        self.check(offset)?;
        // SAFETY: in bounds of the mapping (checked) and 4-byte aligned (the mapping
        // is page aligned); device registers need a volatile access.
        Ok(u32::from_le(unsafe {
            self.mapping
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .read_volatile()
        }))
    }

    fn write_u32(&self, offset: usize, value: u32) -> Result<(), MmioError> {
        self.check(offset)?;
        // SAFETY: as in read_u32.
        unsafe {
            self.mapping
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value.to_le())
        };
        Ok(())
    }
}

/// A connection to pcid for one function.
pub struct PciFunction {
    channel: Fd,
    info: PcidFunctionInfo,
    bars: [Option<Arc<MappedBar>>; 6],
}

impl core::fmt::Debug for PciFunction {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("PciFunction")
            .field("addr", &self.info.addr)
            .field("channel", &self.channel.raw())
            .finish()
    }
}

impl PciFunction {
    /// Connects through the fd `pcid-spawner` passed in [`PCID_CLIENT_CHANNEL`].
    pub fn connect_default() -> Result<Self, PcidError> {
        let fd: usize = std::env::var(PCID_CLIENT_CHANNEL)
            .ok()
            .and_then(|v| v.trim().parse().ok())
            .ok_or(PcidError::NoChannel)?;
        Self::from_channel_fd(fd)
    }

    /// Opens `/scheme/pci/<addr>/channel` (for drivers started by hand).
    pub fn connect(addr: &PciAddress) -> Result<Self, PcidError> {
        Self::connect_by_path(&format!("/scheme/pci/{}", addr.scheme_name()))
    }

    /// Opens `<device_dir>/channel`.
    pub fn connect_by_path(device_dir: &str) -> Result<Self, PcidError> {
        let path = format!("{}/channel", device_dir.trim_end_matches('/'));
        let fd = Fd::open(&path, flag::O_RDWR | flag::O_CLOEXEC, 0).map_err(errno)?;
        Self::from_channel(fd)
    }

    /// Takes over an already open channel fd.
    pub fn from_channel_fd(fd: usize) -> Result<Self, PcidError> {
        Self::from_channel(Fd::new(fd))
    }

    fn from_channel(channel: Fd) -> Result<Self, PcidError> {
        let mut f = Self {
            channel,
            info: placeholder_info(),
            bars: Default::default(),
        };
        match f.request(&PcidClientRequest::RequestConfig)? {
            PcidClientResponse::Config(SubdriverArguments { func }) => f.info = func,
            other => return Err(unexpected(other)),
        }
        Ok(f)
    }

    /// The raw channel fd.
    pub fn channel_fd(&self) -> usize {
        self.channel.raw()
    }

    /// What pcid said about the function.
    pub fn info(&self) -> &PcidFunctionInfo {
        &self.info
    }

    /// Its address.
    pub fn address(&self) -> PciAddress {
        self.info.addr
    }

    /// Vendor/device/class, for quirk lookup.
    pub fn identity(&self) -> PciIdentity {
        let id = &self.info.full_device_id;
        PciIdentity {
            vendor: id.vendor_id,
            device: id.device_id,
            class: id.class_code(),
        }
    }

    /// Sends one request and reads its answer.
    pub fn request(&mut self, req: &PcidClientRequest) -> Result<PcidClientResponse, PcidError> {
        let bytes = pcid_wire::encode(req)?;
        let n = self.channel.write(&bytes).map_err(errno)?;
        if n != bytes.len() {
            return Err(PcidError::Io(Error::new(EIO)));
        }
        let mut len = [0u8; RESPONSE_LENGTH_BYTES];
        self.read_exact(&mut len)?;
        let len = u64::from_le_bytes(len);
        if len > MAX_MESSAGE_BYTES {
            return Err(PcidError::Io(Error::new(EBADMSG)));
        }
        let mut body = vec![0u8; len as usize];
        self.read_exact(&mut body)?;
        Ok(pcid_wire::decode(&body)?)
    }

    fn read_exact(&self, mut buf: &mut [u8]) -> Result<(), PcidError> {
        while !buf.is_empty() {
            let n = self.channel.read(buf).map_err(errno)?;
            if n == 0 {
                return Err(PcidError::Io(Error::new(EIO)));
            }
            buf = buf.get_mut(n..).unwrap_or_default();
        }
        Ok(())
    }

    /// Enables decoding and bus mastering.
    pub fn enable_device(&mut self) -> Result<(), PcidError> {
        match self.request(&PcidClientRequest::EnableDevice)? {
            PcidClientResponse::EnabledDevice => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// MSI / MSI-X, as pcid found them.
    pub fn features(&mut self) -> Result<Vec<PciFeature>, PcidError> {
        match self.request(&PcidClientRequest::RequestFeatures)? {
            PcidClientResponse::AllFeatures(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// pcid's description of a feature.
    pub fn feature_info(&mut self, feature: PciFeature) -> Result<PciFeatureInfo, PcidError> {
        match self.request(&PcidClientRequest::FeatureInfo(feature))? {
            PcidClientResponse::FeatureInfo(f, info) if f == feature => Ok(info),
            other => Err(unexpected(other)),
        }
    }

    /// Asks pcid to turn a feature on.
    pub fn enable_feature(&mut self, feature: PciFeature) -> Result<(), PcidError> {
        match self.request(&PcidClientRequest::EnableFeature(feature))? {
            PcidClientResponse::FeatureEnabled(f) if f == feature => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Asks pcid to program a feature.
    pub fn set_feature_info(&mut self, info: SetFeatureInfo) -> Result<(), PcidError> {
        match self.request(&PcidClientRequest::SetFeatureInfo(info))? {
            PcidClientResponse::SetFeatureInfo(_) => Ok(()),
            other => Err(unexpected(other)),
        }
    }

    /// Vendor-specific capabilities.
    pub fn vendor_capabilities(&mut self) -> Result<Vec<VendorSpecificCapability>, PcidError> {
        match self.request(&PcidClientRequest::RequestVendorCapabilities)? {
            PcidClientResponse::VendorCapabilities(v) => Ok(v),
            other => Err(unexpected(other)),
        }
    }

    /// BAR `index` as pcid sized it.
    pub fn bar(&self, index: u8) -> Option<PcidBar> {
        self.info.bars.get(usize::from(index)).copied()
    }

    /// Sizes of the memory BARs (what [`crate::msi::MsixCapability::validate_bars`] takes).
    pub fn bar_sizes(&self) -> [Option<u64>; 6] {
        self.info.bars.map(|b| b.memory().map(|(_, size)| size))
    }

    /// Maps memory BAR `index` uncacheable by `mmap` on the channel (once; later
    /// calls share the mapping).
    pub fn map_bar(&mut self, index: u8) -> Result<Arc<MappedBar>, PcidError> {
        let slot = self
            .bars
            .get_mut(usize::from(index))
            .ok_or(PcidError::NotMemoryBar(index))?;
        if let Some(m) = slot {
            return Ok(m.clone());
        }
        let (phys, size) = self
            .info
            .bars
            .get(usize::from(index))
            .and_then(PcidBar::memory)
            .filter(|&(_, size)| size > 0)
            .ok_or(PcidError::NotMemoryBar(index))?;
        let len = usize::try_from(size).map_err(|_| PcidError::Io(Error::new(EINVAL)))?;
        let offset = bar_mmap_offset(index, MemoryType::Uncacheable, 0)
            .ok_or(PcidError::NotMemoryBar(index))?;
        let mapping = Mapping::map(self.channel.raw(), page_round(len)?, offset, true)?;
        let bar = Arc::new(MappedBar {
            mapping,
            phys,
            size,
        });
        *slot = Some(bar.clone());
        Ok(bar)
    }

    /// The standard capability list.
    pub fn capabilities(&mut self) -> Result<Vec<Capability>, PcidError> {
        capabilities(self).map_err(|e| PcidError::UnexpectedResponse(e.to_string()))
    }
}

/// The mmap offset that selects BAR `index` on a pcid channel: BAR index in bits
/// 63–61, memory type in bits 60–59 (00 write-back, 01 uncacheable, 10
/// write-combining), the offset into the BAR below (base `drivers/pcid`, `e9fd66c7`).
/// `None` for an index above 5 or an offset that does not fit 59 bits.
pub fn bar_mmap_offset(index: u8, ty: MemoryType, offset: u64) -> Option<u64> {
    if index > 5 || offset >> 59 != 0 {
        return None;
    }
    let ty: u64 = match ty {
        MemoryType::WriteBack => 0b00,
        MemoryType::Uncacheable => 0b01,
        MemoryType::WriteCombining => 0b10,
    };
    Some((u64::from(index) << 61) | (ty << 59) | offset)
}

fn placeholder_info() -> PcidFunctionInfo {
    PcidFunctionInfo {
        addr: PciAddress::new(0, 0, 0),
        bars: [PcidBar::None; 6],
        rom: None,
        legacy_interrupt_line: None,
        full_device_id: pcid_wire::FullDeviceId {
            vendor_id: 0xFFFF,
            device_id: 0xFFFF,
            class: 0,
            subclass: 0,
            interface: 0,
            revision: 0,
        },
    }
}

impl ConfigSpace for PciFunction {
    fn read_u32(&mut self, offset: u16) -> Result<u32, ConfigError> {
        check_access(offset, 4)?;
        match self.request(&PcidClientRequest::ReadConfig(offset)) {
            Ok(PcidClientResponse::ReadConfig(v)) => Ok(v),
            Ok(_) => Err(ConfigError::Io(Error::new(EBADMSG))),
            Err(e) => Err(ConfigError::Io(Error::new(e.errno()))),
        }
    }

    fn write_u32(&mut self, offset: u16, value: u32) -> Result<(), ConfigError> {
        check_access(offset, 4)?;
        match self.request(&PcidClientRequest::WriteConfig(offset, value)) {
            Ok(PcidClientResponse::WriteConfig) => Ok(()),
            Ok(_) => Err(ConfigError::Io(Error::new(EBADMSG))),
            Err(e) => Err(ConfigError::Io(Error::new(e.errno()))),
        }
    }
}
