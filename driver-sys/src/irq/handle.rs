//! Interrupt vectors from the `irq` scheme, chosen without probing.
//!
//! Upstream drivers reserve a vector by opening `/scheme/irq/cpu-XX/NN` with
//! `O_CREAT` for NN = 0, 1, 2, … until one does not fail with `EEXIST`: one
//! kernel round trip per taken vector. [`InterruptVectors`] instead keeps a
//! [`VectorMatrix`] of the machine, seeded once from the scheme's per-CPU
//! listings of free vectors, and asks the kernel only for the vector the matrix
//! chose. If another process took it meanwhile (`EEXIST`), the vector stays
//! marked taken and the next one is tried.
//!
//! Released vectors are kept reserved, open, in a small per-CPU pool and handed
//! to the next request for that CPU without any kernel call. That is not only
//! faster: the upstream Redox kernel never returns a closed vector to its pool,
//! so a driver that closes and re-opens vectors leaks them there. A recycled
//! vector may report one stale interrupt left from its previous use — harmless,
//! as drivers treat an interrupt as "look at the device", not as an event count.
//!
//! CPUs are numbered by their position in the scheme's listing (`cpu-XX`, XX =
//! the local APIC id, ascending); [`IrqHandle::apic_id`] gives the id an MSI
//! message needs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use event::{EventFlags, EventQueue, UserData};
use libredox::{Fd, flag};
use syscall::error::{EEXIST, EINVAL, EIO, ENODEV, ENOSPC, Error, Result};

use crate::memory::errno;
use crate::msi::{MsiMessage, X86MsiTarget};
use crate::vector::{CpuMask, Vector, VectorError, VectorMatrix, spread_cpus};

/// Idle vectors kept per CPU by default.
pub const DEFAULT_IDLE_PER_CPU: usize = 32;

/// Where the `irq` scheme lives.
pub const IRQ_SCHEME: &str = "/scheme/irq";

fn vector_err(e: VectorError) -> Error {
    Error::new(e.errno())
}

fn read_all(path: &str) -> Result<Vec<u8>> {
    let fd = Fd::open(path, flag::O_RDONLY | flag::O_CLOEXEC, 0).map_err(errno)?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = fd.read(&mut buf).map_err(errno)?;
        if n == 0 {
            break;
        }
        out.extend_from_slice(buf.get(..n).unwrap_or_default());
        // Listings are produced in one piece; a short read is the end.
        if n < buf.len() || out.len() > 1 << 20 {
            break;
        }
    }
    Ok(out)
}

/// Counters, for diagnostics and benchmarks.
#[derive(Debug, Default)]
pub struct VectorStats {
    /// Vectors reserved with a kernel call.
    pub kernel_reserves: AtomicU64,
    /// `EEXIST` answers (someone else took the chosen vector).
    pub collisions: AtomicU64,
}

struct IdleVector {
    fd: Fd,
    vector: Vector,
}

