//! [`Transport`] through `libredox` system calls.

use std::path::Path;

use libredox::call;
use libredox::flag::{O_CLOEXEC, O_RDONLY, O_RDWR, O_WRONLY};

use super::transport::{OpenMode, Transport};

/// Plain `libredox` calls: what std does on Redox, spelled out. On Linux it runs
/// against the `redox-host` mocked kernel, which is how in-process tests drive the
/// client (std file I/O on Linux does not go through the mocked kernel).
#[derive(Clone, Copy, Debug, Default)]
pub struct SchemeCalls;

/// A descriptor opened by [`SchemeCalls`].
#[derive(Debug)]
pub struct SchemeFd(usize);

impl SchemeFd {
    /// The raw descriptor.
    pub fn raw(&self) -> usize {
        self.0
    }
}

impl Drop for SchemeFd {
    fn drop(&mut self) {
        // A descriptor not handed to `close` (an error path) must not leak a session.
        let _ = call::close(self.0);
    }
}

impl Transport for SchemeCalls {
    type File = SchemeFd;

    fn open(&self, path: &Path, mode: OpenMode) -> Result<SchemeFd, i32> {
        let flags = match mode {
            OpenMode::Read => O_RDONLY,
            OpenMode::Write => O_WRONLY,
            OpenMode::ReadWrite => O_RDWR,
        };
        let path = path.to_str().ok_or(syscall::error::EINVAL)?;
        call::open(path, flags | O_CLOEXEC, 0)
            .map(SchemeFd)
            .map_err(|e| e.errno())
    }

    fn read(&self, file: &mut SchemeFd, buf: &mut [u8]) -> Result<usize, i32> {
        call::read(file.0, buf).map_err(|e| e.errno())
    }

    fn write(&self, file: &mut SchemeFd, buf: &[u8]) -> Result<usize, i32> {
        call::write(file.0, buf).map_err(|e| e.errno())
    }

    fn close(&self, file: SchemeFd) -> Result<(), i32> {
        let fd = file.0;
        std::mem::forget(file);
        call::close(fd).map(|_| ()).map_err(|e| e.errno())
    }
}
