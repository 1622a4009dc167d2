//! The mocked `irq` scheme: interrupt vectors per CPU, as the Redox kernel serves them.
//!
//! Paths (relative to `/scheme/irq/`):
//! * `bsp` — 8 bytes, the boot CPU's local APIC id (little-endian).
//! * `cpu-XX` (hex) — lists the free irq numbers of that CPU, one per line.
//! * `cpu-XX/NN` (decimal) — opened with `O_CREAT` reserves irq NN (vector NN + 32);
//!   `EEXIST` when taken. Reading blocks until the vector fired, then returns the
//!   8-byte interrupt count; writing those bytes back acknowledges. Closing returns the
//!   vector to the pool (the upstream kernel leaks it; we do not).
//! * `cpu-XX/NN/affinity` — read: the CPU (hex) the vector is bound to; write a CPU
//!   number to move the reservation to the same irq number on that CPU (`EEXIST` if
//!   taken there). The driver must then reprogram its MSI message.
//! * `N` (0–15) — legacy INTx lines, shareable.
//!
//! Which vectors are taken is kept in a [`VectorMatrix`], the per-CPU bitmaps the
//! kernel side of a Redox system would use; the per-line counters sit beside it.
//!
//! The host side ([`IrqScheme::raise`]) is the interrupt controller: it makes the
//! vector's handle readable and posts `EVENT_READ`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use syscall::error::{EACCES, EAGAIN, EBADF, EEXIST, EINVAL, ENOENT, Error, Result};
use syscall::flag::{EventFlags, O_CREAT, O_NONBLOCK};

use driver_sys::vector::{MAX_CPUS, Vector, VectorMatrix};

use crate::kernel::kscheme::{Caller, EventPort, KernelScheme};
use crate::kernel::wait::{Waitpoint, lock};

/// Irq numbers a CPU offers: vectors 0x20..=0xEF (0xF0.. are the kernel's).
pub const IRQS_PER_CPU: usize = 0xEF - 0x20 + 1;
/// Legacy (ISA/INTx) lines.
pub const LEGACY_LINES: usize = 16;

#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
enum Line {
    Vector { cpu: usize, irq: usize },
    Legacy(usize),
}

#[derive(Clone, Copy, Debug)]
enum Handle {
    Root,
    Bsp,
    CpuDir(usize),
    Line(Line),
    Affinity(Line),
}

#[derive(Default)]
struct LineState {
    count: u64,
    acked: u64,
    users: usize,
}

#[derive(Default)]
struct State {
    handles: HashMap<usize, Handle>,
    lines: HashMap<Line, LineState>,
}

/// The `irq` scheme and the simulated interrupt controller behind it.
pub struct IrqScheme {
    cpus: usize,
    matrix: VectorMatrix,
    state: Mutex<State>,
    next: AtomicUsize,
    fired: Waitpoint,
    events: EventPort,
}

fn parse_cpu(s: &str) -> Option<usize> {
    let hex = s.strip_prefix("cpu-")?;
    usize::from_str_radix(hex, 16).ok()
}

impl IrqScheme {
    /// A controller for `cpus` CPUs.
    pub fn new(cpus: usize, events: EventPort) -> Self {
        let cpus = cpus.clamp(1, MAX_CPUS);
        Self {
            cpus,
            matrix: VectorMatrix::new(cpus)
                .unwrap_or_else(|e| panic!("redox-host: vector matrix for {cpus} CPUs: {e}")),
            state: Mutex::new(State::default()),
            next: AtomicUsize::new(1),
            fired: Waitpoint::default(),
            events,
        }
    }

    /// Number of CPUs.
    pub fn cpus(&self) -> usize {
        self.cpus
    }

    fn parse(&self, path: &str) -> Result<Handle> {
        let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
        let cpu = |s: &str| {
            parse_cpu(s)
                .filter(|&c| c < self.cpus)
                .ok_or(Error::new(ENOENT))
        };
        let irq = |s: &str| {
            s.parse::<usize>()
                .ok()
                .filter(|&n| n < IRQS_PER_CPU)
                .ok_or(Error::new(ENOENT))
        };
        Ok(match parts.as_slice() {
            [] => Handle::Root,
            ["bsp"] => Handle::Bsp,
            [c] if c.starts_with("cpu-") => Handle::CpuDir(cpu(c)?),
            [n] => {
                let n: usize = n.parse().map_err(|_| Error::new(ENOENT))?;
                if n >= LEGACY_LINES {
                    return Err(Error::new(ENOENT));
                }
                Handle::Line(Line::Legacy(n))
            }
            [c, n] => Handle::Line(Line::Vector {
                cpu: cpu(c)?,
                irq: irq(n)?,
            }),
            [c, n, "affinity"] => Handle::Affinity(Line::Vector {
                cpu: cpu(c)?,
                irq: irq(n)?,
            }),
            _ => return Err(Error::new(ENOENT)),
        })
    }

