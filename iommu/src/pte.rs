//! AMD-Vi v1 I/O page-table entries (bit layout from the AMD IOMMU
//! specification, as Linux's `amd_iommu_types.h` spells it).
//!
//! | bits | field |
//! |---|---|
//! | 0 | PR, present |
//! | 11:9 | NextLevel: level of the table this entry points to; 0 = a leaf of the level's natural size |
//! | 51:12 | address (next table, or the page frame) |
//! | 60 | FC, force coherent |
//! | 61 | IR, device may read |
//! | 62 | IW, device may write |

use crate::format::{Entry, PageTableFormat};

/// Present.
pub const PR: u64 = 1 << 0;
/// First bit of the NextLevel field.
pub const NEXT_LEVEL_SHIFT: u32 = 9;
/// The NextLevel field (bits 11:9).
pub const NEXT_LEVEL_MASK: u64 = 7 << NEXT_LEVEL_SHIFT;
/// NextLevel value for a leaf of a non-natural page size; this crate never
/// writes it and does not follow it.
pub const NEXT_LEVEL_OTHER_SIZE: u8 = 7;
/// The address field (bits 51:12).
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;
/// Force coherent.
pub const FC: u64 = 1 << 60;
/// Device read permission.
pub const IR: u64 = 1 << 61;
/// Device write permission.
pub const IW: u64 = 1 << 62;
/// Highest physical address + 1 an entry can hold.
pub const PHYS_LIMIT: u64 = 1 << 52;

/// What a device may do through a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct Access {
    /// IR: DMA reads allowed.
    pub read: bool,
    /// IW: DMA writes allowed.
    pub write: bool,
}

impl Access {
    /// Read and write.
    pub const READ_WRITE: Access = Access {
        read: true,
        write: true,
    };
    /// Read only (the device may not write the memory).
    pub const READ_ONLY: Access = Access {
        read: true,
        write: false,
    };

    const fn bits(self) -> u64 {
        (if self.read { IR } else { 0 }) | (if self.write { IW } else { 0 })
    }
}

/// One 64-bit page-table entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct Pte(pub u64);

impl Pte {
    /// The empty (not present) entry.
    pub const EMPTY: Pte = Pte(0);

    /// A page-directory entry pointing at the table at `table` whose level is
    /// `next_level`: `addr | next_level << 9 | PR | IR | IW`. IR/IW are set so
    /// that the leaf alone decides the permission.
    pub const fn directory(table: u64, next_level: u8) -> Pte {
        Pte((table & ADDR_MASK) | ((next_level as u64) << NEXT_LEVEL_SHIFT) | PR | IR | IW)
    }

    /// A leaf of its level's natural size: `phys | PR | FC` + IR/IW.
    pub const fn leaf(phys: u64, access: Access) -> Pte {
        Pte((phys & ADDR_MASK) | PR | FC | access.bits())
    }

    /// PR is set.
    pub const fn is_present(self) -> bool {
        self.0 & PR != 0
    }

    /// The NextLevel field.
    pub const fn next_level(self) -> u8 {
        ((self.0 & NEXT_LEVEL_MASK) >> NEXT_LEVEL_SHIFT) as u8
    }

    /// Present with NextLevel 0: a page of the table's natural size.
    pub const fn is_leaf(self) -> bool {
        self.is_present() && self.next_level() == 0
    }

    /// The address field.
    pub const fn address(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// The IR/IW permission bits.
    pub const fn access(self) -> Access {
        Access {
            read: self.0 & IR != 0,
            write: self.0 & IW != 0,
        }
    }
}

/// The AMD-Vi v1 format as a [`PageTableFormat`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AmdV1Format;

/// The one instance units hand out.
pub static AMD_V1: AmdV1Format = AmdV1Format;

impl PageTableFormat for AmdV1Format {
    fn name(&self) -> &'static str {
        "amd-v1"
    }

    fn max_leaf_level(&self) -> u8 {
        3
    }

    fn level_range(&self) -> core::ops::RangeInclusive<u8> {
        3..=6
    }

    fn directory(&self, table: u64, level: u8) -> u64 {
        Pte::directory(table, level.saturating_sub(1)).0
    }

    fn leaf(&self, phys: u64, _level: u8, access: Access) -> u64 {
        Pte::leaf(phys, access).0
    }

    fn decode(&self, raw: u64, level: u8) -> Entry {
        let pte = Pte(raw);
        if !pte.is_present() {
            return Entry::Absent;
        }
        match pte.next_level() {
            0 => Entry::Leaf {
                phys: pte.address(),
                access: pte.access(),
            },
            // Skipped levels are legal for the hardware (a walk may jump
            // several levels); the table code decides whether it follows.
            next if next < level && next != NEXT_LEVEL_OTHER_SIZE => Entry::Table {
                table: pte.address(),
                next_level: next,
            },
            _ => Entry::Foreign,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_hand_computed_values() {
        // PDE to a level-2 table at 0x12_3000: addr | 2<<9 | PR | IR | IW.
        assert_eq!(Pte::directory(0x12_3000, 2).0, 0x6000_0000_0012_3401);
        // 4 KiB read-write leaf at 0xABCD_E000: addr | PR | FC | IR | IW.
        assert_eq!(
            Pte::leaf(0xABCD_E000, Access::READ_WRITE).0,
            0x7000_0000_ABCD_E001
        );
        // Read-only leaf: no IW.
        assert_eq!(
            Pte::leaf(0x20_0000, Access::READ_ONLY).0,
            0x3000_0000_0020_0001
        );
        let e = Pte::directory(0x12_3000, 2);
        assert!(e.is_present() && !e.is_leaf());
        assert_eq!((e.next_level(), e.address()), (2, 0x12_3000));
        assert!(!Pte::EMPTY.is_present());
    }
}
