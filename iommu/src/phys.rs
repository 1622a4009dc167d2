//! Physical memory for I/O page tables.
//!
//! The page tables must live in physical memory the IOMMU walks, so the
//! crate never allocates them itself: it asks a [`PageTableMemory`]. iommud
//! implements it over the Redox `memory` scheme (zeroed, physically
//! contiguous 4 KiB pages); tests and in-process measurements use
//! [`TableArena`], a bounded arena in ordinary memory.

use syscall::error::{ENOMEM, Error, Result};

/// Size of one I/O page table (512 eight-byte entries).
pub const TABLE_SIZE: u64 = 4096;

/// Where I/O page tables live.
///
/// Addresses are physical (what the hardware sees). Implementations must not
/// panic on an address they did not hand out: reads of such addresses return
/// 0 (a not-present entry) and writes are dropped, so a corrupted entry can
/// never take the daemon down. The trait is object safe; the page-table code
/// takes `&mut M` with `M: PageTableMemory + ?Sized`, so `dyn` works too.
pub trait PageTableMemory {
    /// A zeroed, 4 KiB-aligned table; `ENOMEM` when none is left.
    fn alloc_table(&mut self) -> Result<u64>;
    /// Returns a table obtained from [`alloc_table`](Self::alloc_table).
    fn free_table(&mut self, phys: u64);
    /// Reads the 8-byte entry at `phys` (8-byte aligned).
    fn read_u64(&self, phys: u64) -> u64;
    /// Writes the 8-byte entry at `phys` (8-byte aligned).
    fn write_u64(&mut self, phys: u64, value: u64);
}

const ENTRIES: usize = (TABLE_SIZE / 8) as usize;

/// An in-process [`PageTableMemory`]: tables in a `Vec`, given fake
/// physical addresses `base + index * 4096`, at most `max_tables` of them.
#[derive(Debug)]
pub struct TableArena {
    base: u64,
    max_tables: usize,
    words: Vec<u64>,
    in_use: Vec<bool>,
    free: Vec<usize>,
    live: usize,
}

impl TableArena {
    /// An arena whose first table sits at physical `base` (4 KiB aligned,
    /// rounded down otherwise) and that holds at most `max_tables` tables.
    pub fn new(base: u64, max_tables: usize) -> Self {
        Self {
            base: base & !(TABLE_SIZE - 1),
            max_tables,
            words: Vec::new(),
            in_use: Vec::new(),
            free: Vec::new(),
            live: 0,
        }
    }

    /// Tables currently handed out.
    pub fn live_tables(&self) -> usize {
        self.live
    }

    /// Whether `phys` is the address of a table handed out and not freed.
    pub fn is_live_table(&self, phys: u64) -> bool {
        self.table_index(phys)
            .is_some_and(|i| phys.is_multiple_of(TABLE_SIZE) && self.in_use.get(i) == Some(&true))
    }

    fn table_index(&self, phys: u64) -> Option<usize> {
        let offset = phys.checked_sub(self.base)?;
        usize::try_from(offset / TABLE_SIZE)
            .ok()
            .filter(|&i| i < self.in_use.len())
    }

    /// The word index of `phys`, only inside a live table and 8-byte aligned.
    fn word_index(&self, phys: u64) -> Option<usize> {
        let table = self.table_index(phys)?;
        if !phys.is_multiple_of(8) || self.in_use.get(table) != Some(&true) {
            return None;
        }
        Some(table * ENTRIES + ((phys % TABLE_SIZE) / 8) as usize)
    }
}

impl PageTableMemory for TableArena {
    fn alloc_table(&mut self) -> Result<u64> {
        let index = match self.free.pop() {
            Some(index) => {
                if let Some(table) = self.words.get_mut(index * ENTRIES..(index + 1) * ENTRIES) {
                    table.fill(0);
                }
                index
            }
            None => {
                let index = self.in_use.len();
                if index >= self.max_tables {
                    return Err(Error::new(ENOMEM));
                }
                self.words.resize((index + 1) * ENTRIES, 0);
                self.in_use.push(false);
                index
            }
        };
        if let Some(flag) = self.in_use.get_mut(index) {
            *flag = true;
        }
        self.live += 1;
        Ok(self.base + index as u64 * TABLE_SIZE)
    }

    fn free_table(&mut self, phys: u64) {
        match self.table_index(phys) {
            Some(index)
                if phys.is_multiple_of(TABLE_SIZE) && self.in_use.get(index) == Some(&true) =>
            {
                if let Some(flag) = self.in_use.get_mut(index) {
                    *flag = false;
                }
                self.free.push(index);
                self.live -= 1;
            }
            _ => log::warn!("iommu: free of unknown page table {phys:#x} ignored"),
        }
    }

    fn read_u64(&self, phys: u64) -> u64 {
        match self.word_index(phys).and_then(|i| self.words.get(i)) {
            Some(&value) => value,
            None => {
                log::warn!("iommu: page-table read outside the arena at {phys:#x}");
                0
            }
        }
    }

    fn write_u64(&mut self, phys: u64, value: u64) {
        match self.word_index(phys) {
            Some(i) => {
                if let Some(word) = self.words.get_mut(i) {
                    *word = value;
                }
            }
            None => log::warn!("iommu: page-table write outside the arena at {phys:#x} dropped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_are_aligned_zeroed_and_reused() {
        let mut arena = TableArena::new(0x10_0000, 4);
        let a = arena.alloc_table().unwrap();
        assert_eq!(a % TABLE_SIZE, 0);
        arena.write_u64(a + 8, 0xdead);
        assert_eq!(arena.read_u64(a + 8), 0xdead);
        arena.free_table(a);
        assert_eq!(arena.live_tables(), 0);
        let b = arena.alloc_table().unwrap();
        assert_eq!(b, a, "freed table is reused");
        assert_eq!(arena.read_u64(b + 8), 0, "reused table is zeroed");
    }

    #[test]
    fn limit_gives_enomem() {
        let mut arena = TableArena::new(0, 2);
        arena.alloc_table().unwrap();
        arena.alloc_table().unwrap();
        assert_eq!(arena.alloc_table().unwrap_err().errno, ENOMEM);
    }

    #[test]
    fn bad_addresses_never_panic() {
        let mut arena = TableArena::new(0x10_0000, 2);
        let t = arena.alloc_table().unwrap();
        for bad in [0, t - 8, t + 3, t + TABLE_SIZE, u64::MAX, u64::MAX - 7] {
            assert_eq!(arena.read_u64(bad), 0);
            arena.write_u64(bad, 1);
        }
        arena.free_table(t + TABLE_SIZE);
        arena.free_table(t + 8);
        arena.free_table(t);
        arena.free_table(t);
        assert_eq!(arena.live_tables(), 0);
        // A freed table is not writable any more.
        arena.write_u64(t, 5);
        assert_eq!(arena.read_u64(t), 0);
    }
}
