//! A process's interrupt vectors from the `irq` scheme, chosen without probing and
//! never given back.
//!
//! A vector is reserved by opening `/scheme/irq/cpu-XX/NN` with `O_CREAT`. The
//! Redox kernel never releases it again on x86: closing the handle leaves the vector
//! reserved, and a later open of the same path is `EEXIST` (redox-real.md §1.7).
//! So [`InterruptVectors`]:
//! * seeds a [`VectorMatrix`] of the machine once from the scheme's per-CPU getdents
//!   listings and asks the kernel only for the vector the matrix chose; an `EEXIST`
//!   (someone else took it, or a previous instance of this driver leaked it) leaves
//!   it marked taken and the next one is tried;
//! * keeps every vector a handle stops using open, in a per-CPU idle pool, and hands
//!   it to the next request for that CPU without a kernel call. Nothing is ever
//!   closed while the process lives — a closed vector would only be lost.
//!
//! CPUs are numbered by their position in the listing (`cpu-XX`, ascending). XX is
//! taken as the local APIC id an MSI message names, as upstream `pcid_interface`
//! does with the `bsp` file's id; the kernel builds the list from the MADT.
//!
//! The kernel counts interrupts per IRQ number, not per CPU, so new vectors prefer
//! numbers that neither this process nor (as the listings show) another driver uses
//! on another CPU, and IRQs 0–15 (the legacy lines' counters) are never taken.
//!
//! A recycled vector may report one stale count left from its previous use, and the
//! kernel's counters are per IRQ number across CPUs: drivers treat an interrupt as
//! "look at the device", never as an event count.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use libredox::{Fd, flag};
use syscall::error::{EEXIST, EINVAL, ENODEV, ENOSPC, Error, Result};

use super::handle::{IrqHandle, IrqLine};
use super::listing::{list_dir, read_bsp};
use crate::memory::errno;
use crate::vector::{CpuMask, Vector, VectorAllocation, VectorError, VectorMatrix, spread_cpus};

/// Where the `irq` scheme lives.
pub const IRQ_SCHEME: &str = "/scheme/irq";

pub(super) fn vector_err(e: VectorError) -> Error {
    Error::new(e.errno())
}

/// Counters, for diagnostics and benchmarks.
#[derive(Debug, Default)]
pub struct VectorStats {
    /// Vectors reserved with a kernel call.
    pub kernel_reserves: AtomicU64,
    /// `EEXIST` answers (someone else holds the chosen vector, or it leaked).
    pub collisions: AtomicU64,
}

pub(super) struct IdleVector {
    pub(super) fd: Fd,
    pub(super) vector: Vector,
}

pub(super) struct Inner {
    matrix: VectorMatrix,
    /// Vector numbers (= IRQ numbers + 32) this process holds on any CPU, plus
    /// those the listings showed taken on some CPUs only (someone else's). The
    /// kernel counts interrupts per IRQ number, not per CPU, so two vectors with
    /// one number see each other's interrupts; new vectors prefer numbers not in
    /// here. Only grows: nothing held is ever given back.
    claimed: [AtomicU64; 4],
    apic_ids: Vec<u32>,
    bsp_apic_id: u32,
    idle: Vec<spin::Mutex<Vec<IdleVector>>>,
    stats: VectorStats,
    root: String,
}

impl Inner {
    /// Marks `vector`'s number as held by this process; false if it already was.
    fn claim(&self, vector: Vector) -> bool {
        let (w, b) = (usize::from(vector.0 / 64), 1u64 << (vector.0 % 64));
        self.claimed
            .get(w)
            .is_some_and(|word| word.fetch_or(b, Ordering::AcqRel) & b == 0)
    }

    fn unclaim(&self, vector: Vector) {
        let (w, b) = (usize::from(vector.0 / 64), 1u64 << (vector.0 % 64));
        if let Some(word) = self.claimed.get(w) {
            word.fetch_and(!b, Ordering::AcqRel);
        }
    }

    pub(super) fn apic_id(&self, cpu: u32) -> Option<u32> {
        self.apic_ids.get(cpu as usize).copied()
    }

    /// Keeps a vector this process holds for later (the kernel would never take
    /// it back anyway).
    pub(super) fn park(&self, cpu: u32, vector: Vector, fd: Fd) {
        if let Some(pool) = self.idle.get(cpu as usize) {
            pool.lock().push(IdleVector { fd, vector });
        }
    }

    fn unpark(&self, cpu: u32) -> Option<IdleVector> {
        self.idle.get(cpu as usize)?.lock().pop()
    }

    fn vector_path(&self, cpu: u32, vector: Vector) -> Result<String> {
        let apic = self.apic_id(cpu).ok_or(Error::new(EINVAL))?;
        let irq = vector.irq_number().ok_or(Error::new(EINVAL))?;
        Ok(format!("{}/cpu-{apic:02x}/{irq}", self.root))
    }

