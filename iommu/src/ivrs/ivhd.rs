//! IVHD blocks: one AMD-Vi unit and the requester ids it translates.
//!
//! Header (all types): type u8, flags u8, length u16, the unit's own
//! DeviceID u16, capability offset u16, register base u64, PCI segment u16,
//! IOMMU info u16, then for `0x10` a feature-reporting u32 (24 bytes), for
//! `0x11`/`0x40` attributes u32, EFR image u64 and EFR2 image u64 (40 bytes).
//!
//! Device entries follow; an entry's length is `4 << (type >> 6)` except
//! ACPI HID (`0xF0`), which is 22 bytes plus its UID length (byte 21).
//! Each is `type u8, DeviceID u16, DTE setting u8[, ext u32]`:
//!
//! | type | entry |
//! |---|---|
//! | 0x00, 0x40 | padding |
//! | 0x01 | ALL: every DeviceID |
//! | 0x02 | SELECT: one DeviceID |
//! | 0x03 / 0x04 | RANGE START / RANGE END |
//! | 0x42 | ALIAS SELECT: the DeviceID's DMA arrives as ext bits 23:8 |
//! | 0x43 | ALIAS RANGE START: the range's DMA arrives as ext bits 23:8; the next 0x04 ends it |
//! | 0x46 / 0x47 | EXT SELECT / EXT RANGE START (ext = extended flags) |
//! | 0x48 | SPECIAL: ext byte 0 handle, bytes 1–2 the DeviceID used, byte 3 variety (1 IOAPIC, 2 HPET) |
//! | 0xF0 | ACPI HID device |

use super::{IvrsError, u16_at, u32_at, u64_at};

/// Requester ids `first..=last`, whose DMA the unit sees as `alias` if set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceRange {
    /// First DeviceID.
    pub first: u16,
    /// Last DeviceID (inclusive).
    pub last: u16,
    /// The requester id their DMA really carries (alias entries).
    pub alias: Option<u16>,
}

/// An IOAPIC or HPET behind the unit (SPECIAL entry).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Special {
    /// IOAPIC id or HPET number.
    pub handle: u8,
    /// The requester id its messages carry.
    pub device_id: u16,
    /// 1 IOAPIC, 2 HPET.
    pub variety: u8,
}

/// Which requester ids a unit translates.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    /// An ALL entry: every DeviceID of the segment.
    pub all: bool,
    /// SELECT, RANGE, ALIAS, EXT and ACPI HID entries.
    pub ranges: Vec<DeviceRange>,
    /// SPECIAL entries.
    pub specials: Vec<Special>,
}

impl Coverage {
    /// Whether requester `rid` is behind this unit.
    pub fn covers(&self, rid: u16) -> bool {
        self.all
            || self
                .ranges
                .iter()
                .any(|r| (r.first..=r.last).contains(&rid))
            || self.specials.iter().any(|s| s.device_id == rid)
    }

    /// The requester id `rid`'s DMA carries, if an alias entry says so.
    pub fn alias_of(&self, rid: u16) -> Option<u16> {
        self.ranges
            .iter()
            .find(|r| (r.first..=r.last).contains(&rid))
            .and_then(|r| r.alias)
    }
}

/// One IVHD block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivhd {
    /// 0x10, 0x11 or 0x40.
    pub kind: u8,
    /// IVHD flags (HtTunEn, PassPW, ResPassPW, Isoc, IotlbSup, Coherent, ...).
    pub flags: u8,
    /// The unit's own PCI function.
    pub device_id: u16,
    /// Offset of the IOMMU capability in that function's config space.
    pub capability_offset: u16,
    /// The register base (MMIO physical address).
    pub base: u64,
    /// PCI segment.
    pub segment: u16,
    /// IOMMU info (MSI number 4:0, UnitID 12:8).
    pub info: u16,
    /// The EFR image (types 0x11 and 0x40).
    pub efr: Option<u64>,
    /// The requester ids it translates.
    pub coverage: Coverage,
}

/// The length of the device entry of type `kind` starting at `entry`.
fn entry_length(kind: u8, entry: &[u8]) -> Option<usize> {
    if kind == 0xF0 {
        return Some(22 + usize::from(*entry.get(21)?));
    }
    Some(4usize << (kind >> 6))
}

impl Ivhd {
    /// Parses one IVHD block (`block` is exactly its bytes; `offset` is
    /// where it starts in the table, for errors).
    pub fn parse(block: &[u8], offset: usize) -> Result<Ivhd, IvrsError> {
        let kind = *block.first().ok_or(IvrsError::Truncated)?;
        let header = if kind == 0x10 { 24 } else { 40 };
        let bad = IvrsError::Block {
            offset,
            length: block.len(),
        };
        if block.len() < header {
            return Err(bad);
        }
        let mut unit = Ivhd {
            kind,
            flags: *block.get(1).ok_or(bad)?,
            device_id: u16_at(block, 4).ok_or(bad)?,
            capability_offset: u16_at(block, 6).ok_or(bad)?,
            base: u64_at(block, 8).ok_or(bad)?,
            segment: u16_at(block, 16).ok_or(bad)?,
            info: u16_at(block, 18).ok_or(bad)?,
            efr: if kind == 0x10 {
                None
            } else {
                Some(u64_at(block, 24).ok_or(bad)?)
            },
            coverage: Coverage::default(),
        };
        let mut open: Option<(u16, Option<u16>, usize)> = None;
        let mut at = header;
        while at < block.len() {
            let here = offset + at;
            let entry = block.get(at..).ok_or(IvrsError::Entry { offset: here })?;
            let t = *entry.first().ok_or(IvrsError::Entry { offset: here })?;
            let len = entry_length(t, entry).ok_or(IvrsError::Entry { offset: here })?;
            let entry = entry.get(..len).ok_or(IvrsError::Entry { offset: here })?;
            let device_id = u16_at(entry, 1).ok_or(IvrsError::Entry { offset: here })?;
            let ext = || u32_at(entry, 4).ok_or(IvrsError::Entry { offset: here });
            let single = |alias| DeviceRange {
                first: device_id,
                last: device_id,
                alias,
            };
            let c = &mut unit.coverage;
            match t {
                0x01 => c.all = true,
                0x02 | 0x46 | 0xF0 => c.ranges.push(single(None)),
                0x03 | 0x43 | 0x47 => {
                    if open.is_some() {
                        return Err(IvrsError::Range { offset: here });
                    }
                    let alias = if t == 0x43 {
                        Some((ext()? >> 8) as u16)
                    } else {
                        None
                    };
                    open = Some((device_id, alias, here));
                }
                0x04 => {
                    let (first, alias, _) = open.take().ok_or(IvrsError::Range { offset: here })?;
                    if device_id < first {
                        return Err(IvrsError::Range { offset: here });
                    }
                    c.ranges.push(DeviceRange {
                        first,
                        last: device_id,
                        alias,
                    });
                }
                0x42 => c.ranges.push(single(Some((ext()? >> 8) as u16))),
                0x48 => {
                    let ext = ext()?;
                    c.specials.push(Special {
                        handle: ext as u8,
                        device_id: (ext >> 8) as u16,
                        variety: (ext >> 24) as u8,
                    });
                }
                // Padding and entry types we do not know: skipped by length.
                _ => {}
            }
            at += len;
        }
        if let Some((_, _, start)) = open {
            return Err(IvrsError::Range { offset: start });
        }
        Ok(unit)
    }
}
