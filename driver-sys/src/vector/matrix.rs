//! The vector matrix: which interrupt vectors are free on which CPU.
//!
//! Modelled on Linux's `irq_matrix`, without its lock. Each CPU has a 256-bit
//! bitmap in four `AtomicU64` words where a set bit means "free"; allocating
//! clears a bit with compare-and-swap, freeing sets it with `fetch_or`. A
//! 256-bit `allocatable` mask, fixed at construction, says which vectors may
//! ever be handed out (0x20..=0xEF minus what the kernel reserved), so system
//! vectors can never be freed into the pool and a double free is detected.
//!
//! Spreading: a new vector goes to the CPU in the affinity mask with the most
//! free vectors (per-CPU atomic counters), then that CPU's lowest free vector.
//! If every CPU in the mask is full the vector comes from the best CPU outside
//! the mask and the result says `affinity_broken` (and it is logged), instead
//! of failing — a driver with a slightly worse interrupt placement beats a
//! driver that does not start.
//!
//! The counters are a placement hint, updated after the bitmap change; under
//! contention they can briefly lag the bitmaps, which only affects which CPU
//! is tried first, never correctness: a vector is owned by whoever cleared its
//! bit, and exactly one CAS can do that.

use core::sync::atomic::{AtomicI32, AtomicU64, Ordering};

use syscall::error::{EEXIST, EINVAL, ENOENT, ENOSPC};

use super::cpu_mask::{CpuMask, MAX_CPUS};
use super::number::{FIRST_DEVICE_VECTOR, LAST_DEVICE_VECTOR, Vector};

const WORDS: usize = 4;

/// Why a vector operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VectorError {
    /// No free vector (or aligned block) on any eligible CPU.
    NoSpace,
    /// The CPU number is not below [`VectorMatrix::cpu_count`].
    NoSuchCpu(u32),
    /// The vector is outside the allocatable set (exception, system, or
    /// reserved at construction).
    NotAllocatable(Vector),
    /// The vector is already allocated.
    InUse {
        /// CPU.
        cpu: u32,
        /// Vector.
        vector: Vector,
    },
    /// Freeing a vector that is not allocated.
    DoubleFree {
        /// CPU.
        cpu: u32,
        /// Vector.
        vector: Vector,
    },
    /// Block sizes are powers of two from 1 to 32.
    BadBlockSize(u32),
    /// The affinity mask names no CPU of this matrix.
    EmptyMask,
    /// More CPUs than [`MAX_CPUS`], or none.
    BadCpuCount(usize),
}

impl VectorError {
    /// The errno a scheme should answer with.
    pub fn errno(&self) -> i32 {
        match self {
            Self::NoSpace => ENOSPC,
            Self::NoSuchCpu(_) => ENOENT,
            Self::InUse { .. } => EEXIST,
            Self::NotAllocatable(_)
            | Self::DoubleFree { .. }
            | Self::BadBlockSize(_)
            | Self::EmptyMask
            | Self::BadCpuCount(_) => EINVAL,
        }
    }
}

impl core::fmt::Display for VectorError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::NoSpace => write!(f, "no free interrupt vector"),
            Self::NoSuchCpu(c) => write!(f, "no CPU {c}"),
            Self::NotAllocatable(v) => write!(f, "vector {v} is not allocatable"),
            Self::InUse { cpu, vector } => write!(f, "vector {vector} on CPU {cpu} is in use"),
            Self::DoubleFree { cpu, vector } => {
                write!(f, "vector {vector} on CPU {cpu} freed but not allocated")
            }
            Self::BadBlockSize(n) => write!(f, "block of {n} vectors: need a power of two <= 32"),
            Self::EmptyMask => write!(f, "affinity mask has no CPU"),
            Self::BadCpuCount(n) => write!(f, "{n} CPUs: need 1..={MAX_CPUS}"),
        }
    }
}

impl std::error::Error for VectorError {}

/// One vector handed out by [`VectorMatrix::alloc`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VectorAllocation {
    /// CPU the vector belongs to.
    pub cpu: u32,
    /// The vector.
    pub vector: Vector,
    /// The affinity mask was exhausted, so `cpu` is outside it.
    pub affinity_broken: bool,
}

