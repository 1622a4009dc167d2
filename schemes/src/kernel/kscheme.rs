//! The interface of schemes the mocked kernel implements itself (`memory`, `irq`,
//! `time`, …), as the Redox kernel does; userspace schemes go through sockets instead.

use std::sync::Arc;

use syscall::data::Stat;
use syscall::error::{EBADF, ENODEV, ENOSYS, ENOTDIR, EOPNOTSUPP, Error, Result};
use syscall::flag::MapFlags;

use super::description::Description;
use super::event::{EventHub, SourceKey};
use super::process::Process;

/// Who is calling: the process and its credentials.
#[derive(Clone)]
pub struct Caller {
    /// The calling process.
    pub process: Arc<Process>,
}

impl Caller {
    /// Process id.
    pub fn pid(&self) -> usize {
        self.process.pid
    }
    /// Effective user id.
    pub fn uid(&self) -> u32 {
        self.process.uid
    }
    /// Effective group id.
    pub fn gid(&self) -> u32 {
        self.process.gid
    }
    /// Whether the caller is root.
    pub fn is_root(&self) -> bool {
        self.process.uid == 0
    }
}

/// Memory a kernel scheme hands to `mmap`.
#[derive(Clone, Copy, Debug)]
pub struct MmapGrant {
    /// Host address of the first byte.
    pub host_addr: usize,
    /// Simulated physical address of the first byte.
    pub phys: u64,
    /// Length in bytes (page multiple).
    pub len: usize,
    /// Whether unmapping releases the physical memory (an allocation, not a physmap).
    pub owned: bool,
    /// Whether the memory scheme's `translation` answers for it: false for memory
    /// not backed by frames the process may name (non-contiguous `zeroed`).
    pub translates: bool,
}

/// What the caller of `mmap` asked for.
#[derive(Clone, Copy, Debug)]
pub struct MmapRequest {
    /// The mmap offset (a physical address for `physical@`, a BAR selector on a pcid
    /// channel).
    pub offset: u64,
    /// Length in bytes, as given.
    pub len: usize,
    /// Redox `MAP_*` and `PROT_*` flags.
    pub flags: MapFlags,
    /// The address the caller asked for (0 = anywhere).
    pub addr: usize,
}

/// Lets a kernel scheme report readiness of its handles to event queues.
#[derive(Clone)]
pub struct EventPort {
    /// The kernel's hub.
    pub hub: Arc<EventHub>,
    /// This scheme's id.
    pub scheme_id: u64,
}

impl EventPort {
    /// Reports that `handle` is ready for `flags` (`EVENT_READ`, `EVENT_WRITE`).
    pub fn post(&self, handle: usize, flags: u32) {
        self.hub
            .post(SourceKey::Kernel(self.scheme_id, handle), flags);
    }
}

/// A scheme implemented inside the mocked kernel. Handles are the scheme's own numbers.
/// Blocking reads block inside the scheme (it is the kernel).
pub trait KernelScheme: Send + Sync {
    /// Opens `path` (relative to the scheme root) with Redox `flags`.
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize>;

    /// Whether a path may be opened relative to `dir` (an `openat` on one of this
    /// scheme's handles). The default allows it; a scheme that, like the kernel's
    /// `irq`, only accepts opens relative to its root answers `EACCES` here.
    fn check_openat_dir(&self, _dir: usize) -> Result<()> {
        Ok(())
    }

    /// Directory entries of a handle (`SYS_GETDENTS`): Redox `DirentHeader` records
    /// of `header_size` bytes each followed by the name and a NUL, starting after the
    /// entry whose `next_opaque_id` was `opaque`.
    fn getdents(
        &self,
        _h: usize,
        _buf: &mut [u8],
        _header_size: u16,
        _opaque: u64,
    ) -> Result<usize> {
        Err(Error::new(ENOTDIR))
    }

    /// The handle's path as the scheme reports it (`fpath`); `None` lets the kernel
    /// answer `/scheme/<name>/<path it was opened with>`.
    fn fpath(&self, _handle: usize) -> Option<Result<String>> {
        None
    }

    /// `fstat` of a handle.
    fn fstat(&self, _handle: usize) -> Result<Stat> {
        Err(Error::new(ENOSYS))
    }

    /// Reads from a handle; `flags` are the description's Redox status flags.
    fn read(&self, _handle: usize, _buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        Err(Error::new(EBADF))
    }

    /// Writes to a handle.
    fn write(&self, _handle: usize, _buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        Err(Error::new(EBADF))
    }

    /// `call` (Redox's ioctl).
    fn call(&self, _h: usize, _payload: &mut [u8], _meta: &[u64], _c: &Caller) -> Result<usize> {
        Err(Error::new(EOPNOTSUPP))
    }

    /// Descriptors sent to a handle with `SYS_CALL(WRITE|FD)` (the caller's table
    /// has already given them up); returns how many were taken. Only schemes that
    /// carry descriptors (the pipe) take any.
    fn send_fds(&self, _h: usize, _descs: Vec<Arc<Description>>) -> Result<usize> {
        Err(Error::new(EOPNOTSUPP))
    }

    /// Descriptors received from a handle with `SYS_CALL(READ|FD)`, at most `max`.
    fn recv_fds(&self, _h: usize, _max: usize) -> Result<Vec<Arc<Description>>> {
        Err(Error::new(EOPNOTSUPP))
    }

    /// Current readiness of a handle, for a new event subscription.
    fn fevent(&self, _handle: usize, _flags: u32) -> Result<u32> {
        Ok(0)
    }

    /// Maps memory behind a handle.
    fn mmap(&self, _h: usize, _req: &MmapRequest, _c: &Caller) -> Result<MmapGrant> {
        Err(Error::new(ENODEV))
    }

    /// Releases memory a grant of this scheme owned.
    fn unmap(&self, _grant: &MmapGrant) {}

    /// The last reference to a handle went away.
    fn close(&self, _handle: usize) {}
}
