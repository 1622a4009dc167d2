//! The mocked `memory` scheme, copied from the Redox kernel (`redox-os/kernel`
//! `src/scheme/memory.rs` and `src/context/memory.rs`; redox-real.md §2).
//!
//! Paths have the shape `<kind>[@<type>[?<flag>,...]]`, opened directly
//! (`/scheme/memory/zeroed@wb?phys_contiguous`) or relative to an fd of
//! `scheme-root`:
//! * `zeroed` (or an empty kind): `mmap` it for anonymous zeroed memory; with
//!   `?phys_contiguous` the memory is one naturally aligned power-of-two block of
//!   frames, the only kind a device may be given.
//! * `physical@<type>` (root): `mmap` with the physical address as the offset —
//!   device registers and firmware ranges, never RAM.
//! * `translation` (root): `call` with a virtual address in the payload; the kernel
//!   overwrites it with the physical address.
//! * `scheme-root` (root): the handle upstream drivers open the others relative to.
//!
//! There is no way to ask for memory below 4 GiB: the kernel's `32` flag is
//! commented out, so a driver of a 32-bit device without an IOMMU must check the
//! translation of what it got.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EACCES, EBADF, EINVAL, ENOENT, ENOMEM, EOPNOTSUPP, EPERM, Error, Result};
use syscall::flag::MapFlags;

use super::phys::{PAGE, PhysArena};
use crate::kernel::kscheme::{Caller, KernelScheme, MmapGrant, MmapRequest};
use crate::kernel::wait::lock;

/// Longest path the scheme accepts, in bytes, counted before leading `/` are removed
/// (kernel `src/scheme/memory.rs`: longer paths are `ENOENT`).
pub const MAX_PATH: usize = 64;

/// Highest physical address (exclusive) a physmap may reach: 2^52
/// (kernel `src/scheme/memory.rs`, `physmap`).
pub const PHYS_LIMIT: u64 = 1 << 52;

/// Cache type of a mapping (kernel `src/scheme/memory.rs`, `MemoryType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemoryType {
    /// `wb` or empty: write-back.
    WriteBack,
    /// `uc`: uncacheable.
    Uncacheable,
    /// `wc`: write-combining.
    WriteCombining,
    /// `dev`: device memory.
    Device,
}

/// What a handle is (kernel `src/scheme/memory.rs`, `HandleTy`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HandleKind {
    /// Anonymous memory (`zeroed` or empty).
    Allocated,
    /// Borrowed physical memory (`physical`).
    PhysBorrow,
    /// Virtual → physical translation.
    Translation,
    /// The scheme root.
    SchemeRoot,
}

/// One parsed path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryPath {
    /// The kind before `@`.
    pub kind: HandleKind,
    /// The type after `@`.
    pub ty: MemoryType,
    /// `?phys_contiguous` was given.
    pub phys_contiguous: bool,
}

impl MemoryPath {
    /// Parses a path as the kernel does (kernel `src/scheme/memory.rs`, `kopenat`):
    /// over [`MAX_PATH`] bytes `ENOENT`; leading `/` removed; split at the first `@`,
    /// then the part after it at the first `?` — so a `?` before any `@` is part of the
    /// kind and the kind is unknown; unknown kinds, types (lowercase only) and flags
    /// are `ENOENT`; empty flags between commas are ignored.
    pub fn parse(path: &str) -> Result<Self> {
        if path.len() > MAX_PATH {
            return Err(Error::new(ENOENT));
        }
        let path = path.trim_start_matches('/');
        let (kind, rest) = path.split_once('@').unwrap_or((path, ""));
        let (ty, flags) = rest.split_once('?').unwrap_or((rest, ""));
        let kind = match kind {
            "" | "zeroed" => HandleKind::Allocated,
            "physical" => HandleKind::PhysBorrow,
            "translation" => HandleKind::Translation,
            "scheme-root" => HandleKind::SchemeRoot,
            _ => return Err(Error::new(ENOENT)),
        };
        let ty = match ty {
            "" | "wb" => MemoryType::WriteBack,
            "uc" => MemoryType::Uncacheable,
            "wc" => MemoryType::WriteCombining,
            "dev" => MemoryType::Device,
            _ => return Err(Error::new(ENOENT)),
        };
        let mut phys_contiguous = false;
        for flag in flags.split(',').filter(|f| !f.is_empty()) {
            match flag {
                "phys_contiguous" => phys_contiguous = true,
                // The kernel's below-4 GiB flag (`32`) is commented out: unknown.
                _ => return Err(Error::new(ENOENT)),
            }
        }
        Ok(Self {
            kind,
            ty,
            phys_contiguous,
        })
    }