/// An aligned block handed out by [`VectorMatrix::alloc_block`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VectorBlock {
    /// CPU the vectors belong to.
    pub cpu: u32,
    /// First vector, aligned to `count`.
    pub first: Vector,
    /// Number of vectors.
    pub count: u32,
    /// The affinity mask was exhausted, so `cpu` is outside it.
    pub affinity_broken: bool,
}

/// One CPU's bitmap and free counter, on its own cache line so CPUs
/// allocating on different CPUs do not contend.
#[repr(align(64))]
struct CpuVectors {
    free: [AtomicU64; WORDS],
    free_count: AtomicI32,
}

/// Per-CPU interrupt vector allocation.
pub struct VectorMatrix {
    cpus: Box<[CpuVectors]>,
    allocatable: [u64; WORDS],
    /// CPUs `0..cpus.len()`, kept so the fast path does not rebuild it.
    all: CpuMask,
}

impl core::fmt::Debug for VectorMatrix {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("VectorMatrix")
            .field("cpus", &self.cpus.len())
            .field("allocatable_per_cpu", &self.allocatable_per_cpu())
            .finish()
    }
}

fn bit(vector: Vector) -> (usize, u64) {
    (usize::from(vector.0 / 64), 1u64 << (vector.0 % 64))
}

fn block_mask(count: u32) -> u64 {
    // count <= 32, so this never shifts by 64.
    (1u64 << count) - 1
}

impl VectorMatrix {
    /// A matrix for `cpu_count` CPUs with vectors 0x20..=0xEF allocatable.
    pub fn new(cpu_count: usize) -> Result<Self, VectorError> {
        Self::with_reserved(cpu_count, &[])
    }

    /// Like [`VectorMatrix::new`], but `reserved` vectors are taken out of the
    /// pool on every CPU for good — e.g. the legacy IRQ vectors 0x20..=0x2F or a
    /// kernel's timer vector. Vectors outside 0x20..=0xEF are ignored: they are
    /// never allocatable anyway.
    pub fn with_reserved(cpu_count: usize, reserved: &[Vector]) -> Result<Self, VectorError> {
        if cpu_count == 0 || cpu_count > MAX_CPUS {
            return Err(VectorError::BadCpuCount(cpu_count));
        }
        let mut allocatable = [0u64; WORDS];
        for v in FIRST_DEVICE_VECTOR..=LAST_DEVICE_VECTOR {
            let (w, b) = bit(Vector(v));
            if let Some(word) = allocatable.get_mut(w) {
                *word |= b;
            }
        }
        for &v in reserved {
            let (w, b) = bit(v);
            if let Some(word) = allocatable.get_mut(w) {
                *word &= !b;
            }
        }
        let per_cpu: u32 = allocatable.iter().map(|w| w.count_ones()).sum();
        let cpus = (0..cpu_count)
            .map(|_| CpuVectors {
                free: allocatable.map(AtomicU64::new),
                free_count: AtomicI32::new(per_cpu as i32),
            })
            .collect();
        Ok(Self {
            cpus,
            allocatable,
            all: CpuMask::first(cpu_count),
        })
    }

