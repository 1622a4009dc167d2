//! The mocked `irq` scheme, a copy of the Redox kernel's (`redox-os/kernel`
//! `src/scheme/irq.rs`, redox-real.md §1), bugs included.
//!
//! Paths (relative to `/scheme/irq/`, leading `/` ignored):
//! * `` — the top-level directory (needs `O_DIRECTORY` or `O_STAT`, else `EISDIR`);
//!   getdents lists `bsp` and one `cpu-%02x` per CPU.
//! * `bsp` — reads the BSP's APIC id as a **u32** but reports 8 bytes.
//! * `cpu-XX` (exactly two hex digits) — a per-CPU directory; getdents lists the free
//!   IRQ numbers (vector − 32) of that CPU, the BSP's without those below 16.
//! * `cpu-XX/N` — IRQ N on that CPU: a legacy handle for N < 16 on the BSP, otherwise
//!   it needs `O_CREAT` (reserves vector N + 32, `EEXIST` if taken) or `O_STAT`.
//! * `N` (decimal, < 16) — a legacy IRQ handle, shareable, nothing reserved.
//!
//! An IRQ handle reads the IRQ's 8-byte count when it differs from the handle's
//! acknowledged count and **0 at once** otherwise; writing back the current count
//! acknowledges. There is no affinity file, and a closed vector is never released.
//!
//! The host side ([`IrqScheme::raise`], [`IrqScheme::raise_legacy`]) is the interrupt
//! controller and the kernel's interrupt entry (`src/arch/x86_shared/interrupt/irq.rs`).

mod idt;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use syscall::data::Stat;
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{EACCES, EBADF, EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, Error, Result};
use syscall::flag::{EventFlags, MODE_CHR, MODE_DIR, O_CREAT, O_DIRECTORY, O_STAT};

use crate::kernel::kscheme::{Caller, EventPort, KernelScheme};
use crate::kernel::wait::lock;

use idt::Idt;

/// IRQ numbers the scheme knows: 0..=223 (vectors 32..=255).
pub const TOTAL_IRQ_COUNT: usize = 224;
/// Legacy IRQs 0..=15 (vectors 32..=47 on the BSP), opened without `O_CREAT`.
pub const BASE_IRQ_COUNT: u8 = 16;
/// The most CPUs the scheme names (`cpu-XX` is one byte).
pub const MAX_CPUS: usize = 256;

const INO_TOPLEVEL: u64 = 0x8002_0000_0000_0000;
const INO_AVAIL: u64 = 0x8000_0000_0000_0000;
const INO_BSP: u64 = 0x8001_0000_0000_0000;

/// The legacy IRQs the kernel handles itself (PIT, keyboard, cascade, COM2, COM1,
/// mouse): kernel `src/arch/x86_shared/interrupt/irq.rs` never triggers the scheme
/// for them.
const KERNEL_LEGACY_IRQS: [u8; 6] = [0, 1, 2, 3, 4, 12];

/// The BSP's logical CPU id (and, in the simulated machine, its APIC id).
const BSP: u8 = 0;

#[derive(Clone, Copy, Debug)]
enum Handle {
    TopLevel,
    Bsp,
    /// A per-CPU directory.
    Avail(u8),
    /// An IRQ: which number, and the count last acknowledged through this handle.
    /// It does not record its CPU (nor does the kernel's).
    Irq {
        irq: u8,
        ack: usize,
    },
}

struct State {
    handles: BTreeMap<usize, Handle>,
    /// Kernel `COUNTS`: one counter per IRQ number, shared by every CPU.
    counts: [usize; TOTAL_IRQ_COUNT],
    /// One IDT per CPU, indexed by logical CPU id.
    idts: Vec<Idt>,
    /// Legacy lines masked after firing, until an acknowledgement unmasks them.
    legacy_masked: [bool; BASE_IRQ_COUNT as usize],
}

/// The `irq` scheme and the simulated interrupt controller behind it.
pub struct IrqScheme {
    cpus: usize,
    state: Mutex<State>,
    next: AtomicUsize,
    events: EventPort,
}

fn irq_to_vector(irq: u8) -> u8 {
    irq.saturating_add(32)
}