    /// Whether a caller whose effective uid is not 0 may open it: only plain
    /// write-back anonymous memory without flags (kernel `src/scheme/memory.rs`).
    pub fn allowed_for_non_root(&self) -> bool {
        self.kind == HandleKind::Allocated
            && self.ty == MemoryType::WriteBack
            && !self.phys_contiguous
    }
}

/// Where the scheme's frames come from: the simulated machine's arena, or
/// (guest mode, [`crate::guest::memory`]) real guest RAM and `/dev/mem`. The
/// grammar, root checks, mmap checks and `translation` answers are the
/// kernel's and the same over either.
pub trait PhysBacking: Send + Sync {
    /// Allocates `len` bytes of zeroed frames, one power-of-two block aligned
    /// to its size; returns their physical address and this process's address.
    fn alloc(&self, len: usize) -> Result<(u64, *mut u8)>;
    /// Returns an allocation made by [`alloc`](Self::alloc).
    fn free(&self, phys: u64, len: usize);
    /// Whether `[phys, phys + len)` overlaps RAM the allocator manages (a
    /// physmap of it is refused, as the kernel refuses RAM).
    fn touches_ram(&self, phys: u64, len: usize) -> bool;
    /// This process's address of a physmap of `[phys, phys + len)`.
    fn physmap(&self, phys: u64, len: usize) -> Result<usize>;
}

impl PhysBacking for Arc<PhysArena> {
    fn alloc(&self, len: usize) -> Result<(u64, *mut u8)> {
        // The arena's buddy allocator takes a power-of-two block for either
        // kind; for plain `zeroed` the frames are simply not named to the
        // process (see `map_anonymous`).
        let phys = PhysArena::alloc(self, len, false)?;
        match self.host_ptr(phys, len) {
            Some(host) => Ok((phys, host)),
            None => {
                PhysArena::free(self, phys, len);
                Err(Error::new(ENOMEM))
            }
        }
    }

    fn free(&self, phys: u64, len: usize) {
        PhysArena::free(self, phys, len);
    }

    fn touches_ram(&self, phys: u64, len: usize) -> bool {
        PhysArena::touches_ram(self, phys, len)
    }

    /// The kernel maps any other address; the mock can only back its device
    /// window and reserved range, so a physmap elsewhere has nothing behind it
    /// (`ENOMEM`).
    fn physmap(&self, phys: u64, len: usize) -> Result<usize> {
        self.host_ptr(phys, len)
            .map(|p| p as usize)
            .ok_or(Error::new(ENOMEM))
    }
}

/// The `memory` scheme over a [`PhysBacking`] (the simulated arena unless
/// named otherwise).
pub struct MemoryScheme<B: PhysBacking = Arc<PhysArena>> {
    phys: B,
    handles: Mutex<HashMap<usize, MemoryPath>>,
    next: AtomicUsize,
}

impl MemoryScheme {
    /// The scheme over the machine's RAM.
    pub fn new(phys: Arc<PhysArena>) -> Self {
        Self::with_backing(phys)
    }
}