struct Inner {
    matrix: VectorMatrix,
    apic_ids: Vec<u32>,
    bsp_apic_id: u32,
    idle: Vec<spin::Mutex<Vec<IdleVector>>>,
    idle_limit: usize,
    stats: VectorStats,
    root: String,
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
        Self::open_at(IRQ_SCHEME, DEFAULT_IDLE_PER_CPU)
    }

    /// Like [`InterruptVectors::open`], with the scheme root and the idle-pool size
    /// per CPU given (0 = release vectors to the kernel at once).
    pub fn open_at(root: &str, idle_per_cpu: usize) -> Result<Self> {
        let listing = read_all(root)?;
        let text = core::str::from_utf8(&listing).map_err(|_| Error::new(EIO))?;
        let mut apic_ids: Vec<u32> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix("cpu-"))
            .filter_map(|hex| u32::from_str_radix(hex, 16).ok())
            .collect();
        apic_ids.sort_unstable();
        apic_ids.dedup();
        if apic_ids.is_empty() {
            return Err(Error::new(ENODEV));
        }
        let bsp = read_all(&format!("{root}/bsp"))?;
        let bsp_apic_id = bsp
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or(Error::new(EIO))?;
        let matrix = VectorMatrix::new(apic_ids.len()).map_err(vector_err)?;
        for (cpu, apic) in apic_ids.iter().enumerate() {
            let free = read_all(&format!("{root}/cpu-{apic:02x}"))?;
            let free = core::str::from_utf8(&free).map_err(|_| Error::new(EIO))?;
            let mut is_free = [false; 256];
            for irq in free.lines().filter_map(|l| l.trim().parse::<u8>().ok()) {
                if let Some(v) = Vector::from_irq_number(irq)
                    && let Some(slot) = is_free.get_mut(usize::from(v.0))
                {
                    *slot = true;
                }
            }
            for v in 0..=255u8 {
                let vector = Vector(v);
                if matrix.is_allocatable(vector)
                    && !is_free.get(usize::from(v)).copied().unwrap_or(false)
                {
                    // Taken by someone else before we started.
                    let _ = matrix.reserve(cpu as u32, vector);
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
                idle_limit: idle_per_cpu,
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
        self.inner.apic_ids.get(cpu as usize).copied()
    }

    /// Free vectors on `cpu`, as this process sees them.
    pub fn free_count(&self, cpu: u32) -> Result<u32> {
        self.inner.matrix.free_count(cpu).map_err(vector_err)
    }

    /// Counters.
    pub fn stats(&self) -> &VectorStats {
        &self.inner.stats
    }

    fn take_idle(&self, affinity: &CpuMask) -> Option<IrqHandle> {
        if self.inner.idle_limit == 0 {
            return None;
        }
        for cpu in affinity.iter() {
            let pool = self.inner.idle.get(cpu as usize)?;
            // Not counted: the hot path stays free of shared counters; recycling
            // shows as `kernel_reserves` not moving.
            if let Some(v) = pool.lock().pop() {
                return Some(self.handle(cpu, v.vector, v.fd, false));
            }
        }
        None
    }

    fn handle(&self, cpu: u32, vector: Vector, fd: Fd, affinity_broken: bool) -> IrqHandle {
        IrqHandle {
            fd: Some(fd),
            line: IrqLine::Vector { cpu, vector },
            apic_id: self.apic_id(cpu).unwrap_or(0),
            affinity_broken,
            owner: Some(self.inner.clone()),
        }
    }

    fn vector_path(&self, cpu: u32, vector: Vector) -> Result<String> {
        let apic = self.apic_id(cpu).ok_or(Error::new(EINVAL))?;
        let irq = vector.irq_number().ok_or(Error::new(EINVAL))?;
        Ok(format!("{}/cpu-{apic:02x}/{irq}", self.inner.root))
    }

    fn open_vector(&self, cpu: u32, vector: Vector) -> Result<Fd> {
        let path = self.vector_path(cpu, vector)?;
        self.inner
            .stats
            .kernel_reserves
            .fetch_add(1, Ordering::Relaxed);
        Fd::open(&path, flag::O_RDWR | flag::O_CREAT | flag::O_CLOEXEC, 0).map_err(errno)
    }

    /// Bounded retries: every collision removes one vector from the candidates,
    /// so this many attempts covers every vector of every CPU.
    fn max_attempts(&self) -> usize {
        self.cpu_count() * 256 + 1
    }

    /// Reserves one vector on the CPU of `affinity` with the most free vectors
    /// (its lowest free one); when every CPU of the mask is full, on another CPU
    /// with [`IrqHandle::affinity_broken`] set. `ENOSPC` when none is left.
    /// An idle pooled vector on a CPU of the mask (first CPU first) is reused
    /// before the matrix is asked.
    pub fn reserve(&self, affinity: &CpuMask) -> Result<IrqHandle> {
        if let Some(h) = self.take_idle(affinity) {
            return Ok(h);
        }
        for _ in 0..self.max_attempts() {
            let a = self.inner.matrix.alloc(affinity).map_err(vector_err)?;
            match self.open_vector(a.cpu, a.vector) {
                Ok(fd) => return Ok(self.handle(a.cpu, a.vector, fd, a.affinity_broken)),
                Err(e) if e.errno == EEXIST => {
                    // Someone else holds it: it stays marked taken in our matrix.
                    self.inner.stats.collisions.fetch_add(1, Ordering::Relaxed);
                    log::debug!("irq: vector {} on CPU {} taken elsewhere", a.vector, a.cpu);
                }
                Err(e) => {
                    let _ = self.inner.matrix.free(a.cpu, a.vector);
                    return Err(e);
                }
            }
        }
        Err(Error::new(ENOSPC))
    }

    /// One vector per queue, queue i on CPU i of the mask round-robin (starting at
    /// the `rotate`-th), spilling to other CPUs when one is full. All-or-nothing.
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
        // On error the handles reserved so far drop back into the pool.
        cpus.iter()
            .map(|&cpu| self.reserve(&CpuMask::single(cpu)))
            .collect()
    }

    /// `count` (a power of two ≤ 32) consecutive vectors aligned to `count` on one
    /// CPU — what multi-message MSI needs — in ascending order.
    pub fn reserve_block(&self, affinity: &CpuMask, count: u32) -> Result<Vec<IrqHandle>> {
        if count == 1 {
            return self.reserve(affinity).map(|h| vec![h]);
        }
        for _ in 0..self.max_attempts() {
            let b = self
                .inner
                .matrix
                .alloc_block(affinity, count)
                .map_err(vector_err)?;
            let mut got = Vec::with_capacity(count as usize);
            let mut failed = None;
            for i in 0..count {
                let v = Vector(b.first.0 + i as u8);
                match self.open_vector(b.cpu, v) {
                    Ok(fd) => got.push(self.handle(b.cpu, v, fd, b.affinity_broken)),
                    Err(e) => {
                        failed = Some((i, e));
                        break;
                    }
                }
            }
            let Some((i, e)) = failed else {
                return Ok(got);
            };
            // Give back what we opened (straight to the kernel: a block is rare),
            // and the vectors after the failing one; keep the failing one taken
            // if someone else owns it.
            for mut h in got {
                h.close_now();
            }
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

    /// Opens legacy INTx line `line` (`/scheme/irq/<line>`, shareable).
    pub fn open_legacy(&self, line: u8) -> Result<IrqHandle> {
        let fd = Fd::open(
            &format!("{}/{line}", self.inner.root),
            flag::O_RDWR | flag::O_CLOEXEC,
            0,
        )
        .map_err(errno)?;
        Ok(IrqHandle {
            fd: Some(fd),
            line: IrqLine::Legacy(line),
            apic_id: self.inner.bsp_apic_id,
            affinity_broken: false,
            owner: None,
        })
    }
}

/// What an [`IrqHandle`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqLine {
    /// A vector on a CPU (MSI / MSI-X).
    Vector {
        /// CPU index.
        cpu: u32,
        /// IDT vector.
        vector: Vector,
    },
    /// A legacy INTx line.
    Legacy(u8),
}

/// One reserved interrupt: read it to wait, write the count back to acknowledge.
pub struct IrqHandle {
    fd: Option<Fd>,
    line: IrqLine,
    apic_id: u32,
    affinity_broken: bool,
    owner: Option<Arc<Inner>>,
}

impl core::fmt::Debug for IrqHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IrqHandle")
            .field("line", &self.line)
            .field("apic_id", &self.apic_id)
            .field("affinity_broken", &self.affinity_broken)
            .finish()
    }
}

