//! Second-level page-table entries (VT-d specification 9.8; Linux
//! `struct dma_pte` and `DMA_PTE_*`; QEMU `VTD_SL_*`; notes §A.3).
//!
//! | bits | field |
//! |---|---|
//! | 0 | R |
//! | 1 | W |
//! | 7 | PS: a leaf at level 2 (2 MiB) or 3 (1 GiB); reserved at levels 1 and 4 |
//! | 51:12 | address (next table, or the page frame) |
//!
//! Unlike AMD-Vi there is no present bit and no next-level field: an entry
//! is present when R or W is set, a level-1 entry is always a leaf, and a
//! level-2/3 entry is a leaf exactly when PS is set. Non-leaf entries carry
//! both R and W, because the unit checks the requested access at every level
//! (QEMU faults with reason 5/6 otherwise).

use crate::pte::Access;

/// Read.
pub const R: u64 = 1 << 0;
/// Write.
pub const W: u64 = 1 << 1;
/// Page size: this level-2/3 entry is a leaf.
pub const PS: u64 = 1 << 7;
/// Address bits (51:12).
pub const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// One 64-bit second-level entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(transparent)]
pub struct SlPte(pub u64);

impl SlPte {
    /// Not present.
    pub const EMPTY: SlPte = SlPte(0);

    /// An entry pointing at the next-level table at `table`: `table | R | W`.
    pub const fn directory(table: u64) -> SlPte {
        SlPte((table & ADDR_MASK) | R | W)
    }

    /// A leaf at `level` (1: 4 KiB; 2 and 3 carry PS).
    pub const fn leaf(phys: u64, access: Access, level: u8) -> SlPte {
        let mut v = phys & ADDR_MASK;
        if access.read {
            v |= R;
        }
        if access.write {
            v |= W;
        }
        if level > 1 {
            v |= PS;
        }
        SlPte(v)
    }

    /// R or W is set.
    pub const fn is_present(self) -> bool {
        self.0 & (R | W) != 0
    }

    /// A leaf when read at `level`.
    pub const fn is_leaf(self, level: u8) -> bool {
        self.is_present() && (level == 1 || self.0 & PS != 0)
    }

    /// The address field.
    pub const fn address(self) -> u64 {
        self.0 & ADDR_MASK
    }

    /// The R/W bits.
    pub const fn access(self) -> Access {
        Access {
            read: self.0 & R != 0,
            write: self.0 & W != 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_hand_computed_values() {
        assert_eq!(SlPte::directory(0x12_3000).0, 0x12_3003);
        assert_eq!(
            SlPte::leaf(0xABCD_E000, Access::READ_WRITE, 1).0,
            0xABCD_E003
        );
        // A read-only 2 MiB leaf: PS, R, no W.
        assert_eq!(SlPte::leaf(0x20_0000, Access::READ_ONLY, 2).0, 0x20_0081);
        assert!(SlPte::leaf(0x20_0000, Access::READ_ONLY, 2).is_leaf(2));
        assert!(!SlPte::directory(0x1000).is_leaf(2));
        assert!(SlPte::directory(0x1000).is_leaf(1));
        assert!(!SlPte::EMPTY.is_present());
    }
}
