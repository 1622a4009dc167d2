//! The messages of upstream Redox `pcid`'s per-function channel.
//!
//! A driver started by `pcid-spawner` gets an fd of `/scheme/pci/<addr>/channel`
//! (number in the `PCID_CLIENT_CHANNEL` environment variable); a driver started by
//! hand opens that path itself. On the channel the client writes one request per
//! `write` — the bare bincode encoding — and reads the answer as an 8-byte
//! little-endian length followed by that many bytes of bincode.
//!
//! The encoding is serde + bincode 1.x with its default (`bincode::serialize`)
//! configuration: fixed-width little-endian integers, enum variants as a `u32`
//! index, `Option` as a one-byte tag, sequences with a `u64` length, `usize` as
//! `u64`. bincode carries no field names, so what must match upstream is the
//! *order* of variants and fields below; the Rust names are ours. Every type
//! mirrors the one of the same role in upstream `pcid_interface`.

use serde::{Deserialize, Serialize, de::DeserializeOwned};

use bincode::Options;

/// Upstream refuses responses above 1 MiB; so do we, in both directions.
pub const MAX_MESSAGE_BYTES: u64 = 0x10_0000;

/// Length prefix of a response.
pub const RESPONSE_LENGTH_BYTES: usize = 8;

/// A PCI function address: segment, bus, device (0..32), function (0..8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PciAddress {
    /// PCI segment group.
    pub segment: u16,
    /// Bus.
    pub bus: u8,
    /// Device (slot).
    pub device: u8,
    /// Function.
    pub function: u8,
}

impl PciAddress {
    /// An address in segment 0.
    pub const fn new(bus: u8, device: u8, function: u8) -> Self {
        Self {
            segment: 0,
            bus,
            device,
            function,
        }
    }

    /// The name `pcid` gives the function in its scheme: `ssss--bb--dd.f` in hex
    /// (`:` is not allowed in scheme paths, so upstream writes `--`).
    pub fn scheme_name(&self) -> String {
        format!(
            "{:04x}--{:02x}--{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }

    /// Parses [`PciAddress::scheme_name`]'s format; device and function ranges
    /// are checked.
    pub fn parse_scheme_name(s: &str) -> Option<Self> {
        let (segment, rest) = s.split_once("--")?;
        let (bus, rest) = rest.split_once("--")?;
        let (device, function) = rest.split_once('.')?;
        let addr = Self {
            segment: u16::from_str_radix(segment, 16).ok()?,
            bus: u8::from_str_radix(bus, 16).ok()?,
            device: u8::from_str_radix(device, 16).ok()?,
            function: u8::from_str_radix(function, 16).ok()?,
        };
        (addr.device < 32 && addr.function < 8).then_some(addr)
    }

    /// The 16-bit requester id an IOMMU sees (bus << 8 | device << 3 | function).
    pub fn requester_id(&self) -> u16 {
        (u16::from(self.bus) << 8)
            | (u16::from(self.device & 0x1F) << 3)
            | u16::from(self.function & 7)
    }
}

impl core::fmt::Display for PciAddress {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.segment, self.bus, self.device, self.function
        )
    }
}

/// A BAR as `pcid` reports it (already sized; upstream `PciBar`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PcidBar {
    /// Not implemented.
    None,
    /// 32-bit memory BAR.
    Memory32 {
        /// Base address.
        addr: u32,
        /// Size in bytes.
        size: u32,
    },
    /// 64-bit memory BAR.
    Memory64 {
        /// Base address.
        addr: u64,
        /// Size in bytes.
        size: u64,
    },
    /// I/O port BAR.
    Port(u16),
}

impl PcidBar {
    /// Base and size of a memory BAR.
    pub fn memory(&self) -> Option<(u64, u64)> {
        match *self {
            Self::Memory32 { addr, size } => Some((u64::from(addr), u64::from(size))),
            Self::Memory64 { addr, size } => Some((addr, size)),
            Self::None | Self::Port(_) => None,
        }
    }
}

/// The legacy INTx line pcid routed (`irq` is the `/scheme/irq/<n>` number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegacyInterruptLine {
    /// IRQ number.
    pub irq: u8,
    /// Device-tree interrupt (phandle, cells, cell count); `None` on x86.
    pub phandled: Option<(u32, [u32; 3], u64)>,
}

/// Everything identifying a function (upstream `FullDeviceId`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FullDeviceId {
    /// Vendor id.
    pub vendor_id: u16,
    /// Device id.
    pub device_id: u16,
    /// Base class.
    pub class: u8,
    /// Subclass.
    pub subclass: u8,
    /// Programming interface.
    pub interface: u8,
    /// Revision.
    pub revision: u8,
}

impl FullDeviceId {
    /// The 24-bit class code quirk tables match on.
    pub fn class_code(&self) -> u32 {
        (u32::from(self.class) << 16) | (u32::from(self.subclass) << 8) | u32::from(self.interface)
    }
}

