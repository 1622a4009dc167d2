//! The mocked `pci` scheme: upstream pcid's scheme (`redox-os/base`
//! `drivers/pcid/src/scheme.rs`; redox-real.md §4) over simulated functions.
//!
//! Paths (relative to `/scheme/pci/`; leading and trailing `/` removed, a trailing
//! `/` or `O_DIRECTORY` asks for a directory):
//! * `` — directory of the functions, one `ssss--bb--dd.f` entry each (getdents).
//! * `<addr>` — directory whose only entry is `channel`.
//! * `<addr>/channel` (root) — the function's channel: write one bincode request
//!   (no length prefix), read the answer as an 8-byte little-endian length and the
//!   bincode body; `mmap` maps a BAR.
//! * `access` (root) — config space by `call` (metadata[0] 1 read / 2 write,
//!   metadata[1] the address).
//!
//! The host plugs functions in with [`PciScheme::add_function`]; requests are
//! answered by [`super::pcid_handler`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use driver_sys::pci::PciAddress;
use driver_sys::pci::pcid_wire::{self, PcidClientRequest};
use syscall::data::Stat;
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{
    EACCES, EBADF, EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOLCK, ENOTDIR, Error, Result,
};
use syscall::flag::{MODE_CHR, MODE_DIR, O_DIRECTORY, O_STAT};

use super::pcid_function::PcidFunction;
use super::pcid_handler::{enable_function, respond};
use super::phys::{PAGE, PhysArena};
use crate::hw::pci_function::SimPciFunction;
use crate::kernel::kscheme::{Caller, KernelScheme, MmapGrant, MmapRequest};
use crate::kernel::wait::lock;

/// What a handle is (pcid's `Handle`).
enum Kind<F> {
    TopLevel {
        entries: Vec<String>,
    },
    Access,
    Device,
    Channel {
        function: Arc<F>,
        /// An answer waiting to be read (pcid's `AwaitingResponseRead`).
        answer: Option<VecDeque<u8>>,
    },
}

impl<F> Kind<F> {
    fn is_file(&self) -> bool {
        matches!(self, Self::Access | Self::Channel { .. })
    }
}

struct Handle<F> {
    kind: Kind<F>,
    stat: bool,
}

/// The `pci` scheme over functions of type `F` (simulated ones by default; guest
/// mode serves a Linux guest's real functions with the same scheme).
pub struct PciScheme<F: PcidFunction = SimPciFunction> {
    functions: Mutex<BTreeMap<PciAddress, Arc<F>>>,
    handles: Mutex<HashMap<usize, Handle<F>>>,
    next: AtomicUsize,
    phys: Mutex<Option<Arc<PhysArena>>>,
}

impl<F: PcidFunction> Default for PciScheme<F> {
    fn default() -> Self {
        Self::new()
    }
}

impl PciScheme<SimPciFunction> {
    /// Plugs a simulated function in. `EEXIST` if its address is taken.
    pub fn add_function(&self, function: Arc<SimPciFunction>) -> Result<()> {
        *lock(&self.phys) = Some(function.phys().clone());
        self.plug(function)
    }
}

impl<F: PcidFunction> PciScheme<F> {
    /// An empty bus.
    pub fn new() -> Self {
        Self {
            functions: Mutex::new(BTreeMap::new()),
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
            phys: Mutex::new(None),
        }
    }

    /// Plugs a function in. `EEXIST` if its address is taken.
    pub fn plug(&self, function: Arc<F>) -> Result<()> {
        let mut f = lock(&self.functions);
        if f.contains_key(&function.address()) {
            return Err(Error::new(EEXIST));
        }
        f.insert(function.address(), function);
        Ok(())
    }

    /// The function at `addr`.
    pub fn function(&self, addr: &PciAddress) -> Option<Arc<F>> {
        lock(&self.functions).get(addr).cloned()
    }