impl IrqHandle {
    /// The fd (for an event loop).
    pub fn fd(&self) -> usize {
        self.fd.as_ref().map(Fd::raw).unwrap_or(usize::MAX)
    }

    fn fd_ref(&self) -> Result<&Fd> {
        self.fd.as_ref().ok_or(Error::new(EINVAL))
    }

    /// What it holds.
    pub fn line(&self) -> IrqLine {
        self.line
    }

    /// The vector (legacy line L is vector L + 32).
    pub fn vector(&self) -> Vector {
        match self.line {
            IrqLine::Vector { vector, .. } => vector,
            IrqLine::Legacy(l) => Vector(l.saturating_add(32)),
        }
    }

    /// CPU index (the BSP's for a legacy line).
    pub fn cpu(&self) -> Option<u32> {
        match self.line {
            IrqLine::Vector { cpu, .. } => Some(cpu),
            IrqLine::Legacy(_) => None,
        }
    }

    /// Local APIC id of the target CPU.
    pub fn apic_id(&self) -> u32 {
        self.apic_id
    }

    /// The CPU is outside the affinity asked for (every CPU in it was full).
    pub fn affinity_broken(&self) -> bool {
        self.affinity_broken
    }

    /// The MSI message that targets this vector (fixed, edge, physical).
    pub fn msi_message(&self) -> Result<MsiMessage> {
        X86MsiTarget::fixed(self.apic_id, self.vector().0)
            .compose()
            .map_err(|_| Error::new(EINVAL))
    }