impl<B: PhysBacking> MemoryScheme<B> {
    /// The scheme over `phys`.
    pub fn with_backing(phys: B) -> Self {
        Self {
            phys,
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

    /// Anonymous memory (kernel `src/scheme/memory.rs`, `map_anonymous`): address and
    /// length page-aligned and non-zero (`EINVAL`, `PageSpan::validate_nonempty`);
    /// `phys_contiguous` with `MAP_SHARED` is `EOPNOTSUPP`; a contiguous request is
    /// rounded up to a power of two pages and taken as one naturally aligned block.
    fn map_anonymous(&self, path: MemoryPath, req: &MmapRequest) -> Result<MmapGrant> {
        if req.len == 0 || !req.len.is_multiple_of(PAGE) || !req.addr.is_multiple_of(PAGE) {
            return Err(Error::new(EINVAL));
        }
        if path.phys_contiguous && req.flags.contains(MapFlags::MAP_SHARED) {
            return Err(Error::new(EOPNOTSUPP));
        }
        if path.phys_contiguous && !(req.len / PAGE).is_power_of_two() {
            log::warn!(
                "memory: phys_contiguous mapping of {} pages rounded up to {}",
                req.len / PAGE,
                (req.len / PAGE).next_power_of_two()
            );
        }
        let (phys, host) = self.phys.alloc(req.len)?;
        Ok(MmapGrant {
            host_addr: host as usize,
            phys,
            len: req.len,
            owned: true,
            // Plain `zeroed` pages are the shared zero frame until touched, then
            // whatever frame the fault handler picked (kernel `src/context/memory.rs`):
            // the mock answers `translation` for them as for an unmapped page.
            translates: path.phys_contiguous,
        })
    }

    /// A physmap (kernel `src/scheme/memory.rs`, `physmap`, and `Grant::physmap` in
    /// `src/context/memory.rs`): the address is the mmap offset, the requested address
    /// and `MAP_FIXED` are ignored; the address must be page-aligned, the size a
    /// non-zero page multiple and the end at most 2^52 (`EINVAL`); frames the
    /// allocator manages (RAM) are refused with `EPERM`.
    fn physmap(&self, req: &MmapRequest) -> Result<MmapGrant> {
        let aligned = req.offset.is_multiple_of(PAGE as u64) && req.len.is_multiple_of(PAGE);
        let end = req.offset.checked_add(req.len as u64);
        if req.len == 0 || !aligned || end.is_none_or(|e| e > PHYS_LIMIT) {
            return Err(Error::new(EINVAL));
        }
        if self.phys.touches_ram(req.offset, req.len) {
            return Err(Error::new(EPERM));
        }
        let host = self.phys.physmap(req.offset, req.len)?;
        Ok(MmapGrant {
            host_addr: host,
            phys: req.offset,
            len: req.len,
            owned: false,
            translates: true,
        })
    }
}

impl<B: PhysBacking> KernelScheme for MemoryScheme<B> {
    /// kernel `src/scheme/memory.rs` `kopenat`: the path is parsed first (`ENOENT`),
    /// then a non-root caller gets `EACCES` for anything but plain `zeroed`.
    fn open(&self, path: &str, _flags: usize, caller: &Caller) -> Result<usize> {
        let parsed = MemoryPath::parse(path)?;
        if !caller.is_root() && !parsed.allowed_for_non_root() {
            return Err(Error::new(EACCES));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, parsed);
        Ok(id)
    }

    /// kernel `src/scheme/memory.rs` `kcall`: only `translation` answers (others
    /// `EOPNOTSUPP`); the first native-endian usize of the payload is the virtual
    /// address, overwritten with the physical one, and the call returns 0; an
    /// address not mapped in the caller's address space is `ENOENT`. Metadata is
    /// ignored.
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

    /// kernel `src/scheme/memory.rs` `kfmap`: anonymous memory, physmaps; `mmap` on
    /// `translation` or the root is `EOPNOTSUPP`.
    fn mmap(&self, h: usize, req: &MmapRequest, _c: &Caller) -> Result<MmapGrant> {
        let path = self.handle(h)?;
        match path.kind {
            HandleKind::Allocated => self.map_anonymous(path, req),
            HandleKind::PhysBorrow => self.physmap(req),
            HandleKind::Translation | HandleKind::SchemeRoot => Err(Error::new(EOPNOTSUPP)),
        }
    }

    /// kernel `src/scheme/memory.rs` `kfpath`: every handle is `/scheme/memory/`.
    fn fpath(&self, _h: usize) -> Option<Result<String>> {
        Some(Ok("/scheme/memory/".to_string()))
    }

    /// An allocation returns to the arena when unmapped (not when its fd closes).
    fn unmap(&self, grant: &MmapGrant) {
        if grant.owned {
            self.phys.free(grant.phys, grant.len);
        }
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grammar() {
        let p = MemoryPath::parse("zeroed@wb?phys_contiguous,").expect("parses");
        assert!(p.phys_contiguous && p.kind == HandleKind::Allocated);
        assert_eq!(
            MemoryPath::parse("zeroed?phys_contiguous").map(|_| ()),
            Err(Error::new(ENOENT))
        );
        assert_eq!(
            MemoryPath::parse("zeroed@WB").map(|_| ()),
            Err(Error::new(ENOENT))
        );
        assert!(MemoryPath::parse("@?phys_contiguous").is_ok());
        assert!(MemoryPath::parse("physical@dev").is_ok());
        let long = format!("/{}", "/".repeat(MAX_PATH));
        assert_eq!(
            MemoryPath::parse(&long).map(|_| ()),
            Err(Error::new(ENOENT))
        );
    }
}
