//! The DSMIL MMIO window: 360 MiB of device registers, mapped 4 MiB at a
//! time on demand, with a bounded number of chunks resident.

use syscall::error::{EINVAL, Error, Result};

/// Size of the whole window.
pub const MMIO_WINDOW_SIZE: u64 = 360 * 1024 * 1024;
/// Size of one mapping.
pub const MMIO_CHUNK_SIZE: u64 = 4 * 1024 * 1024;
/// Chunks in the window.
pub const MMIO_CHUNK_COUNT: usize = (MMIO_WINDOW_SIZE / MMIO_CHUNK_SIZE) as usize;
/// Default bound on resident chunks (16 MiB of mappings).
pub const DEFAULT_MAX_RESIDENT: usize = 4;

const _: () = assert!(MMIO_CHUNK_COUNT == 90);
const _: () = assert!(MMIO_WINDOW_SIZE.is_multiple_of(MMIO_CHUNK_SIZE));

/// One mapped chunk of physical memory.
///
/// The window only calls these with `offset + len ≤ MMIO_CHUNK_SIZE`;
/// implementations use volatile accesses. Dropping the value unmaps it.
pub trait MmioChunk {
    /// Copies `out.len()` bytes from `offset` in the chunk.
    fn read(&self, offset: usize, out: &mut [u8]);
    /// Copies `data` to `offset` in the chunk.
    fn write(&mut self, offset: usize, data: &[u8]);
}

/// Maps physical memory (on Redox: `physmap` through the `memory` scheme).
pub trait PhysMapper {
    /// The mapping type; dropping it unmaps.
    type Chunk: MmioChunk;
    /// Maps `len` bytes at physical address `phys` (uncached, for MMIO).
    fn map(&mut self, phys: u64, len: usize) -> Result<Self::Chunk>;
}

struct Resident<M> {
    index: usize,
    last_used: u64,
    mapping: M,
}

/// Counters for `stats` and `health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmioCounters {
    /// Chunks mapped.
    pub maps: u64,
    /// Chunks unmapped to make room.
    pub evictions: u64,
    /// Accesses served by an already-resident chunk.
    pub hits: u64,
    /// Accesses refused by the bounds check.
    pub rejected: u64,
}

/// The window: every access is bounds-checked against the 360 MiB, split
/// at chunk boundaries, and served by a chunk mapped on first touch.
///
/// At most `max_resident` chunks are mapped at once; mapping another first
/// unmaps the least recently used one, so residency never exceeds the
/// bound even for a moment. Mapping the whole window would pin 360 MiB of
/// address space for registers that are touched sparsely.
pub struct MmioWindow<P: PhysMapper> {
    mapper: P,
    base: u64,
    max_resident: usize,
    resident: Vec<Resident<P::Chunk>>,
    clock: u64,
    counters: MmioCounters,
}

impl<P: PhysMapper> MmioWindow<P> {
    /// A window at physical `base` with at most `max_resident` chunks mapped.
    /// `EINVAL` if `max_resident` is 0 or more than 90, or the window would
    /// wrap the physical address space.
    pub fn new(mapper: P, base: u64, max_resident: usize) -> Result<MmioWindow<P>> {
        if max_resident == 0 || max_resident > MMIO_CHUNK_COUNT {
            return Err(Error::new(EINVAL));
        }
        base.checked_add(MMIO_WINDOW_SIZE)
            .ok_or(Error::new(EINVAL))?;
        Ok(MmioWindow {
            mapper,
            base,
            max_resident,
            resident: Vec::with_capacity(max_resident),
            clock: 0,
            counters: MmioCounters::default(),
        })
    }

    /// Physical address of offset 0.
    pub fn base(&self) -> u64 {
        self.base
    }

    /// The residency bound.
    pub fn max_resident(&self) -> usize {
        self.max_resident
    }

