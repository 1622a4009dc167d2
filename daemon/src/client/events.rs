//! Following the `events` file: one record per read, blocking until one exists.

use std::path::PathBuf;

use syscall::error::EINVAL;

use super::error::{ClientError, Result};
use super::transport::Transport;
use crate::wire::{CHUNK_SIZE, EventRecord};

/// Iterator over `events`: each item is one [`EventRecord`]. Each `next` is one
/// blocking read; it ends when the scheme returns 0 (the daemon went away), and
/// after the first error.
pub struct Events<'a, T: Transport> {
    transport: &'a T,
    file: Option<T::File>,
    path: PathBuf,
}

impl<'a, T: Transport> Events<'a, T> {
    pub(super) fn new(transport: &'a T, file: T::File, path: PathBuf) -> Self {
        Events {
            transport,
            file: Some(file),
            path,
        }
    }

    fn finish(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = self.transport.close(file);
        }
    }

    fn fail(&mut self, op: &'static str, errno: i32) -> Option<Result<EventRecord>> {
        self.finish();
        Some(Err(ClientError::new(op, &self.path, errno)))
    }
}

impl<T: Transport> Iterator for Events<'_, T> {
    type Item = Result<EventRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let file = self.file.as_mut()?;
        // Room for more than one record, so a record of an unexpected size is
        // reported (EINVAL) rather than silently cut.
        let mut buf = [0u8; CHUNK_SIZE];
        match self.transport.read(file, &mut buf) {
            Ok(0) => {
                self.finish();
                None
            }
            Ok(n) => match EventRecord::decode(buf.get(..n).unwrap_or(&[])) {
                Ok(record) => Some(Ok(record)),
                Err(_) => self.fail("decode", EINVAL),
            },
            Err(e) => self.fail("read", e),
        }
    }
}

impl<T: Transport> Drop for Events<'_, T> {
    fn drop(&mut self) {
        self.finish();
    }
}
