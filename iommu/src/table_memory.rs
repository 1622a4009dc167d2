//! [`PageTableMemory`] over the `memory` scheme: what iommud's page tables
//! live in.
//!
//! Tables are carved from physically contiguous, zeroed chunks of
//! [`CHUNK_TABLES`] pages (one `mmap` per chunk instead of one per table);
//! freed tables are zeroed and reused. The physical → virtual lookup keeps
//! the chunk of the previous access, because a table walk touches the same
//! few tables over and over.

use std::cell::Cell;
use std::collections::BTreeMap;

use syscall::error::{ENOMEM, Error, Result};

use crate::contiguous::{ContiguousAllocator, ContiguousRegion};
use crate::phys::{PageTableMemory, TABLE_SIZE};

/// Tables per contiguous chunk (256 KiB).
pub const CHUNK_TABLES: usize = 64;

/// Page tables in memory-scheme memory, at most `max_tables` of them.
#[derive(Debug)]
pub struct SchemeTableMemory {
    allocator: ContiguousAllocator,
    chunks: Vec<ContiguousRegion>,
    /// Chunk index by physical base.
    by_phys: BTreeMap<u64, usize>,
    free: Vec<u64>,
    live: usize,
    max_tables: usize,
    last: Cell<usize>,
}

impl SchemeTableMemory {
    /// Allocates through `allocator`; `ENOMEM` past `max_tables` tables.
    pub fn new(allocator: ContiguousAllocator, max_tables: usize) -> Self {
        Self {
            allocator,
            chunks: Vec::new(),
            by_phys: BTreeMap::new(),
            free: Vec::new(),
            live: 0,
            max_tables,
            last: Cell::new(0),
        }
    }

    /// The allocator (for the unit's own regions).
    pub fn allocator(&self) -> &ContiguousAllocator {
        &self.allocator
    }

    /// Tables handed out now.
    pub fn live_tables(&self) -> usize {
        self.live
    }

    /// The chunk holding `phys` and the offset in it.
    fn locate(&self, phys: u64) -> Option<(&ContiguousRegion, usize)> {
        let hit = |i: usize| {
            let c = self.chunks.get(i)?;
            let off = phys.checked_sub(c.phys())?;
            (off < c.len() as u64).then_some((c, off as usize))
        };
        if let Some(found) = hit(self.last.get()) {
            return Some(found);
        }
        let (_, &i) = self.by_phys.range(..=phys).next_back()?;
        let found = hit(i)?;
        self.last.set(i);
        Some(found)
    }
}

impl PageTableMemory for SchemeTableMemory {
    fn alloc_table(&mut self) -> Result<u64> {
        if self.live >= self.max_tables {
            return Err(Error::new(ENOMEM));
        }
        if self.free.is_empty() {
            let chunk = self
                .allocator
                .alloc(CHUNK_TABLES * TABLE_SIZE as usize)
                .map_err(|_| Error::new(ENOMEM))?;
            let base = chunk.phys();
            // Hand out the lowest table first.
            self.free.extend(
                (0..CHUNK_TABLES as u64)
                    .rev()
                    .map(|i| base + i * TABLE_SIZE),
            );
            self.by_phys.insert(base, self.chunks.len());
            self.chunks.push(chunk);
        }
        let table = self.free.pop().ok_or(Error::new(ENOMEM))?;
        self.live += 1;
        Ok(table)
    }

    fn free_table(&mut self, phys: u64) {
        match self.locate(phys) {
            Some((chunk, off)) if phys.is_multiple_of(TABLE_SIZE) => {
                // Zeroed now, so alloc_table hands out a clean table.
                chunk.zero(off, TABLE_SIZE as usize);
                self.free.push(phys);
                self.live = self.live.saturating_sub(1);
            }
            _ => log::warn!("iommud: free of unknown page table {phys:#x} ignored"),
        }
    }

    fn read_u64(&self, phys: u64) -> u64 {
        match self.locate(phys) {
            Some((chunk, off)) => chunk.read_u64(off),
            None => 0,
        }
    }

    fn write_u64(&mut self, phys: u64, value: u64) {
        if let Some((chunk, off)) = self.locate(phys) {
            chunk.write_u64(off, value);
        }
    }
}