    /// Addresses of every function on the bus, in order.
    pub fn addresses(&self) -> Vec<PciAddress> {
        lock(&self.functions).keys().copied().collect()
    }

    /// base `drivers/pcid/src/scheme.rs` `parse_after_pci_addr`: what follows the
    /// address must start with `/`; `channel` is `ENOLCK` while a channel of the
    /// function is open, otherwise opening it runs `enable_function` and marks the
    /// function taken — before the caller's uid or the directory flags are checked,
    /// so a refused open still leaves the function enabled and taken (as upstream).
    fn parse_after_addr(&self, addr: PciAddress, after: &str) -> Result<Kind<F>> {
        if after.chars().next().is_some_and(|c| c != '/') {
            return Err(Error::new(ENOENT));
        }
        let function = self.function(&addr).ok_or(Error::new(ENOENT))?;
        match after.get(1..).unwrap_or("") {
            "" => Ok(Kind::Device),
            "channel" => {
                if !function.claim() {
                    return Err(Error::new(ENOLCK));
                }
                enable_function(function.as_ref());
                Ok(Kind::Channel {
                    function,
                    answer: None,
                })
            }
            _ => Err(Error::new(ENOENT)),
        }
    }

    /// base `drivers/pcid/src/scheme.rs` `call` on `access`: metadata[0] 1 = read,
    /// 2 = write; metadata[1] = segment << 28 | bus << 20 | device << 15 |
    /// function << 12 | offset; the payload (any length and alignment up to
    /// 64 KiB) is read or written through dword accesses. A function that does not
    /// exist reads as all ones and ignores writes, as the bus does.
    fn access(&self, payload: &mut [u8], meta: &[u64]) -> Result<usize> {
        let len = u16::try_from(payload.len()).map_err(|_| Error::new(EINVAL))?;
        let write = match meta.first() {
            Some(1) => false,
            Some(2) => true,
            _ => return Err(Error::new(EINVAL)),
        };
        let v = *meta.get(1).ok_or(Error::new(EINVAL))?;
        let addr = PciAddress {
            segment: ((v >> 28) & 0xFFFF) as u16,
            bus: ((v >> 20) & 0xFF) as u8,
            device: ((v >> 15) & 0x1F) as u8,
            function: ((v >> 12) & 0x7) as u8,
        };
        let offset = (v & 0xFFF) as u16;
        let function = self.function(&addr);
        let start = offset - offset % 4;
        let end = u32::from(offset) + u32::from(len);
        let mut dword = u32::from(start);
        while dword < end {
            let at = dword as u16;
            let read = |o| function.as_ref().and_then(|f| f.config_read_u32(o).ok());
            let mut bytes = read(at).unwrap_or(u32::MAX).to_le_bytes();
            for (j, b) in bytes.iter_mut().enumerate() {
                let pos = dword + j as u32;
                if let Some(i) = pos.checked_sub(u32::from(offset))
                    && let Some(p) = payload.get_mut(i as usize)
                {
                    if write {
                        *b = *p;
                    } else {
                        *p = *b;
                    }
                }
            }
            if write && let Some(f) = &function {
                let _ = f.config_write_u32(at, u32::from_le_bytes(bytes));
            }
            dword += 4;
        }
        Ok(payload.len())
    }
}

/// Splits a channel mmap offset (pcid after base `e9fd66c7`, `mmap_prep`): BAR index
/// in bits 63–61, memory type in bits 60–59 (11 is taken as write-back), the offset
/// into the BAR in the low 59 bits.
pub fn split_bar_offset(offset: u64) -> (usize, u8, u64) {
    (
        (offset >> 61) as usize,
        ((offset >> 59) & 0b11) as u8,
        offset & ((1 << 59) - 1),
    )
}

