//! The `memory` scheme in guest mode: the simulated scheme's grammar and rules
//! ([`crate::mock::memory`], copying kernel `src/scheme/memory.rs`: the same
//! [`MemoryPath`] parser, root checks, mmap checks and `translation` answers) over
//! real memory:
//!
//! * `zeroed@<type>[?phys_contiguous]` — allocations from [`GuestRam`] (locked pages
//!   with known frames, every one contiguous and naturally aligned), released on
//!   `munmap`; as in the kernel, only `phys_contiguous` ones are named to
//!   `translation`;
//! * `translation` (root) — `call` with a virtual address: its physical address;
//! * `physical@<type>` (root) — physmaps through `/dev/mem`; guest RAM the scheme
//!   allocates from is refused with `EPERM`, as the kernel refuses RAM (and Linux's
//!   `STRICT_DEVMEM` refuses the rest of RAM the same way).

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EACCES, EBADF, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, EPERM, Error, Result};
use syscall::flag::MapFlags;

use super::devmem::DevMem;
use super::ram::{GuestRam, PAGE};
use crate::kernel::kscheme::{Caller, KernelScheme, MmapGrant, MmapRequest};
use crate::kernel::wait::lock;
use crate::mock::memory::{HandleKind, MemoryPath, PHYS_LIMIT};

/// The guest's `memory` scheme.
pub struct GuestMemoryScheme {
    ram: Arc<GuestRam>,
    devmem: DevMem,
    handles: Mutex<HashMap<usize, MemoryPath>>,
    next: AtomicUsize,
}

impl GuestMemoryScheme {
    /// The scheme over `ram` and `/dev/mem`.
    pub fn new(ram: Arc<GuestRam>, devmem: DevMem) -> Self {
        Self {
            ram,
            devmem,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
        }
    }

    fn handle(&self, h: usize) -> Result<MemoryPath> {
        lock(&self.handles)
            .get(&h)
            .copied()
            .ok_or(Error::new(EBADF))
    }

    /// As the simulated scheme's `map_anonymous`.
    fn map_anonymous(&self, path: MemoryPath, req: &MmapRequest) -> Result<MmapGrant> {
        if req.len == 0 || !req.len.is_multiple_of(PAGE) || !req.addr.is_multiple_of(PAGE) {
            return Err(Error::new(EINVAL));
        }
        if path.phys_contiguous && req.flags.contains(MapFlags::MAP_SHARED) {
            return Err(Error::new(EOPNOTSUPP));
        }
        let phys = self.ram.alloc(req.len)?;
        let host = self.ram.host_ptr(phys, req.len).ok_or(Error::new(ENOMEM))?;
        Ok(MmapGrant {
            host_addr: host as usize,
            phys,
            len: req.len,
            owned: true,
            translates: path.phys_contiguous,
        })
    }

    /// As the simulated scheme's `physmap`, over `/dev/mem`.
    fn physmap(&self, req: &MmapRequest) -> Result<MmapGrant> {
        let aligned = req.offset.is_multiple_of(PAGE as u64) && req.len.is_multiple_of(PAGE);
        let end = req.offset.checked_add(req.len as u64);
        if req.len == 0 || !aligned || end.is_none_or(|e| e > PHYS_LIMIT) {
            return Err(Error::new(EINVAL));
        }
        if self.ram.touches(req.offset, req.len) {
            return Err(Error::new(EPERM));
        }
        let host = self.devmem.map(req.offset, req.len)?;
        Ok(MmapGrant {
            host_addr: host,
            phys: req.offset,
            len: req.len,
            owned: false,
            translates: true,
        })
    }
}

impl KernelScheme for GuestMemoryScheme {
    fn open(&self, path: &str, _flags: usize, caller: &Caller) -> Result<usize> {
        let parsed = MemoryPath::parse(path)?;
        if !caller.is_root() && !parsed.allowed_for_non_root() {
            return Err(Error::new(EACCES));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, parsed);
        Ok(id)
    }

    fn call(&self, h: usize, payload: &mut [u8], _meta: &[u64], caller: &Caller) -> Result<usize> {
        if self.handle(h)?.kind != HandleKind::Translation {
            return Err(Error::new(EOPNOTSUPP));
        }
        const WORD: usize = size_of::<usize>();
        let bytes: [u8; WORD] = payload
            .get(..WORD)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::new(EINVAL))?;
        let virt = usize::from_ne_bytes(bytes);
        let maps = lock(&caller.process.mappings);
        let (start, grant) = maps
            .range(..=virt)
            .next_back()
            .filter(|(s, g)| virt < **s + g.len && g.translates)
            .ok_or(Error::new(ENOENT))?;
        let phys = grant.phys + (virt - start) as u64;
        payload[..WORD].copy_from_slice(&(phys as usize).to_ne_bytes());
        Ok(0)
    }

    fn mmap(&self, h: usize, req: &MmapRequest, _c: &Caller) -> Result<MmapGrant> {
        let path = self.handle(h)?;
        match path.kind {
            HandleKind::Allocated => self.map_anonymous(path, req),
            HandleKind::PhysBorrow => self.physmap(req),
            HandleKind::Translation | HandleKind::SchemeRoot => Err(Error::new(EOPNOTSUPP)),
        }
    }

    fn unmap(&self, grant: &MmapGrant) {
        if grant.owned {
            self.ram.free(grant.phys, grant.len);
        }
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}