    /// Blocks (unless non-blocking) until the interrupt fired; returns the count
    /// to acknowledge with [`IrqHandle::ack`]. `EAGAIN` when non-blocking and idle.
    pub fn wait(&self) -> Result<u64> {
        let mut b = [0u8; 8];
        let n = self.fd_ref()?.read(&mut b).map_err(errno)?;
        if n != 8 {
            return Err(Error::new(EIO));
        }
        Ok(u64::from_le_bytes(b))
    }

    /// Acknowledges: writes the count back.
    pub fn ack(&self, count: u64) -> Result<()> {
        self.fd_ref()?
            .write(&count.to_le_bytes())
            .map_err(errno)
            .map(drop)
    }

    /// Switches between blocking and non-blocking reads.
    pub fn set_nonblocking(&self, on: bool) -> Result<()> {
        let fd = self.fd_ref()?;
        let flags = fd.fcntl(syscall::F_GETFL, 0).map_err(errno)?;
        let nb = flag::O_NONBLOCK as usize;
        let new = if on { flags | nb } else { flags & !nb };
        fd.fcntl(syscall::F_SETFL, new).map_err(errno).map(drop)
    }

    /// Subscribes the handle to `queue` for readability.
    pub fn subscribe<U: UserData>(&self, queue: &EventQueue<U>, data: U) -> Result<()> {
        queue
            .subscribe(self.fd(), data, EventFlags::READ)
            .map_err(errno)
    }

    /// Moves the vector to the same vector number on `cpu` through the scheme's
    /// `affinity` file. The MSI message must be reprogrammed afterwards
    /// ([`IrqHandle::msi_message`] reflects the move). `EEXIST` if taken there.
    pub fn set_affinity(&mut self, cpu: u32) -> Result<()> {
        let IrqLine::Vector { cpu: old, vector } = self.line else {
            return Err(Error::new(EINVAL));
        };
        let Some(owner) = self.owner.clone() else {
            return Err(Error::new(EINVAL));
        };
        if cpu == old {
            return Ok(());
        }
        let apic = *owner.apic_ids.get(cpu as usize).ok_or(Error::new(EINVAL))?;
        owner.matrix.reserve(cpu, vector).map_err(vector_err)?;
        let old_apic = owner.apic_ids.get(old as usize).copied().unwrap_or(0);
        let irq = vector.irq_number().unwrap_or(0);
        let path = format!("{}/cpu-{old_apic:02x}/{irq}/affinity", owner.root);
        let r = Fd::open(&path, flag::O_WRONLY | flag::O_CLOEXEC, 0)
            .and_then(|fd| fd.write(format!("{apic:02x}").as_bytes()));
        if let Err(e) = r {
            let _ = owner.matrix.free(cpu, vector);
            return Err(errno(e));
        }
        let _ = owner.matrix.free(old, vector);
        self.line = IrqLine::Vector { cpu, vector };
        self.apic_id = apic;
        self.affinity_broken = false;
        Ok(())
    }

    /// Closes the vector in the kernel instead of pooling it.
    fn close_now(&mut self) {
        self.fd = None;
        if let (Some(owner), IrqLine::Vector { cpu, vector }) = (self.owner.take(), self.line) {
            let _ = owner.matrix.free(cpu, vector);
        }
    }

    /// Releases the vector to the kernel (not to this process's idle pool).
    pub fn release(mut self) {
        self.close_now();
    }
}

impl Drop for IrqHandle {
    fn drop(&mut self) {
        let (Some(owner), IrqLine::Vector { cpu, vector }) = (self.owner.take(), self.line) else {
            return;
        };
        let Some(fd) = self.fd.take() else { return };
        if let Some(pool) = owner.idle.get(cpu as usize) {
            let mut p = pool.lock();
            if p.len() < owner.idle_limit {
                p.push(IdleVector { fd, vector });
                return;
            }
        }
        drop(fd);
        let _ = owner.matrix.free(cpu, vector);
    }
}
