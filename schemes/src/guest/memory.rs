//! The `memory` scheme in guest mode: the simulated scheme itself
//! ([`crate::mock::memory`], copying kernel `src/scheme/memory.rs`: the same
//! [`MemoryPath`](crate::mock::memory::MemoryPath) parser, root checks, mmap checks
//! and `translation` answers) over a backing of real memory:
//!
//! * `zeroed@<type>[?phys_contiguous]` — allocations from [`GuestRam`] (locked pages
//!   with known frames, every one contiguous and naturally aligned), released on
//!   `munmap`; as in the kernel, only `phys_contiguous` ones are named to
//!   `translation`;
//! * `translation` (root) — `call` with a virtual address: its physical address;
//! * `physical@<type>` (root) — physmaps through `/dev/mem`; guest RAM the scheme
//!   allocates from is refused with `EPERM`, as the kernel refuses RAM (and Linux's
//!   `STRICT_DEVMEM` refuses the rest of RAM the same way).

use std::sync::Arc;

use syscall::error::{ENOMEM, Error, Result};

use super::devmem::DevMem;
use super::ram::GuestRam;
use crate::mock::memory::{MemoryScheme, PhysBacking};

/// Guest RAM for allocations, `/dev/mem` for physmaps.
pub struct GuestBacking {
    ram: Arc<GuestRam>,
    devmem: DevMem,
}

impl PhysBacking for GuestBacking {
    fn alloc(&self, len: usize) -> Result<(u64, *mut u8)> {
        let phys = self.ram.alloc(len)?;
        match self.ram.host_ptr(phys, len) {
            Some(host) => Ok((phys, host)),
            None => {
                self.ram.free(phys, len);
                Err(Error::new(ENOMEM))
            }
        }
    }

    fn free(&self, phys: u64, len: usize) {
        self.ram.free(phys, len);
    }

    fn touches_ram(&self, phys: u64, len: usize) -> bool {
        self.ram.touches(phys, len)
    }

    fn physmap(&self, phys: u64, len: usize) -> Result<usize> {
        self.devmem.map(phys, len)
    }
}

/// The guest's `memory` scheme.
pub type GuestMemoryScheme = MemoryScheme<GuestBacking>;

impl MemoryScheme<GuestBacking> {
    /// The scheme over `ram` and `/dev/mem`.
    pub fn guest(ram: Arc<GuestRam>, devmem: DevMem) -> Self {
        Self::with_backing(GuestBacking { ram, devmem })
    }
}