    fn listing(&self, h: Handle) -> Option<String> {
        match h {
            Handle::Root => {
                let mut s = String::from("bsp\n");
                for c in 0..self.cpus {
                    s.push_str(&format!("cpu-{c:02x}\n"));
                }
                Some(s)
            }
            Handle::CpuDir(cpu) => Some(
                (0..IRQS_PER_CPU)
                    .filter(|&irq| !self.taken(cpu, irq))
                    .map(|irq| format!("{irq}\n"))
                    .collect(),
            ),
            _ => None,
        }
    }

    /// The host raises vector `irq + 32` on `cpu`. Returns false if nobody reserved it
    /// (a spurious interrupt).
    pub fn raise(&self, cpu: usize, irq: usize) -> bool {
        self.raise_line(Line::Vector { cpu, irq })
    }

    /// The host asserts legacy line `line`.
    pub fn raise_legacy(&self, line: usize) -> bool {
        self.raise_line(Line::Legacy(line))
    }

    fn raise_line(&self, line: Line) -> bool {
        let handles: Vec<usize> = {
            let mut st = lock(&self.state);
            let Some(ls) = st.lines.get_mut(&line) else {
                return false;
            };
            ls.count += 1;
            st.handles
                .iter()
                .filter(|(_, h)| matches!(h, Handle::Line(l) if *l == line))
                .map(|(id, _)| *id)
                .collect()
        };
        self.fired.notify();
        for h in handles {
            self.events.post(h, EventFlags::EVENT_READ.bits() as u32);
        }
        true
    }

    /// Whether irq `irq` of `cpu` is reserved.
    pub fn is_reserved(&self, cpu: usize, irq: usize) -> bool {
        self.taken(cpu, irq)
    }

    fn vector(irq: usize) -> Vector {
        Vector((irq + 0x20).min(0xFF) as u8)
    }

    fn taken(&self, cpu: usize, irq: usize) -> bool {
        self.matrix
            .is_allocated(cpu as u32, Self::vector(irq))
            .unwrap_or(false)
    }

    /// Number of reserved vectors over all CPUs.
    pub fn reserved_vectors(&self) -> usize {
        lock(&self.state)
            .lines
            .keys()
            .filter(|l| matches!(l, Line::Vector { .. }))
            .count()
    }

    fn line_of(&self, h: usize) -> Result<(Handle, Line)> {
        match lock(&self.state).handles.get(&h) {
            Some(&hd @ (Handle::Line(l) | Handle::Affinity(l))) => Ok((hd, l)),
            Some(_) => Err(Error::new(EINVAL)),
            None => Err(Error::new(EBADF)),
        }
    }
}

