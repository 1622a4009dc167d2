//! Following the `events` file: one record per read, blocking until one exists.

use std::path::PathBuf;

use super::error::{ClientError, Result};
use super::transport::Transport;
use crate::wire::CHUNK_SIZE;

/// One record read from `events`, as the bytes the scheme returned.
///
/// PLACEHOLDER: the typed event record (device state change, thermal crossing,
/// refused access) is being added to [`crate::wire`] with the rest of the
/// protocol; until it exists the client hands out the raw record, which is
/// already exact (one read returns exactly one record). When the wire type
/// lands, a `decode()` here becomes the typed view.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawEventRecord {
    /// The record's bytes.
    pub bytes: Vec<u8>,
}

/// Iterator over `events`. Each `next` is one blocking read; it ends when the
/// scheme returns 0 (the daemon went away), and after the first error.
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
}

impl<T: Transport> Iterator for Events<'_, T> {
    type Item = Result<RawEventRecord>;

    fn next(&mut self) -> Option<Self::Item> {
        let file = self.file.as_mut()?;
        // Records are small; one chunk's worth is room for any of them.
        let mut buf = vec![0u8; CHUNK_SIZE];
        match self.transport.read(file, &mut buf) {
            Ok(0) => {
                self.finish();
                None
            }
            Ok(n) => {
                buf.truncate(n);
                Some(Ok(RawEventRecord { bytes: buf }))
            }
            Err(e) => {
                self.finish();
                Some(Err(ClientError::new("read", &self.path, e)))
            }
        }
    }
}

impl<T: Transport> Drop for Events<'_, T> {
    fn drop(&mut self) {
        self.finish();
    }
}
