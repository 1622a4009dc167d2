//! The `memory` scheme in guest mode: the same paths and rules as the simulated one
//! ([`crate::mock::memory`], copying kernel `src/scheme/memory.rs`), over real memory.
//!
//! * `zeroed@<type>?phys_contiguous` — allocations from [`GuestRam`] (locked pages with
//!   known frames), released on `munmap`;
//! * `translation` (root) — `call` with a virtual address: its physical address, from
//!   the process's mapping, as the kernel answers it from its page tables;
//! * `physical@<type>` (root) — physmaps: guest RAM of the reservation maps the same
//!   pages; anything else (device registers, BARs) maps `/dev/mem`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EACCES, EBADF, EFAULT, EINVAL, ENOENT, Error, Result};

use super::devmem::DevMem;
use super::ram::{GuestRam, PAGE};
use crate::kernel::kscheme::{Caller, KernelScheme, MmapGrant};
use crate::kernel::wait::lock;

#[derive(Clone, Copy, Debug)]
enum Handle {
    Root,
    Zeroed,
    Physical,
    Translation,
}

/// The guest's `memory` scheme.
pub struct GuestMemoryScheme {
    ram: Arc<GuestRam>,
    devmem: DevMem,
    handles: Mutex<HashMap<usize, Handle>>,
    next: AtomicUsize,
}

fn memory_type_ok(ty: &str) -> bool {
    matches!(ty, "wb" | "uc" | "wc" | "dev")
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

    /// The RAM allocations come from.
    pub fn ram(&self) -> &Arc<GuestRam> {
        &self.ram
    }

    fn parse(path: &str, caller: &Caller) -> Result<Handle> {
        let (base, query) = path.split_once('?').unwrap_or((path, ""));
        let (kind, ty) = base.split_once('@').unwrap_or((base, "wb"));
        match kind {
            "" | "scheme-root" => Ok(Handle::Root),
            "zeroed" if memory_type_ok(ty) => {
                // Every allocation here is contiguous; `below4g` holds too, since the
                // guest has less than 4 GiB of RAM.
                for opt in query.split('&').filter(|o| !o.is_empty()) {
                    if !matches!(opt, "phys_contiguous" | "below4g") {
                        return Err(Error::new(EINVAL));
                    }
                }
                Ok(Handle::Zeroed)
            }
            "physical" if memory_type_ok(ty) && caller.is_root() => Ok(Handle::Physical),
            "translation" if caller.is_root() => Ok(Handle::Translation),
            "physical" | "translation" => Err(Error::new(EACCES)),
            _ => Err(Error::new(ENOENT)),
        }
    }

    fn handle(&self, h: usize) -> Result<Handle> {
        lock(&self.handles)
            .get(&h)
            .copied()
            .ok_or(Error::new(EBADF))
    }
}

impl KernelScheme for GuestMemoryScheme {
    fn open(&self, path: &str, _flags: usize, caller: &Caller) -> Result<usize> {
        let h = Self::parse(path, caller)?;
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, h);
        Ok(id)
    }

    fn call(&self, h: usize, payload: &mut [u8], _meta: &[u64], caller: &Caller) -> Result<usize> {
        let Handle::Translation = self.handle(h)? else {
            return Err(Error::new(EINVAL));
        };
        let bytes: [u8; 8] = payload
            .get(..8)
            .and_then(|b| b.try_into().ok())
            .ok_or(Error::new(EINVAL))?;
        let virt = usize::from_ne_bytes(bytes);
        let maps = lock(&caller.process.mappings);
        let (start, grant) = maps
            .range(..=virt)
            .next_back()
            .filter(|(s, g)| virt < **s + g.len)
            .ok_or(Error::new(EFAULT))?;
        let phys = grant.phys + (virt - start) as u64;
        payload[..8].copy_from_slice(&(phys as usize).to_ne_bytes());
        Ok(0)
    }

    fn mmap(&self, h: usize, offset: u64, len: usize, _c: &Caller) -> Result<MmapGrant> {
        if len == 0 {
            return Err(Error::new(EINVAL));
        }
        let len = len.div_ceil(PAGE) * PAGE;
        match self.handle(h)? {
            Handle::Zeroed => {
                let phys = self.ram.alloc(len)?;
                let host = self.ram.host_ptr(phys, len).ok_or(Error::new(EFAULT))?;
                Ok(MmapGrant {
                    host_addr: host as usize,
                    phys,
                    len,
                    owned: true,
                })
            }
            Handle::Physical => {
                if !offset.is_multiple_of(PAGE as u64) {
                    return Err(Error::new(EINVAL));
                }
                let host = match self.ram.host_ptr(offset, len) {
                    Some(p) => p as usize,
                    None => self.devmem.map(offset, len)?,
                };
                Ok(MmapGrant {
                    host_addr: host,
                    phys: offset,
                    len,
                    owned: false,
                })
            }
            _ => Err(Error::new(EINVAL)),
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
