//! Base Address Register decoding and sizing.
//!
//! A BAR's low bits say what it is: bit 0 set = I/O space; otherwise bits 2:1
//! give the memory type (00 32-bit, 10 64-bit, using the next BAR as the high
//! half) and bit 3 prefetchable. The size comes from the classic probe: write
//! all-ones, read back, the device leaves the bits it does not decode as zero,
//! and the size is the two's complement of the address mask. Decoding is a
//! pure function of (original, probed) values so it is testable without a
//! device; [`read_bars`] runs the probe through a [`ConfigSpace`].

use super::config::{ConfigError, ConfigSpace, REG_COMMAND};

/// Offset of BAR 0.
pub const REG_BAR0: u16 = 0x10;
/// Offset of the header-type byte.
pub const REG_HEADER_TYPE: u16 = 0x0E;
/// Command bits 0 (I/O decode) and 1 (memory decode).
const COMMAND_DECODE: u16 = 0b11;

/// What address space a BAR decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarKind {
    /// Memory below 4 GiB (also the legacy "below 1 MiB" type).
    Memory32,
    /// Memory anywhere, spanning this BAR and the next.
    Memory64,
    /// I/O ports.
    Io,
}

/// One decoded, sized BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bar {
    /// BAR index 0..=5 (the low half for a 64-bit BAR).
    pub index: u8,
    /// Address space.
    pub kind: BarKind,
    /// Base address (bus address as programmed by firmware).
    pub address: u64,
    /// Size in bytes, a power of two.
    pub size: u64,
    /// Memory reads have no side effects and may be prefetched/combined.
    pub prefetchable: bool,
}

/// Why BARs could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BarError {
    /// Configuration-space access failed.
    Config(ConfigError),
    /// Memory type 11b is reserved.
    ReservedMemoryType {
        /// BAR index.
        index: u8,
    },
    /// A 64-bit BAR in the last slot has no high half.
    MissingUpperHalf {
        /// BAR index.
        index: u8,
    },
    /// The probed mask is not contiguous ones followed by zeros, so no power-of-two size.
    BadSizeMask {
        /// BAR index.
        index: u8,
        /// The probed address mask.
        mask: u64,
    },
    /// Header type is neither 0 (endpoint) nor 1 (bridge).
    UnknownHeaderType(u8),
}

impl From<ConfigError> for BarError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl core::fmt::Display for BarError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "BAR: {e}"),
            Self::ReservedMemoryType { index } => write!(f, "BAR{index}: reserved memory type"),
            Self::MissingUpperHalf { index } => {
                write!(f, "BAR{index}: 64-bit BAR in the last slot")
            }
            Self::BadSizeMask { index, mask } => write!(f, "BAR{index}: bad size mask {mask:#x}"),
            Self::UnknownHeaderType(t) => write!(f, "unknown header type {t:#x}"),
        }
    }
}

impl std::error::Error for BarError {}

/// The BAR kind encoded in a register's low bits.
pub fn bar_kind(index: u8, raw: u32) -> Result<BarKind, BarError> {
    if raw & 1 == 1 {
        return Ok(BarKind::Io);
    }
    match (raw >> 1) & 0b11 {
        0b00 | 0b01 => Ok(BarKind::Memory32),
        0b10 => Ok(BarKind::Memory64),
        _ => Err(BarError::ReservedMemoryType { index }),
    }
}

fn size_from_mask(index: u8, mask: u64) -> Result<u64, BarError> {
    // The mask must be ones from some bit upward: adding its lowest set bit
    // must carry all the way out.
    let lowest = mask & mask.wrapping_neg();
    if mask.wrapping_add(lowest) != 0 {
        return Err(BarError::BadSizeMask { index, mask });
    }
    Ok(lowest)
}

