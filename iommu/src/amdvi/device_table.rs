//! Device table entries: 256 bits per requester id.
//!
//! | bits | field |
//! |---|---|
//! | 0 | V: the entry is valid (V = 0: DMA is not translated) |
//! | 1 | TV: the translation fields are valid |
//! | 11:9 | Mode: page-table levels (0 = no translation, addresses pass through subject to IR/IW) |
//! | 51:12 | page-table root pointer |
//! | 61 | IR: reads permitted |
//! | 62 | IW: writes permitted |
//! | 79:64 | DomainID (tags IOTLB entries) |
//!
//! Interrupt remapping fields (bits 128 and up) stay zero: this daemon does not
//! remap interrupts.

use crate::pte::ADDR_MASK;

/// One device table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct DeviceTableEntry {
    /// V.
    pub valid: bool,
    /// TV.
    pub translation_valid: bool,
    /// Mode: 0 or the number of page-table levels (1..=6).
    pub mode: u8,
    /// Physical address of the root table.
    pub root: u64,
    /// IR.
    pub read: bool,
    /// IW.
    pub write: bool,
    /// DomainID.
    pub domain_id: u16,
}

const V: u64 = 1 << 0;
const TV: u64 = 1 << 1;
const MODE_SHIFT: u32 = 9;
const IR: u64 = 1 << 61;
const IW: u64 = 1 << 62;

impl DeviceTableEntry {
    /// The entry of a device whose DMA is refused: valid, translated, Mode 0,
    /// no permission (what every device gets until it is assigned).
    pub const BLOCKED: DeviceTableEntry = DeviceTableEntry {
        valid: true,
        translation_valid: true,
        mode: 0,
        root: 0,
        read: false,
        write: false,
        domain_id: 0,
    };

    /// The entry of a device no domain holds, left in passthrough: valid,
    /// translated, Mode 0 (addresses are not translated), IR and IW
    /// (Linux's `set_dte_passthrough`), DomainID 0 (no domain's id).
    pub const PASSTHROUGH: DeviceTableEntry = DeviceTableEntry {
        valid: true,
        translation_valid: true,
        mode: 0,
        root: 0,
        read: true,
        write: true,
        domain_id: 0,
    };

    /// The entry of a device assigned to a domain.
    pub const fn translated(domain_id: u16, root: u64, levels: u8) -> Self {
        Self {
            valid: true,
            translation_valid: true,
            mode: levels,
            root,
            read: true,
            write: true,
            domain_id,
        }
    }

    /// Whether a device with this entry can DMA anywhere: V = 0 (the unit
    /// does not translate it), or translation or a permission granted.
    pub const fn lets_dma_through(&self) -> bool {
        !self.valid || (self.translation_valid && (self.mode != 0 || self.read || self.write))
    }

    /// The four little-endian quadwords.
    pub const fn to_quadwords(&self) -> [u64; 4] {
        let mut q0 = (self.root & ADDR_MASK) | ((self.mode as u64 & 7) << MODE_SHIFT);
        if self.valid {
            q0 |= V;
        }
        if self.translation_valid {
            q0 |= TV;
        }
        if self.read {
            q0 |= IR;
        }
        if self.write {
            q0 |= IW;
        }
        [q0, self.domain_id as u64, 0, 0]
    }

    /// Decodes quadwords 0 and 1 (the translation half).
    pub const fn from_quadwords(q0: u64, q1: u64) -> Self {
        Self {
            valid: q0 & V != 0,
            translation_valid: q0 & TV != 0,
            mode: ((q0 >> MODE_SHIFT) & 7) as u8,
            root: q0 & ADDR_MASK,
            read: q0 & IR != 0,
            write: q0 & IW != 0,
            domain_id: q1 as u16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_the_specification() {
        let e = DeviceTableEntry::translated(0x1234, 0x1_2345_6000, 4);
        let q = e.to_quadwords();
        assert_eq!(q[0], 0x6000_0001_2345_6803);
        assert_eq!(q[1], 0x1234);
        assert_eq!(DeviceTableEntry::from_quadwords(q[0], q[1]), e);
        assert_eq!(DeviceTableEntry::BLOCKED.to_quadwords(), [3, 0, 0, 0]);
    }
}