/// The expansion ROM BAR as pcid sized it (upstream `PciRom`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciRom {
    /// Base address (bits 31:11 of the ROM BAR).
    pub addr: u32,
    /// Size in bytes.
    pub size: u32,
    /// The ROM address decoder is on.
    pub enabled: bool,
}

/// The function description `pcid` sends on connect (upstream `PciFunction`, base
/// `drivers/pcid/src/driver_interface/mod.rs`: address, BARs, ROM, INTx line, ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PcidFunctionInfo {
    /// Address.
    pub addr: PciAddress,
    /// The six BARs.
    pub bars: [PcidBar; 6],
    /// The expansion ROM, if the function has one.
    pub rom: Option<PciRom>,
    /// The INTx line, if the function has one.
    pub legacy_interrupt_line: Option<LegacyInterruptLine>,
    /// Identity.
    pub full_device_id: FullDeviceId,
}

/// Upstream `SubdriverArguments`: the answer to `RequestConfig`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubdriverArguments {
    /// The function.
    pub func: PcidFunctionInfo,
}

/// Interrupt features pcid knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum PciFeature {
    /// MSI.
    Msi,
    /// MSI-X.
    MsiX,
}

/// Whether a feature is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum FeatureStatus {
    /// On.
    Enabled,
    /// Off.
    Disabled,
}

/// An MSI message as pcid takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MsiAddrAndData {
    /// Message address.
    pub addr: u64,
    /// Message data.
    pub data: u32,
}

/// The MSI capability as pcid describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsiInfo {
    /// Multiple Message Capable field.
    pub log2_multiple_message_capable: u8,
    /// 64-bit address.
    pub is_64bit: bool,
    /// Mask and pending registers exist.
    pub has_per_vector_masking: bool,
}

/// The MSI-X capability as pcid describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MsixInfo {
    /// BAR of the table.
    pub table_bar: u8,
    /// Offset of the table in it.
    pub table_offset: u32,
    /// Entries.
    pub table_size: u16,
    /// BAR of the PBA.
    pub pba_bar: u8,
    /// Offset of the PBA in it.
    pub pba_offset: u32,
}

/// Answer to `FeatureInfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PciFeatureInfo {
    /// MSI.
    Msi(MsiInfo),
    /// MSI-X.
    MsiX(MsixInfo),
}

/// MSI registers pcid writes on the driver's behalf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct MsiSetFeatureInfo {
    /// Multiple Message Enable (log2 of the vectors).
    pub multi_message_enable: Option<u8>,
    /// Address and data.
    pub message_address_and_data: Option<MsiAddrAndData>,
    /// Per-vector mask bits.
    pub mask_bits: Option<u32>,
}

/// Answer-less settings (`SetFeatureInfo`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SetFeatureInfo {
    /// MSI registers.
    Msi(MsiSetFeatureInfo),
    /// MSI-X function mask.
    MsiX {
        /// Set or clear the function mask.
        function_mask: Option<bool>,
    },
}

/// A vendor-specific capability's bytes after its 3-byte header.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorSpecificCapability {
    /// Payload.
    pub data: Vec<u8>,
}

/// Requests, in upstream's variant order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PcidClientRequest {
    /// Enable memory/IO decoding and bus mastering.
    EnableDevice,
    /// The [`SubdriverArguments`].
    RequestConfig,
    /// Which of MSI / MSI-X the function has.
    RequestFeatures,
    /// Vendor-specific capabilities.
    RequestVendorCapabilities,
    /// Turn a feature on.
    EnableFeature(PciFeature),
    /// Describe a feature.
    FeatureInfo(PciFeature),
    /// Program a feature.
    SetFeatureInfo(SetFeatureInfo),
    /// Read the config dword at an offset.
    ReadConfig(u16),
    /// Write a config dword.
    WriteConfig(u16, u32),
}

/// Errors pcid answers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PcidServerResponseError {
    /// The function lacks that feature.
    NonexistentFeature(PciFeature),
    /// A value had reserved bits set.
    InvalidBitPattern,
}

/// Responses, in upstream's variant order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PcidClientResponse {
    /// `EnableDevice` done.
    EnabledDevice,
    /// `RequestConfig`.
    Config(SubdriverArguments),
    /// `RequestFeatures`.
    AllFeatures(Vec<PciFeature>),
    /// `RequestVendorCapabilities`.
    VendorCapabilities(Vec<VendorSpecificCapability>),
    /// `EnableFeature` done.
    FeatureEnabled(PciFeature),
    /// A feature's state.
    FeatureStatus(PciFeature, FeatureStatus),
    /// The request failed.
    Error(PcidServerResponseError),
    /// `FeatureInfo`.
    FeatureInfo(PciFeature, PciFeatureInfo),
    /// `SetFeatureInfo` done.
    SetFeatureInfo(PciFeature),
    /// `ReadConfig`.
    ReadConfig(u32),
    /// `WriteConfig` done.
    WriteConfig,
}

/// A message could not be encoded or decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireError(pub String);

impl core::fmt::Display for WireError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "pcid message: {}", self.0)
    }
}

impl std::error::Error for WireError {}