/// Decodes one BAR from its original value(s) and the value(s) read back after
/// writing all-ones. `high` is `(original, probed)` of the next register and
/// is only used for a 64-bit BAR. Returns `None` for an unimplemented BAR
/// (probe reads back zero address bits).
pub fn decode_bar(
    index: u8,
    original: u32,
    probed: u32,
    high: Option<(u32, u32)>,
) -> Result<Option<Bar>, BarError> {
    let kind = bar_kind(index, original)?;
    let (address, mask) = match kind {
        BarKind::Io => {
            let mut mask = u64::from(probed & !0x3);
            // Devices that decode only 16 I/O address bits may return zeros in
            // the upper half; treat those bits as decoded.
            if mask != 0 && mask & 0xFFFF_0000 == 0 {
                mask |= 0xFFFF_0000;
            }
            let mask = if mask == 0 {
                0
            } else {
                mask | 0xFFFF_FFFF_0000_0000
            };
            (u64::from(original & !0x3), mask)
        }
        BarKind::Memory32 => {
            let mask = u64::from(probed & !0xF);
            let mask = if mask == 0 {
                0
            } else {
                mask | 0xFFFF_FFFF_0000_0000
            };
            (u64::from(original & !0xF), mask)
        }
        BarKind::Memory64 => {
            let (orig_hi, probed_hi) = high.ok_or(BarError::MissingUpperHalf { index })?;
            (
                u64::from(original & !0xF) | (u64::from(orig_hi) << 32),
                u64::from(probed & !0xF) | (u64::from(probed_hi) << 32),
            )
        }
    };
    if mask == 0 {
        return Ok(None);
    }
    let size = size_from_mask(index, mask)?;
    Ok(Some(Bar {
        index,
        kind,
        address,
        size,
        prefetchable: kind != BarKind::Io && original & 0x8 != 0,
    }))
}

fn probe<C: ConfigSpace + ?Sized>(cfg: &mut C, offset: u16) -> Result<(u32, u32), ConfigError> {
    let original = cfg.read_u32(offset)?;
    cfg.write_u32(offset, 0xFFFF_FFFF)?;
    let probed = cfg.read_u32(offset)?;
    cfg.write_u32(offset, original)?;
    Ok((original, probed))
}

/// Decodes and sizes every BAR of the function: six for an endpoint (header
/// type 0), two for a bridge (type 1). The slot holding the high half of a
/// 64-bit BAR is `None`, like an unimplemented one.
///
/// Address decoding is switched off in the command register while sizing, so
/// the device never answers at the transient all-ones address, and restored
/// afterwards even when a probe fails.
pub fn read_bars<C: ConfigSpace + ?Sized>(cfg: &mut C) -> Result<[Option<Bar>; 6], BarError> {
    let header_type = cfg.read_u8(REG_HEADER_TYPE)? & 0x7F;
    let count: u8 = match header_type {
        0 => 6,
        1 => 2,
        other => return Err(BarError::UnknownHeaderType(other)),
    };
    let command = cfg.read_u16(REG_COMMAND)?;
    if command & COMMAND_DECODE != 0 {
        cfg.write_u16(REG_COMMAND, command & !COMMAND_DECODE)?;
    }
    let result = probe_all(cfg, count);
    if command & COMMAND_DECODE != 0 {
        cfg.write_u16(REG_COMMAND, command)?;
    }
    result
}