impl<F: PcidFunction + 'static> KernelScheme for PciScheme<F> {
    /// base `drivers/pcid/src/scheme.rs` `openat`: see the module rustdoc; the
    /// checks run in pcid's order — path (`ENOENT`, `ENOLCK`), then `ENOTDIR` /
    /// `EISDIR`, then root for `channel` and `access` (`EACCES`); `O_STAT` skips the
    /// last three.
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize> {
        let expects_dir = path.ends_with('/') || flags & O_DIRECTORY != 0;
        let path = path.trim_matches('/');
        let kind = if path.is_empty() {
            Kind::TopLevel {
                entries: self.addresses().iter().map(|a| a.scheme_name()).collect(),
            }
        } else if path == "access" {
            Kind::Access
        } else {
            let idx = path.find('/').unwrap_or(path.len());
            let (addr, after) = path.split_at(idx);
            let addr = PciAddress::parse_scheme_name(addr).ok_or(Error::new(ENOENT))?;
            self.parse_after_addr(addr, after)?
        };
        let stat = flags & O_STAT != 0;
        let refused = if expects_dir && kind.is_file() && !stat {
            Some(ENOTDIR)
        } else if !expects_dir && !kind.is_file() && !stat {
            Some(EISDIR)
        } else if !caller.is_root() && kind.is_file() && !stat {
            Some(EACCES)
        } else {
            None
        };
        if let Some(errno) = refused {
            // pcid drops the handle without its close hook: a channel stays taken.
            return Err(Error::new(errno));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, Handle { kind, stat });
        Ok(id)
    }

    /// base `drivers/pcid/src/scheme.rs` `read`: `O_STAT` handles `EBADF`;
    /// directories `EISDIR`; a channel hands out the waiting answer (as much as fits),
    /// `EINVAL` if none waits.
    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        let handle = handles.get_mut(&h).ok_or(Error::new(EBADF))?;
        if handle.stat {
            return Err(Error::new(EBADF));
        }
        match &mut handle.kind {
            Kind::TopLevel { .. } | Kind::Device => Err(Error::new(EISDIR)),
            Kind::Access => Err(Error::new(EBADF)),
            Kind::Channel { answer, .. } => {
                let q = answer.as_mut().ok_or(Error::new(EINVAL))?;
                let n = q.len().min(buf.len());
                for (dst, src) in buf.iter_mut().zip(q.drain(..n)) {
                    *dst = src;
                }
                if q.is_empty() {
                    *answer = None;
                }
                Ok(n)
            }
        }
    }

    /// base `drivers/pcid/src/scheme.rs` `write_channel`: one request per write, the
    /// bare bincode bytes (bincode 1 `deserialize_from`: trailing bytes ignored);
    /// `EINVAL` while an answer is unread or if the bytes do not decode; the answer is
    /// queued as a u64-LE length and the body.
    fn write(&self, h: usize, buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        let handle = handles.get_mut(&h).ok_or(Error::new(EBADF))?;
        if handle.stat {
            return Err(Error::new(EBADF));
        }
        let Kind::Channel { function, answer } = &mut handle.kind else {
            return Err(Error::new(EBADF));
        };
        if answer.is_some() {
            return Err(Error::new(EINVAL));
        }
        let req: PcidClientRequest = pcid_wire::decode(buf).map_err(|_| Error::new(EINVAL))?;
        let resp = respond(function.as_ref(), req);
        let framed = pcid_wire::frame_response(&resp).map_err(|_| Error::new(EIO))?;
        *answer = Some(framed.into());
        Ok(buf.len())
    }

    fn call(&self, h: usize, payload: &mut [u8], meta: &[u64], _c: &Caller) -> Result<usize> {
        let is_access = {
            let handles = lock(&self.handles);
            let handle = handles.get(&h).ok_or(Error::new(EBADF))?;
            !handle.stat && matches!(handle.kind, Kind::Access)
        };
        if !is_access {
            return Err(Error::new(EBADF));
        }
        self.access(payload, meta)
    }

    /// pcid after base `e9fd66c7` (`mmap_prep` on a channel): maps part of a memory
    /// BAR, chosen by [`split_bar_offset`]; pcid physmaps it itself. A BAR index above
    /// 5, a BAR that is not memory, or a range outside the BAR is `EINVAL`.
    fn mmap(&self, h: usize, req: &MmapRequest, _c: &Caller) -> Result<MmapGrant> {
        let function = {
            let handles = lock(&self.handles);
            match handles.get(&h).map(|x| &x.kind) {
                Some(Kind::Channel { function, .. }) => function.clone(),
                _ => return Err(Error::new(EBADF)),
            }
        };
        let (bar, _ty, within) = split_bar_offset(req.offset);
        let (base, size) = function.bar(bar).ok_or(Error::new(EINVAL))?;
        let len = req.len.div_ceil(PAGE) * PAGE;
        let fits = within
            .checked_add(len as u64)
            .is_some_and(|end| end <= size.max(PAGE as u64));
        if len == 0 || !within.is_multiple_of(PAGE as u64) || !fits {
            return Err(Error::new(EINVAL));
        }
        let phys = base + within;
        let host = match function.bar_host_addr(phys, len) {
            Some(host) => host,
            None => {
                let arena = lock(&self.phys).clone().ok_or(Error::new(EINVAL))?;
                arena.host_ptr(phys, len).ok_or(Error::new(EINVAL))? as usize
            }
        };
        Ok(MmapGrant {
            host_addr: host,
            phys,
            len,
            owned: false,
            translates: true,
        })
    }

    /// base `drivers/pcid/src/scheme.rs` `getdents`: the top level lists the
    /// functions, a function's directory `channel` (kind Unspecified, next id =
    /// index + 1); files `ENOTDIR`; `O_STAT` handles `EBADF`.
    fn getdents(&self, h: usize, buf: &mut [u8], header_size: u16, opaque: u64) -> Result<usize> {
        let entries: Vec<String> = {
            let handles = lock(&self.handles);
            let handle = handles.get(&h).ok_or(Error::new(EBADF))?;
            if handle.stat {
                return Err(Error::new(EBADF));
            }
            match &handle.kind {
                Kind::TopLevel { entries } => entries.clone(),
                Kind::Device => vec!["channel".to_string()],
                Kind::Access | Kind::Channel { .. } => return Err(Error::new(ENOTDIR)),
            }
        };
        let mut out = DirentBuf::new(buf, header_size).ok_or(Error::new(EINVAL))?;
        let Ok(skip) = usize::try_from(opaque) else {
            return Ok(0);
        };
        for (i, name) in entries.iter().enumerate().skip(skip) {
            out.entry(DirEntry {
                inode: 0,
                next_opaque_id: i as u64 + 1,
                name,
                kind: DirentKind::Unspecified,
            })?;
        }
        Ok(out.finalize())
    }

    /// base `drivers/pcid/src/scheme.rs` `fstat`: directories `MODE_DIR | 0755` with
    /// their entry count as size, `channel` and `access` `MODE_CHR | 0600`, size 0.
    fn fstat(&self, h: usize) -> Result<Stat> {
        let mut stat = Stat::default();
        let handles = lock(&self.handles);
        let handle = handles.get(&h).ok_or(Error::new(EBADF))?;
        let (len, mode) = match &handle.kind {
            Kind::TopLevel { entries } => (entries.len(), MODE_DIR | 0o755),
            Kind::Device => (1, MODE_DIR | 0o755),
            Kind::Access | Kind::Channel { .. } => (0, MODE_CHR | 0o600),
        };
        stat.st_size = len as u64;
        stat.st_mode = mode;
        Ok(stat)
    }

    /// base `drivers/pcid/src/scheme.rs` `on_close`: closing a channel only clears
    /// the function's "enabled" mark; bus mastering stays on.
    fn close(&self, h: usize) {
        if let Some(Handle {
            kind: Kind::Channel { function, .. },
            ..
        }) = lock(&self.handles).remove(&h)
        {
            function.release();
        }
    }
}