impl IrqScheme {
    /// A controller for `cpus` CPUs (logical ids and APIC ids 0..cpus, CPU 0 the BSP).
    pub fn new(cpus: usize, events: EventPort) -> Self {
        let cpus = cpus.clamp(1, MAX_CPUS);
        Self {
            cpus,
            state: Mutex::new(State {
                handles: BTreeMap::new(),
                counts: [0; TOTAL_IRQ_COUNT],
                idts: (0..cpus)
                    .map(|c| Idt::boot(c == usize::from(BSP)))
                    .collect(),
                legacy_masked: [false; BASE_IRQ_COUNT as usize],
            }),
            next: AtomicUsize::new(1),
            events,
        }
    }

    /// Number of CPUs.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    /// Kernel `irq_trigger`: counts the interrupt and posts `EVENT_READ` to every
    /// open handle of that IRQ number, whatever CPU it was opened for
    /// (`src/scheme/irq.rs`). Returns whether any handle was open.
    fn trigger(&self, irq: u8) -> bool {
        let handles: Vec<usize> = {
            let mut st = lock(&self.state);
            if let Some(c) = st.counts.get_mut(usize::from(irq)) {
                *c = c.wrapping_add(1);
            }
            st.handles
                .iter()
                .filter(|(_, h)| matches!(h, Handle::Irq { irq: n, .. } if *n == irq))
                .map(|(id, _)| *id)
                .collect()
        };
        for &h in &handles {
            self.events.post(h, EventFlags::EVENT_READ.bits() as u32);
        }
        !handles.is_empty()
    }

    /// A message-signalled interrupt arrives at vector `irq + 32` of CPU `cpu` (its
    /// local APIC id). Kernel `src/arch/x86_shared/idt.rs` points every vector of
    /// 32..=255 at the generic entry, which triggers IRQ `vector − 32` and sends the
    /// LAPIC EOI at once — no masking, so the count keeps growing without any ack
    /// (`interrupt/irq.rs`). Vectors the kernel handles itself (exceptions, IPIs,
    /// LAPIC timer and error) never reach the scheme; vectors 32..=47 of the BSP are
    /// the legacy IRQ entries ([`IrqScheme::raise_legacy`]). Returns whether a handle
    /// of that IRQ number was open (false: nobody listens, or no such CPU).
    pub fn raise(&self, cpu: usize, irq: usize) -> bool {
        let Ok(irq) = u8::try_from(irq) else {
            return false;
        };
        if cpu >= self.cpus || usize::from(irq) >= TOTAL_IRQ_COUNT {
            return false;
        }
        let is_bsp = cpu == usize::from(BSP);
        if is_bsp && irq < BASE_IRQ_COUNT {
            return self.raise_legacy(usize::from(irq));
        }
        if Idt::is_kernel_vector(irq_to_vector(irq), is_bsp) {
            return false;
        }
        self.trigger(irq)
    }

    /// The IOAPIC asserts legacy line `line` (routed to the BSP). Kernel
    /// `src/arch/x86_shared/interrupt/irq.rs`: the line is masked, the scheme
    /// triggered, EOI sent; it stays masked until an acknowledgement. The simulated
    /// MADT has no interrupt source overrides, so the lines are ISA edge-triggered
    /// (`device/ioapic.rs`): an edge while the line is masked is lost. Lines the kernel
    /// owns (0–4, 12) never reach the scheme. Returns whether a handle was open.
    pub fn raise_legacy(&self, line: usize) -> bool {
        let Ok(line) = u8::try_from(line) else {
            return false;
        };
        if line >= BASE_IRQ_COUNT || KERNEL_LEGACY_IRQS.contains(&line) {
            return false;
        }
        {
            let mut st = lock(&self.state);
            let Some(masked) = st.legacy_masked.get_mut(usize::from(line)) else {
                return false;
            };
            if *masked {
                return false;
            }
            *masked = true;
        }
        self.trigger(line)
    }

    /// Whether vector `irq + 32` of `cpu` is reserved in its IDT (by the kernel at
    /// boot or through this scheme).
    pub fn is_reserved(&self, cpu: usize, irq: usize) -> bool {
        let Ok(irq) = u8::try_from(irq) else {
            return false;
        };
        lock(&self.state).idts.get(cpu).is_some_and(|idt| {
            usize::from(irq) < TOTAL_IRQ_COUNT && idt.is_reserved(irq_to_vector(irq))
        })
    }