/// bincode's `serialize`/`deserialize_from` configuration, plus a size limit so a
/// hostile length prefix cannot make us allocate.
fn options() -> impl Options {
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .allow_trailing_bytes()
        .with_limit(MAX_MESSAGE_BYTES)
}

/// The bincode bytes of a message.
pub fn encode<T: Serialize>(message: &T) -> Result<Vec<u8>, WireError> {
    options()
        .serialize(message)
        .map_err(|e| WireError(e.to_string()))
}

/// Decodes a message from bincode bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, WireError> {
    options()
        .deserialize(bytes)
        .map_err(|e| WireError(e.to_string()))
}

/// A response as it travels: 8-byte little-endian length, then the bincode bytes.
pub fn frame_response(response: &PcidClientResponse) -> Result<Vec<u8>, WireError> {
    let body = encode(response)?;
    let mut out = Vec::with_capacity(RESPONSE_LENGTH_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u64).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_encodings_match_bincode_1_defaults() {
        // Variant index as u32 LE, then the fields.
        assert_eq!(
            encode(&PcidClientRequest::ReadConfig(0x10)).ok(),
            Some(vec![7, 0, 0, 0, 0x10, 0])
        );
        assert_eq!(
            encode(&PcidClientRequest::WriteConfig(4, 0xAABB_CCDD)).ok(),
            Some(vec![8, 0, 0, 0, 4, 0, 0xDD, 0xCC, 0xBB, 0xAA])
        );
        assert_eq!(
            encode(&PcidClientRequest::RequestConfig).ok(),
            Some(vec![1, 0, 0, 0])
        );
        // Option: one tag byte; Vec: u64 length.
        let set = PcidClientRequest::SetFeatureInfo(SetFeatureInfo::MsiX {
            function_mask: Some(true),
        });
        assert_eq!(encode(&set).ok(), Some(vec![6, 0, 0, 0, 1, 0, 0, 0, 1, 1]));
        let feats = PcidClientResponse::AllFeatures(vec![PciFeature::MsiX]);
        assert_eq!(
            encode(&feats).ok(),
            Some(vec![2, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
        );
    }

    #[test]
    fn config_round_trips_and_frames() {
        let info = SubdriverArguments {
            func: PcidFunctionInfo {
                addr: PciAddress::new(0, 0x1f, 3),
                bars: [
                    PcidBar::Memory64 {
                        addr: 0xFE00_0000,
                        size: 0x4000,
                    },
                    PcidBar::None,
                    PcidBar::Memory32 {
                        addr: 0xFD00_0000,
                        size: 0x1000,
                    },
                    PcidBar::Port(0xE000),
                    PcidBar::None,
                    PcidBar::None,
                ],
                rom: None,
                legacy_interrupt_line: Some(LegacyInterruptLine {
                    irq: 11,
                    phandled: None,
                }),
                full_device_id: FullDeviceId {
                    vendor_id: 0x1028,
                    device_id: 0xD511,
                    class: 0x08,
                    subclass: 0x80,
                    interface: 0,
                    revision: 1,
                },
            },
        };
        let resp = PcidClientResponse::Config(info);
        let framed = frame_response(&resp).expect("frame");
        let len = u64::from_le_bytes(framed[..8].try_into().expect("8 bytes"));
        assert_eq!(len as usize, framed.len() - 8);
        assert_eq!(decode::<PcidClientResponse>(&framed[8..]), Ok(resp));
    }

    #[test]
    fn hostile_bytes_are_errors_not_allocations() {
        // VendorCapabilities with a 2^62 element count.
        let mut evil = vec![3, 0, 0, 0];
        evil.extend_from_slice(&(1u64 << 62).to_le_bytes());
        assert!(decode::<PcidClientResponse>(&evil).is_err());
        assert!(decode::<PcidClientRequest>(&[99, 0, 0, 0]).is_err());
        assert!(decode::<PcidClientRequest>(&[7, 0]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_and_accepted_ones_round_trip(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..128)
        ) {
            if let Ok(req) = decode::<PcidClientRequest>(&bytes) {
                let again = encode(&req).expect("encode");
                proptest::prop_assert_eq!(decode::<PcidClientRequest>(&again).ok(), Some(req));
            }
            if let Ok(resp) = decode::<PcidClientResponse>(&bytes) {
                let again = encode(&resp).expect("encode");
                proptest::prop_assert_eq!(decode::<PcidClientResponse>(&again).ok(), Some(resp));
            }
        }
    }

    #[test]
    fn scheme_names() {
        let a = PciAddress::new(0x3a, 0x1f, 3);
        assert_eq!(a.scheme_name(), "0000--3a--1f.3");
        assert_eq!(PciAddress::parse_scheme_name("0000--3a--1f.3"), Some(a));
        assert_eq!(PciAddress::parse_scheme_name("0000--3a--20.0"), None);
        assert_eq!(PciAddress::parse_scheme_name("0000:3a:1f.3"), None);
        assert_eq!(a.requester_id(), 0x3a_fb);
    }
}