impl KernelScheme for IrqScheme {
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize> {
        let h = self.parse(path)?;
        let mut st = lock(&self.state);
        match h {
            Handle::Line(line @ Line::Vector { .. }) => {
                if !caller.is_root() {
                    return Err(Error::new(EACCES));
                }
                let Line::Vector { cpu, irq } = line else {
                    return Err(Error::new(EINVAL));
                };
                if self.taken(cpu, irq) {
                    return Err(Error::new(EEXIST));
                }
                if flags & O_CREAT == 0 {
                    return Err(Error::new(ENOENT));
                }
                self.matrix
                    .reserve(cpu as u32, Self::vector(irq))
                    .map_err(|e| Error::new(e.errno()))?;
                st.lines.insert(
                    line,
                    LineState {
                        users: 1,
                        ..LineState::default()
                    },
                );
            }
            Handle::Line(line @ Line::Legacy(_)) => {
                if !caller.is_root() {
                    return Err(Error::new(EACCES));
                }
                st.lines.entry(line).or_default().users += 1;
            }
            Handle::Affinity(line) if !st.lines.contains_key(&line) => {
                return Err(Error::new(ENOENT));
            }
            _ => {}
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        st.handles.insert(id, h);
        Ok(id)
    }

    fn read(&self, h: usize, buf: &mut [u8], flags: usize, _c: &Caller) -> Result<usize> {
        let handle = *lock(&self.state).handles.get(&h).ok_or(Error::new(EBADF))?;
        match handle {
            Handle::Bsp => {
                let b = 0u64.to_le_bytes();
                let n = b.len().min(buf.len());
                buf[..n].copy_from_slice(&b[..n]);
                Ok(n)
            }
            Handle::Root | Handle::CpuDir(_) => {
                let text = self.listing(handle).unwrap_or_default();
                let n = text.len().min(buf.len());
                buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                Ok(n)
            }
            Handle::Affinity(Line::Vector { cpu, .. }) => {
                let text = format!("{cpu:02x}\n");
                let n = text.len().min(buf.len());
                buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                Ok(n)
            }
            Handle::Affinity(Line::Legacy(_)) => Err(Error::new(EINVAL)),
            Handle::Line(_) => {
                if buf.len() < 8 {
                    return Err(Error::new(EINVAL));
                }
                loop {
                    let seen = self.fired.epoch();
                    {
                        let st = lock(&self.state);
                        let Some(Handle::Line(line)) = st.handles.get(&h).copied() else {
                            return Err(Error::new(EBADF));
                        };
                        if let Some(ls) = st.lines.get(&line)
                            && ls.count > ls.acked
                        {
                            buf[..8].copy_from_slice(&ls.count.to_le_bytes());
                            return Ok(8);
                        }
                    }
                    if flags & O_NONBLOCK != 0 {
                        return Err(Error::new(EAGAIN));
                    }
                    self.fired.wait_past(seen, None);
                }
            }
        }
    }

    fn write(&self, h: usize, buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let (handle, line) = self.line_of(h)?;
        let mut st = lock(&self.state);
        match handle {
            Handle::Line(_) => {
                let bytes: [u8; 8] = buf
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .ok_or(Error::new(EINVAL))?;
                let ls = st.lines.get_mut(&line).ok_or(Error::new(EBADF))?;
                ls.acked = ls.acked.max(u64::from_le_bytes(bytes).min(ls.count));
                Ok(8)
            }
            Handle::Affinity(Line::Vector { cpu, irq }) => {
                let text = std::str::from_utf8(buf).map_err(|_| Error::new(EINVAL))?;
                let to = usize::from_str_radix(text.trim(), 16)
                    .ok()
                    .filter(|&c| c < self.cpus)
                    .ok_or(Error::new(EINVAL))?;
                if to == cpu {
                    return Ok(buf.len());
                }
                let new = Line::Vector { cpu: to, irq };
                let old = Line::Vector { cpu, irq };
                if !st.lines.contains_key(&old) {
                    return Err(Error::new(EBADF));
                }
                self.matrix
                    .reserve(to as u32, Self::vector(irq))
                    .map_err(|e| Error::new(e.errno()))?;
                let _ = self.matrix.free(cpu as u32, Self::vector(irq));
                let ls = st.lines.remove(&old).ok_or(Error::new(EBADF))?;
                st.lines.insert(new, ls);
                for hd in st.handles.values_mut() {
                    match hd {
                        Handle::Line(l) | Handle::Affinity(l) if *l == old => *l = new,
                        _ => {}
                    }
                }
                Ok(buf.len())
            }
            _ => Err(Error::new(EINVAL)),
        }
    }

    fn fevent(&self, h: usize, _flags: u32) -> Result<u32> {
        let st = lock(&self.state);
        match st.handles.get(&h) {
            Some(Handle::Line(line)) => Ok(match st.lines.get(line) {
                Some(ls) if ls.count > ls.acked => EventFlags::EVENT_READ.bits() as u32,
                _ => 0,
            }),
            Some(_) => Ok(0),
            None => Err(Error::new(EBADF)),
        }
    }

    fn close(&self, h: usize) {
        let mut st = lock(&self.state);
        if let Some(Handle::Line(line)) = st.handles.remove(&h) {
            let gone = match st.lines.get_mut(&line) {
                Some(ls) => {
                    ls.users = ls.users.saturating_sub(1);
                    ls.users == 0
                }
                None => false,
            };
            if gone {
                st.lines.remove(&line);
                if let Line::Vector { cpu, irq } = line {
                    let _ = self.matrix.free(cpu as u32, Self::vector(irq));
                }
            }
        }
    }
}