    /// Vectors reserved through the scheme over all CPUs (those reserved at boot
    /// not counted). Never goes down on x86: closing releases nothing.
    pub fn reserved_vectors(&self) -> usize {
        let st = lock(&self.state);
        st.idts
            .iter()
            .enumerate()
            .map(|(c, idt)| {
                let boot = Idt::boot(c == usize::from(BSP)).reserved_count();
                idt.reserved_count().saturating_sub(boot)
            })
            .sum()
    }

    /// The count of IRQ `irq` (kernel `COUNTS[irq]`).
    pub fn count(&self, irq: usize) -> usize {
        lock(&self.state).counts.get(irq).copied().unwrap_or(0)
    }

    /// Whether legacy line `line` is masked, waiting for an acknowledgement.
    pub fn is_legacy_masked(&self, line: usize) -> bool {
        lock(&self.state)
            .legacy_masked
            .get(line)
            .copied()
            .unwrap_or(false)
    }

    fn cpu_exists(&self, cpu: u8) -> bool {
        usize::from(cpu) < self.cpus
    }

    /// Kernel `open_ext_irq` (`src/scheme/irq.rs`): `cpu-XX/N`.
    fn open_ext_irq(&self, st: &mut State, flags: usize, cpu: u8, num: &str) -> Result<Handle> {
        // Rust `u8::from_str`, as the kernel: `05` and `+5` parse, hex does not.
        let irq: u8 = num.parse().map_err(|_| Error::new(ENOENT))?;
        if irq < BASE_IRQ_COUNT && cpu == BSP {
            // `cpu-<BSP>/0..15` is the same legacy handle as plain `0..15`.
            return Ok(Handle::Irq { irq, ack: 0 });
        }
        if usize::from(irq) >= TOTAL_IRQ_COUNT {
            return Err(Error::new(ENOENT));
        }
        if flags & O_CREAT == 0 && flags & O_STAT == 0 {
            return Err(Error::new(EINVAL));
        }
        // O_EXCL is never looked at.
        if flags & O_STAT == 0 {
            let idt = st
                .idts
                .get_mut(usize::from(cpu))
                .ok_or(Error::new(ENOENT))?;
            let vector = irq_to_vector(irq);
            if idt.is_reserved(vector) {
                return Err(Error::new(EEXIST));
            }
            idt.set_reserved(vector, true);
        }
        Ok(Handle::Irq { irq, ack: 0 })
    }

    /// Kernel `kopen` path grammar (`src/scheme/irq.rs`).
    fn parse(&self, st: &mut State, path: &str, flags: usize) -> Result<Handle> {
        let path = path.trim_start_matches('/');
        if path.is_empty() {
            if flags & O_DIRECTORY == 0 && flags & O_STAT == 0 {
                return Err(Error::new(EISDIR));
            }
            return Ok(Handle::TopLevel);
        }
        if path == "bsp" {
            return Ok(Handle::Bsp);
        }
        if let Some(rest) = path.strip_prefix("cpu-") {
            // The kernel slices two bytes without a length check: a shorter path (or
            // a multibyte character) would panic it. Daemons must never send one; the
            // mock answers ENOENT instead of crashing.
            let digits = rest.get(..2).ok_or(Error::new(ENOENT))?;
            let cpu = u8::from_str_radix(digits, 16).map_err(|_| Error::new(ENOENT))?;
            // A CPU without an IDT panics the kernel (`idt.rs` `is_reserved` unwraps);
            // the mock refuses it.
            if !self.cpu_exists(cpu) {
                return Err(Error::new(ENOENT));
            }
            let rest = rest.get(2..).unwrap_or("").trim_end_matches('/');
            if rest.is_empty() {
                return Ok(Handle::Avail(cpu));
            }
            let num = rest.strip_prefix('/').ok_or(Error::new(ENOENT))?;
            return self.open_ext_irq(st, flags, cpu, num);
        }
        // `phandle-…` exists only on DTB kernels (aarch64, riscv64); x86 falls through.
        match path.parse::<u8>() {
            Ok(irq) if irq < BASE_IRQ_COUNT => Ok(Handle::Irq { irq, ack: 0 }),
            _ => Err(Error::new(ENOENT)),
        }
    }

    fn handle(&self, h: usize) -> Result<Handle> {
        lock(&self.state)
            .handles
            .get(&h)
            .copied()
            .ok_or(Error::new(EBADF))
    }
}