fn probe_all<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    count: u8,
) -> Result<[Option<Bar>; 6], BarError> {
    let mut bars = [None; 6];
    let mut index = 0u8;
    while index < count {
        let offset = REG_BAR0 + u16::from(index) * 4;
        let (original, probed) = probe(cfg, offset)?;
        let kind = bar_kind(index, original)?;
        let high = if kind == BarKind::Memory64 {
            if index + 1 >= count {
                return Err(BarError::MissingUpperHalf { index });
            }
            Some(probe(cfg, offset + 4)?)
        } else {
            None
        };
        if let Some(slot) = bars.get_mut(usize::from(index)) {
            *slot = decode_bar(index, original, probed, high)?;
        }
        index += if high.is_some() { 2 } else { 1 };
    }
    Ok(bars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::MemoryConfigSpace;

    #[test]
    fn decodes_memory32_non_prefetchable() {
        // 16 KiB at 0xFEB0_0000.
        let bar = decode_bar(0, 0xFEB0_0000, 0xFFFF_C000, None)
            .unwrap()
            .unwrap();
        assert_eq!(bar.kind, BarKind::Memory32);
        assert_eq!(bar.address, 0xFEB0_0000);
        assert_eq!(bar.size, 0x4000);
        assert!(!bar.prefetchable);
    }

    #[test]
    fn decodes_memory64_prefetchable() {
        // 256 MiB at 0x38_0000_0000, type 10b, prefetchable: low bits 0xC.
        let bar = decode_bar(2, 0x0000_000C, 0xF000_000C, Some((0x38, 0xFFFF_FFFF)))
            .unwrap()
            .unwrap();
        assert_eq!(bar.kind, BarKind::Memory64);
        assert_eq!(bar.address, 0x38_0000_0000);
        assert_eq!(bar.size, 0x1000_0000);
        assert!(bar.prefetchable);
    }

    #[test]
    fn decodes_io_including_16_bit_decoders() {
        let bar = decode_bar(4, 0x0000_E001, 0xFFFF_FFE1, None)
            .unwrap()
            .unwrap();
        assert_eq!(
            (bar.kind, bar.address, bar.size),
            (BarKind::Io, 0xE000, 0x20)
        );
        let bar = decode_bar(4, 0x0000_E001, 0x0000_FFE1, None)
            .unwrap()
            .unwrap();
        assert_eq!(bar.size, 0x20);
        assert!(!bar.prefetchable);
    }

    #[test]
    fn unimplemented_and_malformed_bars() {
        assert_eq!(decode_bar(1, 0, 0, None), Ok(None));
        assert_eq!(
            decode_bar(1, 0x6, 0xFFFF_FFF6, None),
            Err(BarError::ReservedMemoryType { index: 1 })
        );
        assert_eq!(
            decode_bar(5, 0x4, 0xFFFF_FFF4, None),
            Err(BarError::MissingUpperHalf { index: 5 })
        );
        assert!(matches!(
            decode_bar(0, 0, 0xFF0F_F000, None),
            Err(BarError::BadSizeMask { .. })
        ));
    }

    #[test]
    fn read_bars_probes_restores_and_skips_upper_halves() {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u16(REG_COMMAND, 0x0007).unwrap();
        // BAR0: 64-bit prefetchable 1 MiB at 0x1_2340_0000, BAR2: 32-bit 4 KiB, BAR3: I/O 32 ports.
        cfg.write_u32(0x10, 0x2340_000C).unwrap();
        cfg.write_u32(0x14, 0x0000_0001).unwrap();
        cfg.write_u32(0x18, 0xFEB0_1000).unwrap();
        cfg.write_u32(0x1C, 0x0000_D001).unwrap();
        cfg.set_bar_size_mask(0, 0xFFF0_0000);
        cfg.set_bar_size_mask(1, 0xFFFF_FFFF);
        cfg.set_bar_size_mask(2, 0xFFFF_F000);
        cfg.set_bar_size_mask(3, 0xFFFF_FFE0);
        cfg.set_bar_size_mask(4, 0);
        cfg.set_bar_size_mask(5, 0);
        let bars = read_bars(&mut cfg).unwrap();
        let b0 = bars[0].unwrap();
        assert_eq!(
            (b0.kind, b0.address, b0.size, b0.prefetchable),
            (BarKind::Memory64, 0x1_2340_0000, 0x10_0000, true)
        );
        assert_eq!(bars[1], None);
        let b2 = bars[2].unwrap();
        assert_eq!(
            (b2.kind, b2.address, b2.size),
            (BarKind::Memory32, 0xFEB0_1000, 0x1000)
        );
        let b3 = bars[3].unwrap();
        assert_eq!((b3.kind, b3.address, b3.size), (BarKind::Io, 0xD000, 0x20));
        assert_eq!((bars[4], bars[5]), (None, None));
        // Original values and decoding are back.
        assert_eq!(cfg.read_u32(0x10).unwrap(), 0x2340_000C);
        assert_eq!(cfg.read_u32(0x18).unwrap(), 0xFEB0_1000);
        assert_eq!(cfg.read_u16(REG_COMMAND).unwrap(), 0x0007);
    }

    #[test]
    fn bridges_have_two_bars_and_unknown_headers_fail() {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u8(REG_HEADER_TYPE, 0x81).unwrap(); // multi-function bridge
        cfg.write_u32(0x18, 0xFEB0_1000).unwrap(); // would be BAR2 on an endpoint
        cfg.set_bar_size_mask(0, 0);
        cfg.set_bar_size_mask(1, 0);
        cfg.set_bar_size_mask(2, 0xFFFF_F000);
        let bars = read_bars(&mut cfg).unwrap();
        assert!(bars.iter().all(Option::is_none));
        cfg.write_u8(REG_HEADER_TYPE, 0x02).unwrap();
        assert_eq!(read_bars(&mut cfg), Err(BarError::UnknownHeaderType(2)));
    }
}
