//! [`Transport`] through `std::fs`: the one `dsmilctl` uses, so it links without
//! relibc on Linux.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::Path;

use super::transport::{OpenMode, Transport};

/// std file I/O. On Redox, std opens `/scheme/...` paths directly; on Linux it
/// reaches a namespace mounted with `redox-host mount <dir>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct StdFs;

fn errno(e: std::io::Error) -> i32 {
    // An error without an OS code (std-internal) is reported as EIO.
    e.raw_os_error().unwrap_or(syscall::error::EIO)
}

impl Transport for StdFs {
    type File = File;

    fn open(&self, path: &Path, mode: OpenMode) -> Result<File, i32> {
        let mut opts = OpenOptions::new();
        match mode {
            OpenMode::Read => opts.read(true),
            OpenMode::Write => opts.write(true),
            OpenMode::ReadWrite => opts.read(true).write(true),
        };
        opts.open(path).map_err(errno)
    }

    fn read(&self, file: &mut File, buf: &mut [u8]) -> Result<usize, i32> {
        loop {
            match file.read(buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                r => return r.map_err(errno),
            }
        }
    }

    fn write(&self, file: &mut File, buf: &[u8]) -> Result<usize, i32> {
        file.write(buf).map_err(errno)
    }

    fn close(&self, file: File) -> Result<(), i32> {
        // std reports close errors only through sync_all, which schemes need not
        // support; dropping closes the descriptor.
        drop(file);
        Ok(())
    }
}