/// Writes `value` as a native-endian usize (the simulated machine is x86_64).
fn put_usize(buf: &mut [u8], value: usize) -> Result<()> {
    let bytes = value.to_ne_bytes();
    buf.get_mut(..bytes.len())
        .ok_or(Error::new(EINVAL))?
        .copy_from_slice(&bytes);
    Ok(())
}

impl KernelScheme for IrqScheme {
    /// Kernel `kopen`: EACCES for every non-root caller before the path is looked at.
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize> {
        if !caller.is_root() {
            return Err(Error::new(EACCES));
        }
        let mut st = lock(&self.state);
        let handle = self.parse(&mut st, path, flags)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        st.handles.insert(id, handle);
        Ok(id)
    }

    /// Opens must be relative to the scheme root (redox-real.md §1.1, kernel
    /// `kopenat` in `src/scheme/irq.rs`): relative to any other irq handle, EACCES.
    fn check_openat_dir(&self, dir: usize) -> Result<()> {
        match self.handle(dir)? {
            Handle::TopLevel => Ok(()),
            _ => Err(Error::new(EACCES)),
        }
    }

    /// Kernel `kreadoff` (`src/scheme/irq.rs`).
    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let width = std::mem::size_of::<usize>();
        let st = lock(&self.state);
        match st.handles.get(&h).copied().ok_or(Error::new(EBADF))? {
            Handle::Irq { irq, ack } => {
                if buf.len() < width {
                    return Err(Error::new(EINVAL));
                }
                let current = st.counts.get(usize::from(irq)).copied().unwrap_or(0);
                // Never blocks and never EAGAIN, whatever O_NONBLOCK says.
                if ack == current {
                    return Ok(0);
                }
                put_usize(buf, current)?;
                Ok(width)
            }
            Handle::Bsp => {
                if buf.len() < width {
                    return Err(Error::new(EINVAL));
                }
                // A u32 is written, 8 reported; the upper bytes stay as they were.
                let id = u32::from(BSP).to_ne_bytes();
                buf.get_mut(..4)
                    .ok_or(Error::new(EINVAL))?
                    .copy_from_slice(&id);
                Ok(width)
            }
            Handle::Avail(_) | Handle::TopLevel => Err(Error::new(EISDIR)),
        }
    }

    /// Kernel `kwrite` (`src/scheme/irq.rs`): acknowledges only the current count.
    fn write(&self, h: usize, buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let width = std::mem::size_of::<usize>();
        let mut st = lock(&self.state);
        let Some(Handle::Irq { irq, .. }) = st.handles.get(&h).copied() else {
            return Err(Error::new(EBADF));
        };
        let bytes: [u8; 8] = buf
            .get(..width)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::new(EINVAL))?;
        let value = usize::from_ne_bytes(bytes);
        let current = st.counts.get(usize::from(irq)).copied().unwrap_or(0);
        if value != current {
            return Ok(0);
        }
        if let Some(Handle::Irq { ack, .. }) = st.handles.get_mut(&h) {
            *ack = value;
        }
        // `acknowledge(irq)`: unmask the line (`interrupt/irq.rs`; in APIC mode
        // `ioapic::unmask(irq)`, which only legacy lines have in this machine).
        if let Some(m) = st.legacy_masked.get_mut(usize::from(irq)) {
            *m = false;
        }
        Ok(width)
    }

    /// Kernel `getdents` (`src/scheme/irq.rs`): the top level lists `bsp` and every
    /// `cpu-%02x`; a CPU lists its free vectors as decimal IRQ numbers (the BSP's from
    /// 16). As in the kernel, a continuation skips `opaque` *entries* of a CPU listing
    /// although `next_opaque_id` is vector + 1, and an entry that does not fit fails
    /// the whole call with `EINVAL` (relibc then retries with a larger buffer).
    fn getdents(&self, h: usize, buf: &mut [u8], header_size: u16, opaque: u64) -> Result<usize> {
        let Ok(opaque) = usize::try_from(opaque) else {
            return Ok(0);
        };
        let mut out = DirentBuf::new(buf, header_size).ok_or(Error::new(EIO))?;
        let mut name = String::new();
        let st = lock(&self.state);
        match st.handles.get(&h).copied().ok_or(Error::new(EBADF))? {
            Handle::TopLevel => {
                if opaque == 0 {
                    out.entry(DirEntry {
                        inode: 0,
                        next_opaque_id: 1,
                        kind: DirentKind::CharDev,
                        name: "bsp",
                    })?;
                }
                for cpu in (0..self.cpus).filter(|&c| opaque <= c) {
                    name.clear();
                    let _ = write!(name, "cpu-{cpu:02x}");
                    out.entry(DirEntry {
                        inode: 0,
                        next_opaque_id: cpu as u64 + 1,
                        kind: DirentKind::Directory,
                        name: &name,
                    })?;
                }
            }
            Handle::Avail(cpu) => {
                let idt = st.idts.get(usize::from(cpu)).ok_or(Error::new(ENOENT))?;
                for vector in idt.available().skip(opaque) {
                    let irq = vector - 32;
                    if cpu == BSP && irq < BASE_IRQ_COUNT {
                        continue;
                    }
                    name.clear();
                    let _ = write!(name, "{irq}");
                    out.entry(DirEntry {
                        inode: 0,
                        next_opaque_id: u64::from(vector) + 1,
                        kind: DirentKind::CharDev,
                        name: &name,
                    })?;
                }
            }
            Handle::Bsp | Handle::Irq { .. } => return Err(Error::new(ENOTDIR)),
        }
        Ok(out.finalize())
    }

    /// Kernel `kfpath` (`src/scheme/irq.rs`): the old colon format; the per-CPU
    /// directory's id is space-padded (`{:2x}`).
    fn fpath(&self, h: usize) -> Option<Result<String>> {
        Some(self.handle(h).map(|handle| match handle {
            Handle::Irq { irq, .. } => format!("irq:{irq}"),
            Handle::Bsp => "irq:bsp".to_string(),
            Handle::Avail(cpu) => format!("irq:cpu-{cpu:2x}"),
            Handle::TopLevel => "irq:".to_string(),
        }))
    }

    /// Kernel `kfstat` (`src/scheme/irq.rs`).
    fn fstat(&self, h: usize) -> Result<Stat> {
        let width = std::mem::size_of::<usize>();
        Ok(match self.handle(h)? {
            Handle::Irq { irq, .. } => Stat {
                st_mode: MODE_CHR | 0o600,
                st_size: width as u64,
                st_blocks: 1,
                st_blksize: width as u32,
                st_ino: u64::from(irq),
                st_nlink: 1,
                ..Stat::default()
            },
            Handle::Bsp => Stat {
                st_mode: MODE_CHR | 0o400,
                st_size: width as u64,
                st_blocks: 1,
                st_blksize: width as u32,
                st_ino: INO_BSP,
                st_nlink: 1,
                ..Stat::default()
            },
            Handle::Avail(cpu) => Stat {
                st_mode: MODE_DIR | 0o700,
                st_ino: INO_AVAIL | (u64::from(cpu) << 32),
                st_nlink: 2,
                ..Stat::default()
            },
            Handle::TopLevel => Stat {
                st_mode: MODE_DIR | 0o500,
                st_ino: INO_TOPLEVEL,
                st_nlink: 1,
                ..Stat::default()
            },
        })
    }

    /// Kernel `fevent` (`src/scheme/irq.rs`): always empty, so subscribing after an
    /// interrupt fired posts nothing (`src/event.rs`); a driver reads once after
    /// subscribing.
    fn fevent(&self, h: usize, _flags: u32) -> Result<u32> {
        self.handle(h).map(|_| 0)
    }

    /// Kernel `close` (`src/scheme/irq.rs`, after `372cd19b`): the handle goes away;
    /// for IRQ > 16 (not ≥ 16) it clears vector IRQ + 32 **on the BSP**, whatever CPU
    /// reserved it, and on x86 that clear is a no-op (`idt.rs` `set_reserved` is a
    /// `fetch_or`). So a closed vector is never released: reopening it is `EEXIST`.
    fn close(&self, h: usize) {
        let mut st = lock(&self.state);
        if let Some(Handle::Irq { irq, .. }) = st.handles.remove(&h)
            && irq > BASE_IRQ_COUNT
            && let Some(bsp) = st.idts.get_mut(usize::from(BSP))
        {
            bsp.set_reserved(irq_to_vector(irq), false);
        }
    }
}
