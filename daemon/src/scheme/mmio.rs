//! `mmio`: the DSMIL 360 MiB MMIO window as a file (root only). A read or write
//! at offset `o` touches window bytes `o..o + len`, every access bounds-checked
//! and served by 4 MiB chunks mapped on demand, at most
//! `Config::mmio_resident_chunks` at once, least recently used unmapped first
//! ([`crate::platform::MmioWindow`]). Reading at or past the end is 0 (end of
//! file); an access that crosses the end is `EINVAL`. Without a configured base
//! (`[mmio] base` in `/etc/dsmild.toml`) opening it is `ENODEV`.

use syscall::error::{EACCES, EBADF, ENODEV, Error, Result};

use super::DsmilScheme;
use super::handle::Handle;
use crate::platform::MMIO_WINDOW_SIZE;

impl DsmilScheme {
    /// Opening `mmio`: root (the opener's uid; the window reaches device
    /// registers), and a window must exist.
    pub(super) fn open_mmio(&mut self, uid: u32) -> Result<Handle> {
        if uid != 0 {
            return Err(self.refuse(None, EACCES, uid));
        }
        if self.machine.mmio().is_none() {
            return Err(Error::new(ENODEV));
        }
        Ok(Handle::Mmio)
    }

    pub(super) fn read_mmio(&mut self, buf: &mut [u8], offset: u64) -> Result<usize> {
        if offset >= MMIO_WINDOW_SIZE || buf.is_empty() {
            return Ok(0);
        }
        let window = self.machine.mmio().ok_or(Error::new(EBADF))?;
        window.read(offset, buf)?;
        Ok(buf.len())
    }

    pub(super) fn write_mmio(&mut self, buf: &[u8], offset: u64) -> Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let window = self.machine.mmio().ok_or(Error::new(EBADF))?;
        window.write(offset, buf)?;
        Ok(buf.len())
    }
}
