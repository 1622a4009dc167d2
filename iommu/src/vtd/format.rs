//! VT-d second-level entries as a [`PageTableFormat`]: the table code does
//! the walking, this only encodes ([`super::pte::SlPte`] has the bits).
//!
//! A unit's tables have exactly the levels its context entries name (AW + 2,
//! from SAGAW), and leaves as large as CAP.SLLPS allows, so one format value
//! exists per (levels, largest leaf): [`format_for`] hands out the static
//! one a unit needs.

use super::pte::SlPte;
use crate::format::{Entry, PageTableFormat};
use crate::pte::Access;

/// Second-level tables of a fixed number of levels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VtdSecondLevel {
    levels: u8,
    max_leaf: u8,
}

static FORMATS: [VtdSecondLevel; 6] = [
    VtdSecondLevel {
        levels: 3,
        max_leaf: 1,
    },
    VtdSecondLevel {
        levels: 3,
        max_leaf: 2,
    },
    VtdSecondLevel {
        levels: 3,
        max_leaf: 3,
    },
    VtdSecondLevel {
        levels: 4,
        max_leaf: 1,
    },
    VtdSecondLevel {
        levels: 4,
        max_leaf: 2,
    },
    VtdSecondLevel {
        levels: 4,
        max_leaf: 3,
    },
];

/// The format of a unit walking `levels` (3 or 4, else 3) levels with
/// 2 MiB and/or 1 GiB leaves as SLLPS says (1 GiB leaves only together with
/// 2 MiB ones, as every unit reports them).
pub fn format_for(levels: u8, superpage_2m: bool, superpage_1g: bool) -> &'static VtdSecondLevel {
    let max_leaf = match (superpage_2m, superpage_1g) {
        (true, true) => 3usize,
        (true, false) => 2,
        _ => 1,
    };
    let row = if levels == 4 { 3 } else { 0 };
    &FORMATS[row + max_leaf - 1]
}

impl PageTableFormat for VtdSecondLevel {
    fn name(&self) -> &'static str {
        "vtd-sl"
    }

    fn max_leaf_level(&self) -> u8 {
        self.max_leaf
    }

    fn level_range(&self) -> core::ops::RangeInclusive<u8> {
        self.levels..=self.levels
    }

    fn directory(&self, table: u64, _level: u8) -> u64 {
        SlPte::directory(table).0
    }

    fn leaf(&self, phys: u64, level: u8, access: Access) -> u64 {
        SlPte::leaf(phys, access, level).0
    }

    fn decode(&self, raw: u64, level: u8) -> Entry {
        let pte = SlPte(raw);
        if !pte.is_present() {
            Entry::Absent
        } else if pte.is_leaf(level) {
            if level > self.max_leaf {
                // A leaf the unit would refuse (reserved PS): never written here.
                return Entry::Foreign;
            }
            Entry::Leaf {
                phys: pte.address(),
                access: pte.access(),
            }
        } else if raw & 3 == 3 && level > 1 {
            Entry::Table {
                table: pte.address(),
                next_level: level - 1,
            }
        } else {
            // A non-leaf without both R and W restricts everything below it.
            Entry::Foreign
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::page_table::{PagePolicy, PageTable};
    use crate::phys::{PageTableMemory, TableArena};

    #[test]
    fn tables_in_the_vtd_format_use_ps_and_rw_directories() {
        let mut mem = TableArena::new(0x10_0000, 64);
        let f = format_for(3, true, true);
        let mut t = PageTable::with_format(&mut mem, f, 3, 3).unwrap();
        t.map(
            &mut mem,
            0x4000_0000,
            0x8000_0000,
            1 << 30,
            Access::READ_WRITE,
            PagePolicy::Largest,
        )
        .unwrap();
        t.map(
            &mut mem,
            0x20_0000,
            0x40_0000,
            2 << 20,
            Access::READ_ONLY,
            PagePolicy::Largest,
        )
        .unwrap();
        t.map(
            &mut mem,
            0x1000,
            0x9000,
            0x1000,
            Access::READ_WRITE,
            PagePolicy::Largest,
        )
        .unwrap();
        let root = t.root();
        // 1 GiB leaf at root[1]: PS | R | W.
        assert_eq!(mem.read_u64(root + 8), 0x8000_0000 | 0x83);
        // root[0] is a directory with R | W and no other bit.
        let l2 = mem.read_u64(root);
        assert_eq!(l2 & 0xFFF, 0x3);
        // 2 MiB read-only leaf at l2[1]: PS | R.
        assert_eq!(mem.read_u64((l2 & !0xFFF) + 8), 0x40_0000 | 0x81);
        let l1 = mem.read_u64(l2 & !0xFFF) & !0xFFF;
        // 4 KiB leaf: no PS.
        assert_eq!(mem.read_u64(l1 + 8), 0x9000 | 0x3);
        assert_eq!(t.translate(&mem, 0x4000_1234).unwrap().phys, 0x8000_1234);
    }

    #[test]
    fn without_sllps_only_4k_leaves_are_written() {
        let mut mem = TableArena::new(0x10_0000, 64);
        let f = format_for(4, false, false);
        assert_eq!(f.level_range(), 4..=4);
        let mut t = PageTable::with_format(&mut mem, f, 4, 4).unwrap();
        t.map(
            &mut mem,
            0x20_0000,
            0x40_0000,
            2 << 20,
            Access::READ_WRITE,
            PagePolicy::Largest,
        )
        .unwrap();
        let tr = t.translate(&mem, 0x20_0000).unwrap();
        assert_eq!(tr.page_size, 4096);
    }
}