    /// Reserves `vector` on `cpu` in the kernel (`O_CREAT`; `O_EXCL` means nothing
    /// there, and the access mode is never checked).
    fn open_vector(&self, cpu: u32, vector: Vector) -> Result<Fd> {
        let path = self.vector_path(cpu, vector)?;
        self.stats.kernel_reserves.fetch_add(1, Ordering::Relaxed);
        Fd::open(&path, flag::O_RDWR | flag::O_CREAT | flag::O_CLOEXEC, 0).map_err(errno)
    }

    /// Bounded retries: every collision removes one vector from the candidates,
    /// so this many attempts covers every vector of every CPU.
    fn max_attempts(&self) -> usize {
        self.apic_ids.len() * 256 + 1
    }

    /// One vector on exactly `cpu`: an idle one, else a new one from the kernel.
    pub(super) fn reserve_on(&self, cpu: u32) -> Result<(Vector, Fd)> {
        if let Some(v) = self.unpark(cpu) {
            return Ok((v.vector, v.fd));
        }
        let a = self.reserve_new(&CpuMask::single(cpu), false)?;
        Ok((a.0.vector, a.1))
    }

    /// A new vector from the kernel, placed by the matrix, preferring a number this
    /// process does not hold on another CPU; one it does hold (a shared counter)
    /// only when nothing else is left in the mask. With `spill`, a full mask falls
    /// back to other CPUs (`affinity_broken`); without, it is `ENOSPC`.
    fn reserve_new(&self, affinity: &CpuMask, spill: bool) -> Result<(VectorAllocation, Fd)> {
        let mut shared: Vec<VectorAllocation> = Vec::new();
        let r = self.reserve_unshared(affinity, spill, &mut shared);
        let r = match r {
            Ok(None) => self.reserve_from(&mut shared),
            other => other,
        };
        for a in shared {
            let _ = self.matrix.free(a.cpu, a.vector);
        }
        r?.ok_or(Error::new(ENOSPC))
    }

    fn reserve_unshared(
        &self,
        affinity: &CpuMask,
        spill: bool,
        shared: &mut Vec<VectorAllocation>,
    ) -> Result<Option<(VectorAllocation, Fd)>> {
        for _ in 0..self.max_attempts() {
            let a = match self.matrix.alloc(affinity) {
                Ok(a) => a,
                Err(VectorError::NoSpace) => return Ok(None),
                Err(e) => return Err(vector_err(e)),
            };
            if a.affinity_broken && (!spill || !shared.is_empty()) {
                // A shared number in the mask beats a CPU outside it.
                let _ = self.matrix.free(a.cpu, a.vector);
                return Ok(None);
            }
            if !self.claim(a.vector) {
                shared.push(a);
                continue;
            }
            match self.open_vector(a.cpu, a.vector) {
                Ok(fd) => return Ok(Some((a, fd))),
                Err(e) => {
                    self.unclaim(a.vector);
                    if e.errno != EEXIST {
                        let _ = self.matrix.free(a.cpu, a.vector);
                        return Err(e);
                    }
                    // Someone else holds it (or an earlier run leaked it): it
                    // stays marked taken, as the kernel will never free it.
                    self.stats.collisions.fetch_add(1, Ordering::Relaxed);
                    log::debug!("irq: vector {} on CPU {} is taken", a.vector, a.cpu);
                }
            }
        }
        Err(Error::new(ENOSPC))
    }

    /// The first of `candidates` the kernel gives us; the rest stay in the list.
    fn reserve_from(
        &self,
        candidates: &mut Vec<VectorAllocation>,
    ) -> Result<Option<(VectorAllocation, Fd)>> {
        while !candidates.is_empty() {
            let a = candidates.remove(0);
            match self.open_vector(a.cpu, a.vector) {
                Ok(fd) => {
                    log::debug!(
                        "irq: vector {} on CPU {} shares its IRQ number with another of ours",
                        a.vector,
                        a.cpu
                    );
                    return Ok(Some((a, fd)));
                }
                Err(e) if e.errno == EEXIST => {
                    self.stats.collisions.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    let _ = self.matrix.free(a.cpu, a.vector);
                    return Err(e);
                }
            }
        }
        Ok(None)
    }
}

/// A process's view of the machine's interrupt vectors (cheap to clone).
#[derive(Clone)]
pub struct InterruptVectors {
    inner: Arc<Inner>,
}

impl core::fmt::Debug for InterruptVectors {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("InterruptVectors")
            .field("apic_ids", &self.inner.apic_ids)
            .field("bsp_apic_id", &self.inner.bsp_apic_id)
            .finish_non_exhaustive()
    }
}

