//! The page-table code is generic over the entry format: a format shaped
//! like VT-d's second level (no next-level field, PS marks a superpage, R|W
//! required on directory entries) maps, splits, translates and frees through
//! the same [`PageTable`] as AMD-Vi v1, with its own bits in memory.

use iommu::format::{Entry, PageTableFormat};
use iommu::page_table::{Access, PAGE_1G, PAGE_2M, PAGE_4K, PagePolicy, PageTable};
use iommu::phys::{PageTableMemory, TableArena};
use iommu::pte::AMD_V1;
use syscall::error::EINVAL;

const R: u64 = 1 << 0;
const W: u64 = 1 << 1;
const PS: u64 = 1 << 7;
const ADDR: u64 = 0x000F_FFFF_FFFF_F000;

/// A second-level-style format, written here from its description only.
#[derive(Debug)]
struct PsFormat {
    max_leaf: u8,
}

static PS_2M: PsFormat = PsFormat { max_leaf: 2 };
static PS_1G: PsFormat = PsFormat { max_leaf: 3 };

impl PageTableFormat for PsFormat {
    fn name(&self) -> &'static str {
        "ps-test"
    }
    fn max_leaf_level(&self) -> u8 {
        self.max_leaf
    }
    fn level_range(&self) -> core::ops::RangeInclusive<u8> {
        3..=4
    }
    fn directory(&self, table: u64, _level: u8) -> u64 {
        (table & ADDR) | R | W
    }
    fn leaf(&self, phys: u64, level: u8, access: Access) -> u64 {
        let mut e = phys & ADDR;
        if access.read {
            e |= R;
        }
        if access.write {
            e |= W;
        }
        if level > 1 {
            e |= PS;
        }
        e
    }
    fn decode(&self, raw: u64, level: u8) -> Entry {
        if raw & (R | W) == 0 {
            Entry::Absent
        } else if level > 1 && raw & PS == 0 {
            Entry::Table {
                table: raw & ADDR,
                next_level: level - 1,
            }
        } else {
            Entry::Leaf {
                phys: raw & ADDR,
                access: Access {
                    read: raw & R != 0,
                    write: raw & W != 0,
                },
            }
        }
    }
}

const BASE: u64 = 0x200_0000;

#[test]
fn a_ps_format_writes_its_own_bits() {
    let mut mem = TableArena::new(BASE, 64);
    let mut pt = PageTable::with_format(&mut mem, &PS_1G, 4, 4).unwrap();
    assert_eq!(
        (pt.root(), pt.levels(), pt.format().name()),
        (BASE, 4, "ps-test")
    );
    pt.map(
        &mut mem,
        PAGE_1G,
        0x4000_0000,
        PAGE_1G,
        Access::READ_WRITE,
        PagePolicy::Largest,
    )
    .unwrap();
    let l3 = BASE + 0x1000;
    assert_eq!(
        mem.read_u64(BASE),
        l3 | R | W,
        "directory: R|W, no level field"
    );
    assert_eq!(
        mem.read_u64(l3 + 8),
        0x4000_0000 | R | W | PS,
        "1 GiB leaf: PS"
    );
    let t = pt.translate(&mem, PAGE_1G + 0x1234).unwrap();
    assert_eq!((t.phys, t.page_size), (0x4000_1234, PAGE_1G));
    // Splitting the superpage keeps PS on the 2 MiB pieces.
    pt.unmap(&mut mem, PAGE_1G + PAGE_2M, PAGE_4K).unwrap();
    let t = pt.translate(&mem, PAGE_1G).unwrap();
    assert_eq!((t.phys, t.page_size), (0x4000_0000, PAGE_2M));
    assert_eq!(pt.translate(&mem, PAGE_1G + PAGE_2M), None);
    let t = pt.translate(&mem, PAGE_1G + PAGE_2M + PAGE_4K).unwrap();
    assert_eq!((t.phys, t.page_size), (0x4020_1000, PAGE_4K));
    let split = mem.read_u64(l3 + 8) & ADDR;
    assert_eq!(mem.read_u64(split) & PS, PS, "2 MiB piece is a PS leaf");
    assert_eq!(
        mem.read_u64(split + 8) & PS,
        0,
        "entry 1 is now a directory"
    );
    // Everything unmapped: only the root is left.
    pt.unmap(&mut mem, PAGE_1G, PAGE_2M).unwrap();
    pt.unmap(
        &mut mem,
        PAGE_1G + PAGE_2M + PAGE_4K,
        PAGE_1G - PAGE_2M - PAGE_4K,
    )
    .unwrap();
    pt.prune_all(&mut mem);
    for t in pt.take_gathered() {
        mem.free_table(t);
    }
    assert_eq!((pt.table_count(), mem.live_tables()), (1, 1));
}

#[test]
fn the_format_caps_the_superpage_size() {
    let mut mem = TableArena::new(BASE, 64);
    let mut pt = PageTable::with_format(&mut mem, &PS_2M, 3, 3).unwrap();
    pt.map(
        &mut mem,
        0,
        0,
        PAGE_1G,
        Access::READ_ONLY,
        PagePolicy::Largest,
    )
    .unwrap();
    let t = pt.translate(&mem, PAGE_1G - 1).unwrap();
    assert_eq!((t.page_size, t.access), (PAGE_2M, Access::READ_ONLY));
    pt.destroy(&mut mem);
    assert_eq!(mem.live_tables(), 0);
}

#[test]
fn level_counts_outside_the_format_are_einval() {
    let mut mem = TableArena::new(BASE, 64);
    for (levels, max) in [(2, 4), (4, 5), (4, 3)] {
        assert_eq!(
            PageTable::with_format(&mut mem, &PS_1G, levels, max)
                .unwrap_err()
                .errno,
            EINVAL,
            "{levels}..{max}"
        );
    }
    assert!(PageTable::with_format(&mut mem, &AMD_V1, 3, 6).is_ok());
}
