//! The page-table format: how one vendor encodes a 64-bit I/O page-table
//! entry. [`crate::page_table::PageTable`] does the walking, splitting,
//! growing and freeing for every vendor; it reads and writes entries only
//! through a [`PageTableFormat`], chosen by the unit
//! ([`crate::unit::IommuUnit::page_table_format`]).
//!
//! Both formats this daemon knows share the shape the table code relies on:
//! 4 KiB tables of 512 eight-byte entries, 9 index bits per level, a level-1
//! entry maps 4 KiB, level 2 2 MiB, level 3 1 GiB. They differ in the bits:
//! AMD-Vi v1 names the next level in bits 11:9 and marks a superpage by
//! NextLevel 0; VT-d second-level entries have no next-level field, mark a
//! superpage by PS (bit 7) and need R|W on non-leaf entries too.

use crate::pte::Access;

/// An entry as the table code sees it, whatever the vendor's bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Entry {
    /// Not present: the unit faults (or, with NpCache / Caching Mode, may
    /// cache the miss).
    Absent,
    /// A page-directory entry pointing at the level-`next_level` table at
    /// `table`.
    Table {
        /// Physical address of the next table.
        table: u64,
        /// Its level. A format without a next-level field reports `level - 1`.
        next_level: u8,
    },
    /// A leaf mapping the naturally sized, naturally aligned page at `phys`.
    Leaf {
        /// Physical address of the page.
        phys: u64,
        /// What the device may do through it.
        access: Access,
    },
    /// Present but in a shape this crate never writes (for AMD-Vi a
    /// NextLevel-7 "other size" leaf): translation gives up, unmap leaves it.
    Foreign,
}

/// One vendor's page-table entry encoding.
///
/// The methods are pure bit manipulation: no memory access, no side effect.
/// `level` is the level of the table the entry sits in (1 = 4 KiB leaves).
pub trait PageTableFormat: Send + Sync + core::fmt::Debug {
    /// Short name for `stats` (`amd-v1`, `vtd-sl`).
    fn name(&self) -> &'static str;
    /// Highest level a leaf may sit at: 3 for 1 GiB pages, 2 for 2 MiB
    /// only, 1 for 4 KiB only (VT-d's SLLPS decides).
    fn max_leaf_level(&self) -> u8;
    /// Fewest and most levels a table of this format may have.
    fn level_range(&self) -> core::ops::RangeInclusive<u8>;
    /// The page-directory entry at `level` pointing at the level-`level - 1`
    /// table `table`. It must not restrict access: the leaf alone decides.
    fn directory(&self, table: u64, level: u8) -> u64;
    /// The leaf at `level` mapping the naturally aligned page at `phys`.
    fn leaf(&self, phys: u64, level: u8, access: Access) -> u64;
    /// Decodes an entry found at `level`.
    fn decode(&self, raw: u64, level: u8) -> Entry;
}