impl InterruptVectors {
    /// Reads the CPUs, the BSP and the free vectors from `/scheme/irq`.
    pub fn open() -> Result<Self> {
        Self::open_at(IRQ_SCHEME)
    }

    /// Like [`InterruptVectors::open`], with the scheme root given.
    pub fn open_at(root: &str) -> Result<Self> {
        let mut apic_ids: Vec<u32> = list_dir(root)?
            .iter()
            .filter_map(|name| name.strip_prefix("cpu-"))
            .filter(|hex| hex.len() == 2)
            .filter_map(|hex| u32::from_str_radix(hex, 16).ok())
            .collect();
        apic_ids.sort_unstable();
        apic_ids.dedup();
        if apic_ids.is_empty() {
            return Err(Error::new(ENODEV));
        }
        let bsp_apic_id = read_bsp(&format!("{root}/bsp"))?;
        // IRQ numbers 0–15 are never taken, on any CPU: they share the kernel's
        // counters with the legacy lines, and acknowledging one unmasks that IOAPIC
        // pin (redox-real.md §1.5). The BSP does not even list them.
        let legacy: Vec<Vector> = (0..16u8).filter_map(Vector::from_irq_number).collect();
        let matrix = VectorMatrix::with_reserved(apic_ids.len(), &legacy).map_err(vector_err)?;
        // Per vector number: on how many CPUs it is free.
        let mut free_on = [0usize; 256];
        for (cpu, apic) in apic_ids.iter().enumerate() {
            let mut is_free = [false; 256];
            for name in list_dir(&format!("{root}/cpu-{apic:02x}"))? {
                if let Ok(irq) = name.parse::<u8>()
                    && let Some(v) = Vector::from_irq_number(irq)
                    && let Some(slot) = is_free.get_mut(usize::from(v.0))
                {
                    *slot = true;
                    if let Some(n) = free_on.get_mut(usize::from(v.0)) {
                        *n += 1;
                    }
                }
            }
            for v in 0..=255u8 {
                let vector = Vector(v);
                if matrix.is_allocatable(vector)
                    && !is_free.get(usize::from(v)).copied().unwrap_or(false)
                {
                    // Reserved by the kernel, another driver, or an earlier run.
                    let _ = matrix.reserve(cpu as u32, vector);
                }
            }
        }
        // A number free on some CPUs but taken on others is (most likely) another
        // driver's IRQ number, whose kernel counter we would share: claimed up
        // front, so it is only used when nothing better is left.
        let claimed: [AtomicU64; 4] = Default::default();
        for (v, &n) in free_on.iter().enumerate() {
            if n > 0 && n < apic_ids.len() {
                let (w, b) = (v / 64, 1u64 << (v % 64));
                if let Some(word) = claimed.get(w) {
                    word.fetch_or(b, Ordering::Relaxed);
                }
            }
        }
        let idle = (0..apic_ids.len())
            .map(|_| spin::Mutex::new(Vec::new()))
            .collect();
        Ok(Self {
            inner: Arc::new(Inner {
                matrix,
                apic_ids,
                bsp_apic_id,
                idle,
                claimed,
                stats: VectorStats::default(),
                root: root.to_string(),
            }),
        })
    }

    /// Number of CPUs.
    pub fn cpu_count(&self) -> usize {
        self.inner.apic_ids.len()
    }

    /// All CPUs.
    pub fn all_cpus(&self) -> CpuMask {
        CpuMask::first(self.cpu_count())
    }

    /// The boot CPU's local APIC id (from `/scheme/irq/bsp`).
    pub fn bsp_apic_id(&self) -> u32 {
        self.inner.bsp_apic_id
    }

    /// The boot CPU's index.
    pub fn bsp_cpu(&self) -> u32 {
        self.inner
            .apic_ids
            .iter()
            .position(|&a| a == self.inner.bsp_apic_id)
            .unwrap_or(0) as u32
    }

    /// The APIC id of CPU `cpu`.
    pub fn apic_id(&self, cpu: u32) -> Option<u32> {
        self.inner.apic_id(cpu)
    }

    /// Vectors of `cpu` neither this process nor (as of the listing) anyone else holds.
    pub fn free_count(&self, cpu: u32) -> Result<u32> {
        self.inner.matrix.free_count(cpu).map_err(vector_err)
    }

    /// The vectors this process holds idle on `cpu`, ready for reuse.
    pub fn idle_vectors(&self, cpu: u32) -> Vec<Vector> {
        self.inner
            .idle
            .get(cpu as usize)
            .map(|p| p.lock().iter().map(|v| v.vector).collect())
            .unwrap_or_default()
    }

