//! How the client reaches the namespace: four file operations, nothing else.
//!
//! Two implementations: [`StdFs`](super::StdFs) (std file I/O — on Redox std opens
//! scheme paths, on Linux a `redox-host mount` directory) and
//! [`SchemeCalls`](super::SchemeCalls) (plain `libredox` calls — what in-process
//! tests on the mocked kernel use, and the same calls std makes on Redox).

use std::path::Path;

/// How a file is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Read only.
    Read,
    /// Write only.
    Write,
    /// Read and write (the `control` channel).
    ReadWrite,
}

/// File operations over some namespace. Errors are errno values.
pub trait Transport {
    /// An open file.
    type File;

    /// Opens `path`.
    fn open(&self, path: &Path, mode: OpenMode) -> Result<Self::File, i32>;
    /// One read; 0 is end of file.
    fn read(&self, file: &mut Self::File, buf: &mut [u8]) -> Result<usize, i32>;
    /// One write.
    fn write(&self, file: &mut Self::File, buf: &[u8]) -> Result<usize, i32>;
    /// Closes the file (for schemes, this completes a session).
    fn close(&self, file: Self::File) -> Result<(), i32>;
}
