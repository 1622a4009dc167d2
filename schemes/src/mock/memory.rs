//! The mocked `memory` scheme: physically contiguous zeroed allocations, virtual →
//! physical translation, and physmaps of RAM.
//!
//! Paths (relative to `/scheme/memory/`, or to an fd of `scheme-root`):
//! * `zeroed@<type>?phys_contiguous` — `mmap` it for zeroed, contiguous memory (kept
//!   until `munmap`, not until close, as on Redox). `&below4g` (our addition, for
//!   devices limited to 32-bit DMA without an IOMMU) allocates below 4 GiB.
//! * `translation` (root) — `call` with a virtual address in the payload; it is
//!   replaced by the physical address.
//! * `physical@<type>` (root) — `mmap` with `offset` = physical address.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EACCES, EBADF, EFAULT, EINVAL, ENOENT, Error, Result};

use super::phys::{PAGE, PhysArena};
use crate::kernel::kscheme::{Caller, KernelScheme, MmapGrant};
use crate::kernel::wait::lock;

#[derive(Clone, Copy, Debug)]
enum Handle {
    Root,
    Zeroed { below_4g: bool },
    Physical,
    Translation,
}

/// The `memory` scheme.
pub struct MemoryScheme {
    phys: Arc<PhysArena>,
    handles: Mutex<HashMap<usize, Handle>>,
    next: AtomicUsize,
}

fn memory_type_ok(ty: &str) -> bool {
    matches!(ty, "wb" | "uc" | "wc" | "dev")
}

impl MemoryScheme {
    /// The scheme over the machine's RAM.
    pub fn new(phys: Arc<PhysArena>) -> Self {
        Self {
            phys,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
        }
    }

    fn parse(path: &str, caller: &Caller) -> Result<Handle> {
        let (base, query) = path.split_once('?').unwrap_or((path, ""));
        let (kind, ty) = base.split_once('@').unwrap_or((base, "wb"));
        match kind {
            "" | "scheme-root" => Ok(Handle::Root),
            "zeroed" if memory_type_ok(ty) => {
                let mut below_4g = false;
                for opt in query.split('&').filter(|o| !o.is_empty()) {
                    match opt {
                        "phys_contiguous" => {}
                        "below4g" => below_4g = true,
                        _ => return Err(Error::new(EINVAL)),
                    }
                }
                Ok(Handle::Zeroed { below_4g })
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

impl KernelScheme for MemoryScheme {
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
            Handle::Zeroed { below_4g } => {
                let phys = self.phys.alloc(len, below_4g)?;
                let host = self.phys.host_ptr(phys, len).ok_or(Error::new(EFAULT))?;
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
                let host = self.phys.host_ptr(offset, len).ok_or(Error::new(EFAULT))?;
                Ok(MmapGrant {
                    host_addr: host as usize,
                    phys: offset,
                    len,
                    owned: false,
                })
            }
            _ => Err(Error::new(EINVAL)),
        }
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}