    /// Number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.cpus.len()
    }

    /// Vectors each CPU can hand out when nothing is allocated.
    pub fn allocatable_per_cpu(&self) -> u32 {
        self.allocatable.iter().map(|w| w.count_ones()).sum()
    }

    /// Whether `vector` is in the allocatable set.
    pub fn is_allocatable(&self, vector: Vector) -> bool {
        let (w, b) = bit(vector);
        self.allocatable.get(w).is_some_and(|word| word & b != 0)
    }

    fn cpu(&self, cpu: u32) -> Result<&CpuVectors, VectorError> {
        self.cpus
            .get(cpu as usize)
            .ok_or(VectorError::NoSuchCpu(cpu))
    }

    /// Free vectors on `cpu` (exact when no allocation is in flight).
    pub fn free_count(&self, cpu: u32) -> Result<u32, VectorError> {
        let c = self.cpu(cpu)?;
        Ok(c.free
            .iter()
            .map(|w| w.load(Ordering::Acquire).count_ones())
            .sum())
    }

    /// Whether `vector` on `cpu` is currently allocated (or reserved).
    pub fn is_allocated(&self, cpu: u32, vector: Vector) -> Result<bool, VectorError> {
        let c = self.cpu(cpu)?;
        if !self.is_allocatable(vector) {
            return Err(VectorError::NotAllocatable(vector));
        }
        let (w, b) = bit(vector);
        Ok(c.free
            .get(w)
            .is_some_and(|word| word.load(Ordering::Acquire) & b == 0))
    }

    /// Takes the lowest free vector of a CPU, or `None` if it has none.
    fn take_lowest(&self, c: &CpuVectors) -> Option<Vector> {
        for (w, word) in c.free.iter().enumerate() {
            let mut cur = word.load(Ordering::Relaxed);
            while cur != 0 {
                let b = cur.trailing_zeros();
                match word.compare_exchange_weak(
                    cur,
                    cur & !(1u64 << b),
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        c.free_count.fetch_sub(1, Ordering::Relaxed);
                        return Some(Vector((w * 64) as u8 + b as u8));
                    }
                    Err(actual) => cur = actual,
                }
            }
        }
        None
    }

    /// Takes the lowest aligned run of `count` free vectors of a CPU.
    fn take_block(&self, c: &CpuVectors, count: u32) -> Option<Vector> {
        let mask = block_mask(count);
        for (w, word) in c.free.iter().enumerate() {
            let mut cur = word.load(Ordering::Relaxed);
            'retry: loop {
                let mut start = 0;
                while start < 64 {
                    let want = mask << start;
                    if cur & want == want {
                        match word.compare_exchange_weak(
                            cur,
                            cur & !want,
                            Ordering::AcqRel,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => {
                                c.free_count.fetch_sub(count as i32, Ordering::Relaxed);
                                return Some(Vector((w * 64) as u8 + start as u8));
                            }
                            Err(actual) => {
                                cur = actual;
                                continue 'retry;
                            }
                        }
                    }
                    start += count;
                }
                break;
            }
        }
        None
    }

    /// The untried CPU of `candidates` with the most free vectors (lowest
    /// number on ties).
    fn best_cpu(&self, candidates: &CpuMask) -> Option<u32> {
        let mut best: Option<(u32, i32)> = None;
        for cpu in candidates.iter() {
            let Some(c) = self.cpus.get(cpu as usize) else {
                break;
            };
            let free = c.free_count.load(Ordering::Relaxed);
            if best.is_none_or(|(_, f)| free > f) {
                best = Some((cpu, free));
            }
        }
        best.map(|(cpu, _)| cpu)
    }

    /// Runs `take` on the CPUs of `candidates`, best first, until one succeeds.
    fn spread<T>(
        &self,
        candidates: CpuMask,
        take: impl Fn(&CpuVectors) -> Option<T>,
    ) -> Option<(u32, T)> {
        let mut left = candidates;
        while let Some(cpu) = self.best_cpu(&left) {
            if let Some(c) = self.cpus.get(cpu as usize)
                && let Some(v) = take(c)
            {
                return Some((cpu, v));
            }
            left.remove(cpu);
        }
        None
    }

    /// Picks a CPU from `affinity`, falling back to any other CPU; returns
    /// the CPU, the result, and whether the fallback was used.
    fn place<T>(
        &self,
        affinity: &CpuMask,
        what: core::fmt::Arguments<'_>,
        take: impl Fn(&CpuVectors) -> Option<T> + Copy,
    ) -> Result<(u32, T, bool), VectorError> {
        let all = self.all;
        let wanted = affinity.intersection(&all);
        if wanted.is_empty() {
            return Err(VectorError::EmptyMask);
        }
        if let Some((cpu, v)) = self.spread(wanted, take) {
            return Ok((cpu, v, false));
        }
        let (cpu, v) = self
            .spread(all.difference(&wanted), take)
            .ok_or(VectorError::NoSpace)?;
        log::warn!("{what}: affinity mask exhausted, using CPU {cpu} (affinity broken)");
        Ok((cpu, v, true))
    }

    /// Allocates one vector on the CPU of `affinity` with the most free
    /// vectors (its lowest free vector), or — when all of them are full — on
    /// the best other CPU with `affinity_broken` set.
    pub fn alloc(&self, affinity: &CpuMask) -> Result<VectorAllocation, VectorError> {
        let (cpu, vector, affinity_broken) =
            self.place(affinity, format_args!("vector allocation"), |c| {
                self.take_lowest(c)
            })?;
        Ok(VectorAllocation {
            cpu,
            vector,
            affinity_broken,
        })
    }

    /// Allocates the lowest free vector on `cpu`, with no fallback.
    pub fn alloc_on(&self, cpu: u32) -> Result<Vector, VectorError> {
        self.take_lowest(self.cpu(cpu)?).ok_or(VectorError::NoSpace)
    }

    fn check_block(count: u32) -> Result<(), VectorError> {
        if count == 0 || count > 32 || !count.is_power_of_two() {
            return Err(VectorError::BadBlockSize(count));
        }
        Ok(())
    }

    /// Allocates `count` (power of two ≤ 32) consecutive vectors aligned to
    /// `count` on one CPU — what multi-message MSI needs — placed like
    /// [`VectorMatrix::alloc`].
    pub fn alloc_block(&self, affinity: &CpuMask, count: u32) -> Result<VectorBlock, VectorError> {
        Self::check_block(count)?;
        let (cpu, first, affinity_broken) =
            self.place(affinity, format_args!("block of {count} vectors"), |c| {
                self.take_block(c, count)
            })?;
        Ok(VectorBlock {
            cpu,
            first,
            count,
            affinity_broken,
        })
    }

    /// Allocates an aligned block on `cpu`, with no fallback.
    pub fn alloc_block_on(&self, cpu: u32, count: u32) -> Result<Vector, VectorError> {
        Self::check_block(count)?;
        self.take_block(self.cpu(cpu)?, count)
            .ok_or(VectorError::NoSpace)
    }

    /// Takes the specific `vector` on `cpu` (what opening `cpu-XX/NN` with
    /// `O_CREAT` does). `InUse` (`EEXIST`) if it is taken.
    pub fn reserve(&self, cpu: u32, vector: Vector) -> Result<(), VectorError> {
        let c = self.cpu(cpu)?;
        if !self.is_allocatable(vector) {
            return Err(VectorError::NotAllocatable(vector));
        }
        let (w, b) = bit(vector);
        let word = c.free.get(w).ok_or(VectorError::NotAllocatable(vector))?;
        if word.fetch_and(!b, Ordering::AcqRel) & b == 0 {
            return Err(VectorError::InUse { cpu, vector });
        }
        c.free_count.fetch_sub(1, Ordering::Relaxed);
        Ok(())
    }

    /// Returns `vector` on `cpu` to the pool. Freeing a vector that is not
    /// allocated is `DoubleFree` and changes nothing.
    pub fn free(&self, cpu: u32, vector: Vector) -> Result<(), VectorError> {
        let c = self.cpu(cpu)?;
        if !self.is_allocatable(vector) {
            return Err(VectorError::NotAllocatable(vector));
        }
        let (w, b) = bit(vector);
        let word = c.free.get(w).ok_or(VectorError::NotAllocatable(vector))?;
        if word.fetch_or(b, Ordering::AcqRel) & b != 0 {
            return Err(VectorError::DoubleFree { cpu, vector });
        }
        c.free_count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Frees a block from [`VectorMatrix::alloc_block`]. All-or-nothing: if any
    /// vector of the block is not allocated, nothing is freed.
    pub fn free_block(&self, cpu: u32, first: Vector, count: u32) -> Result<(), VectorError> {
        Self::check_block(count)?;
        let c = self.cpu(cpu)?;
        if u32::from(first.0) % count != 0 {
            return Err(VectorError::NotAllocatable(first));
        }
        let (w, _) = bit(first);
        let want = block_mask(count) << (first.0 % 64);
        if self.allocatable.get(w).is_none_or(|a| a & want != want) {
            return Err(VectorError::NotAllocatable(first));
        }
        let word = c.free.get(w).ok_or(VectorError::NotAllocatable(first))?;
        let mut cur = word.load(Ordering::Relaxed);
        loop {
            if cur & want != 0 {
                let taken = (cur & want).trailing_zeros() - u32::from(first.0 % 64);
                return Err(VectorError::DoubleFree {
                    cpu,
                    vector: Vector(first.0 + taken as u8),
                });
            }
            match word.compare_exchange_weak(cur, cur | want, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        c.free_count.fetch_add(count as i32, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