    /// Indices of the chunks mapped now, in no particular order.
    pub fn resident_chunks(&self) -> impl Iterator<Item = usize> + '_ {
        self.resident.iter().map(|r| r.index)
    }

    /// Totals so far.
    pub fn counters(&self) -> MmioCounters {
        self.counters
    }

    /// Copies `out.len()` bytes from window offset `offset`; `EINVAL` if any
    /// byte lies outside the window.
    pub fn read(&mut self, offset: u64, out: &mut [u8]) -> Result<()> {
        self.check(offset, out.len())?;
        let mut done = 0;
        while done < out.len() {
            let at = offset + done as u64;
            let (chunk, within, len) = split(at, out.len() - done);
            let dst = out.get_mut(done..done + len).ok_or(Error::new(EINVAL))?;
            self.chunk(chunk)?.read(within, dst);
            done += len;
        }
        Ok(())
    }

    /// Copies `data` to window offset `offset`; `EINVAL` if any byte lies
    /// outside the window.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> Result<()> {
        self.check(offset, data.len())?;
        let mut done = 0;
        while done < data.len() {
            let at = offset + done as u64;
            let (chunk, within, len) = split(at, data.len() - done);
            let src = data.get(done..done + len).ok_or(Error::new(EINVAL))?;
            self.chunk(chunk)?.write(within, src);
            done += len;
        }
        Ok(())
    }

    /// Reads a little-endian `u32` register at `offset`.
    pub fn read_u32(&mut self, offset: u64) -> Result<u32> {
        let mut raw = [0u8; 4];
        self.read(offset, &mut raw)?;
        Ok(u32::from_le_bytes(raw))
    }

    /// Writes a little-endian `u32` register at `offset`.
    pub fn write_u32(&mut self, offset: u64, value: u32) -> Result<()> {
        self.write(offset, &value.to_le_bytes())
    }

    /// Unmaps every chunk (on idle housekeeping, or before shutdown).
    pub fn unmap_all(&mut self) {
        self.resident.clear();
    }

    fn check(&mut self, offset: u64, len: usize) -> Result<()> {
        let end = u64::try_from(len)
            .ok()
            .and_then(|len| offset.checked_add(len));
        match end {
            Some(end) if end <= MMIO_WINDOW_SIZE => Ok(()),
            _ => {
                self.counters.rejected += 1;
                Err(Error::new(EINVAL))
            }
        }
    }

    /// The mapping of chunk `index`, mapping it (and evicting the least
    /// recently used one if at the bound) when not resident.
    fn chunk(&mut self, index: usize) -> Result<&mut P::Chunk> {
        self.clock += 1;
        let now = self.clock;
        let slot = match self.resident.iter().position(|r| r.index == index) {
            Some(slot) => {
                self.counters.hits += 1;
                slot
            }
            None => {
                if self.resident.len() >= self.max_resident
                    && let Some(lru) = self
                        .resident
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, r)| r.last_used)
                        .map(|(slot, _)| slot)
                {
                    // Unmap before mapping, so the bound holds throughout.
                    drop(self.resident.swap_remove(lru));
                    self.counters.evictions += 1;
                }
                // index < 90, so this is at most 356 MiB past base, which
                // `new` checked cannot overflow.
                let phys = self.base + index as u64 * MMIO_CHUNK_SIZE;
                let mapping = self.mapper.map(phys, MMIO_CHUNK_SIZE as usize)?;
                self.counters.maps += 1;
                self.resident.push(Resident {
                    index,
                    last_used: now,
                    mapping,
                });
                self.resident.len() - 1
            }
        };
        let resident = self.resident.get_mut(slot).ok_or(Error::new(EINVAL))?;
        resident.last_used = now;
        Ok(&mut resident.mapping)
    }
}

/// Chunk index, offset within it, and how many of `len` bytes fit in it.
fn split(at: u64, len: usize) -> (usize, usize, usize) {
    let chunk = (at / MMIO_CHUNK_SIZE) as usize;
    let within = (at % MMIO_CHUNK_SIZE) as usize;
    let room = MMIO_CHUNK_SIZE as usize - within;
    (chunk, within, len.min(room))
}
