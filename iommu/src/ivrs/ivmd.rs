//! IVMD blocks: memory devices must keep reaching untranslated.
//!
//! Layout (32 bytes): type u8 (0x20 all devices, 0x21 one DeviceID, 0x22 a
//! range DeviceID..=aux), flags u8 (bit 0 Unity, 1 IR, 2 IW, 3
//! ExclusionRange), length u16, DeviceID u16, aux u16, segment u16, 6
//! reserved bytes, start u64, length u64. Like current Linux, an exclusion
//! range is treated as a readable and writable unity range (no exclusion
//! registers are programmed).

use super::{IvrsError, u16_at, u64_at};

/// Which devices an IVMD applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeviceSet {
    /// Every device (type 0x20).
    All,
    /// Requester ids `first..=last` (0x21: one, 0x22: a range).
    Range(u16, u16),
}

impl DeviceSet {
    /// Whether requester `rid` is in the set.
    pub fn contains(&self, rid: u16) -> bool {
        match *self {
            DeviceSet::All => true,
            DeviceSet::Range(a, b) => (a..=b).contains(&rid),
        }
    }
}

/// One IVMD: `[start, start + length)` identity mapped for `devices`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ivmd {
    /// Which devices.
    pub devices: DeviceSet,
    /// PCI segment.
    pub segment: u16,
    /// The raw flags.
    pub flags: u8,
    /// First byte (page aligned).
    pub start: u64,
    /// Bytes (a page multiple, not zero).
    pub length: u64,
}

impl Ivmd {
    /// Unity flag.
    pub const UNITY: u8 = 1;
    /// Reads allowed.
    pub const READ: u8 = 2;
    /// Writes allowed.
    pub const WRITE: u8 = 4;
    /// Exclusion range (treated as a read/write unity range).
    pub const EXCLUSION: u8 = 8;

    /// Parses one IVMD block (`offset`: where it starts in the table).
    pub fn parse(block: &[u8], offset: usize) -> Result<Ivmd, IvrsError> {
        let bad = IvrsError::Block {
            offset,
            length: block.len(),
        };
        if block.len() < 32 {
            return Err(bad);
        }
        let kind = *block.first().ok_or(bad)?;
        let device_id = u16_at(block, 4).ok_or(bad)?;
        let aux = u16_at(block, 6).ok_or(bad)?;
        let devices = match kind {
            0x20 => DeviceSet::All,
            0x21 => DeviceSet::Range(device_id, device_id),
            _ if aux >= device_id => DeviceSet::Range(device_id, aux),
            _ => return Err(IvrsError::Memory { offset }),
        };
        let ivmd = Ivmd {
            devices,
            segment: u16_at(block, 8).ok_or(bad)?,
            flags: *block.get(1).ok_or(bad)?,
            start: u64_at(block, 16).ok_or(bad)?,
            length: u64_at(block, 24).ok_or(bad)?,
        };
        let aligned = ivmd.start.is_multiple_of(4096) && ivmd.length.is_multiple_of(4096);
        if ivmd.length == 0 || !aligned || ivmd.start.checked_add(ivmd.length).is_none() {
            return Err(IvrsError::Memory { offset });
        }
        Ok(ivmd)
    }

    /// Whether the range must be identity mapped (Unity or ExclusionRange).
    pub fn identity_mapped(&self) -> bool {
        self.flags & (Self::UNITY | Self::EXCLUSION) != 0
    }

    /// Whether devices may read it (exclusion ranges: yes).
    pub fn readable(&self) -> bool {
        self.flags & (Self::READ | Self::EXCLUSION) != 0
    }

    /// Whether devices may write it (exclusion ranges: yes).
    pub fn writable(&self) -> bool {
        self.flags & (Self::WRITE | Self::EXCLUSION) != 0
    }
}
