//! Physmaps of device memory through `/dev/mem` (the guest boots with
//! `iomem=relaxed`, so MMIO no Linux driver claimed may be mapped).
//!
//! Mappings are cached per (address, length): the mocked kernel's `munmap` only hands
//! owned allocations back to the memory scheme, so a physmap stays mapped until the
//! guest process ends, and mapping the same registers again reuses it. That keeps
//! the address space bounded by the number of distinct ranges mapped.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::sync::Mutex;

use syscall::error::{EINVAL, EIO, Error, Result};

use crate::kernel::wait::lock;

/// `/dev/mem`, opened once.
pub struct DevMem {
    file: File,
    maps: Mutex<HashMap<(u64, usize), usize>>,
}

impl DevMem {
    /// Opens `/dev/mem` read-write and uncached (`O_SYNC`: x86 Linux maps it UC-).
    pub fn open() -> std::io::Result<Self> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open("/dev/mem")?;
        Ok(Self {
            file,
            maps: Mutex::new(HashMap::new()),
        })
    }

    /// Maps `len` bytes at physical `phys` (page aligned) shared; returns this
    /// process's address.
    pub fn map(&self, phys: u64, len: usize) -> Result<usize> {
        if !phys.is_multiple_of(4096) || len == 0 {
            return Err(Error::new(EINVAL));
        }
        let mut maps = lock(&self.maps);
        if let Some(&addr) = maps.get(&(phys, len)) {
            return Ok(addr);
        }
        let offset = libc::off_t::try_from(phys).map_err(|_| Error::new(EINVAL))?;
        // SAFETY: a new shared mapping of /dev/mem; nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                self.file.as_raw_fd(),
                offset,
            )
        };
        if p == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(EIO);
            log::error!(
                "guest: /dev/mem mmap of {len:#x} bytes at {phys:#x} failed: errno {errno}"
            );
            return Err(Error::new(errno));
        }
        maps.insert((phys, len), p as usize);
        Ok(p as usize)
    }
}