    /// Counters.
    pub fn stats(&self) -> &VectorStats {
        &self.inner.stats
    }

    fn take_idle(&self, affinity: &CpuMask) -> Option<IrqHandle> {
        for cpu in affinity.iter() {
            // Not counted: the hot path stays free of shared counters; recycling
            // shows as `kernel_reserves` not moving.
            if let Some(v) = self.inner.unpark(cpu) {
                return Some(self.handle(cpu, v.vector, v.fd, false));
            }
        }
        None
    }

    fn handle(&self, cpu: u32, vector: Vector, fd: Fd, affinity_broken: bool) -> IrqHandle {
        IrqHandle::new(
            fd,
            IrqLine::Vector { cpu, vector },
            self.apic_id(cpu).unwrap_or(0),
            affinity_broken,
            Some(self.inner.clone()),
        )
    }

    /// Reserves one vector on the CPU of `affinity` with the most free vectors
    /// (its lowest free one whose IRQ number this process does not already use on
    /// another CPU); when every CPU of the mask is full, on another CPU with
    /// [`IrqHandle::affinity_broken`] set. `ENOSPC` when none is left. An idle
    /// vector on a CPU of the mask (first CPU first) is reused before the kernel
    /// is asked.
    pub fn reserve(&self, affinity: &CpuMask) -> Result<IrqHandle> {
        if let Some(h) = self.take_idle(affinity) {
            return Ok(h);
        }
        let (a, fd) = self.inner.reserve_new(affinity, true)?;
        Ok(self.handle(a.cpu, a.vector, fd, a.affinity_broken))
    }

    /// One vector per queue, queue i on CPU i of the mask round-robin (starting at
    /// the `rotate`-th), spilling to other CPUs when one is full. All-or-nothing
    /// (what was reserved goes to the idle pool on failure).
    pub fn reserve_spread(
        &self,
        count: usize,
        mask: &CpuMask,
        rotate: usize,
    ) -> Result<Vec<IrqHandle>> {
        let mask = mask.intersection(&self.all_cpus());
        let cpus = spread_cpus(count, &mask, rotate);
        if cpus.len() != count {
            return Err(Error::new(EINVAL));
        }
        cpus.iter()
            .map(|&cpu| self.reserve(&CpuMask::single(cpu)))
            .collect()
    }

    /// `count` (a power of two ≤ 32) consecutive vectors aligned to `count` on one
    /// CPU — what multi-message MSI needs — in ascending order. A vector inside the
    /// chosen block that turns out taken (`EEXIST`) makes it try the next block; the
    /// vectors already opened go to the idle pool.
    pub fn reserve_block(&self, affinity: &CpuMask, count: u32) -> Result<Vec<IrqHandle>> {
        if count == 1 {
            return self.reserve(affinity).map(|h| vec![h]);
        }
        for _ in 0..self.inner.max_attempts() {
            let b = self
                .inner
                .matrix
                .alloc_block(affinity, count)
                .map_err(vector_err)?;
            let mut got = Vec::with_capacity(count as usize);
            let mut failed = None;
            for i in 0..count {
                let v = Vector(b.first.0 + i as u8);
                // A block is used as a whole: numbers shared with our other vectors
                // are accepted here rather than searched around.
                let fresh = self.inner.claim(v);
                match self.inner.open_vector(b.cpu, v) {
                    Ok(fd) => got.push(self.handle(b.cpu, v, fd, b.affinity_broken)),
                    Err(e) => {
                        if fresh {
                            self.inner.unclaim(v);
                        }
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            let Some((i, e)) = failed else {
                return Ok(got);
            };
            // Opened ones are ours for good: into the pool (dropping does that).
            drop(got);
            for j in (i + 1)..count {
                let _ = self.inner.matrix.free(b.cpu, Vector(b.first.0 + j as u8));
            }
            if e.errno == EEXIST {
                self.inner.stats.collisions.fetch_add(1, Ordering::Relaxed);
            } else {
                let _ = self.inner.matrix.free(b.cpu, Vector(b.first.0 + i as u8));
                return Err(e);
            }
        }
        Err(Error::new(ENOSPC))
    }

    /// Opens legacy INTx line `line` (`/scheme/irq/<line>`, shareable, nothing
    /// reserved; the kernel delivers legacy lines to the BSP only).
    pub fn open_legacy(&self, line: u8) -> Result<IrqHandle> {
        let fd = Fd::open(
            &format!("{}/{line}", self.inner.root),
            flag::O_RDWR | flag::O_CLOEXEC,
            0,
        )
        .map_err(errno)?;
        Ok(IrqHandle::new(
            fd,
            IrqLine::Legacy(line),
            self.inner.bsp_apic_id,
            false,
            None,
        ))
    }
}
