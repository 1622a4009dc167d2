//! The client's error: which operation failed, on which path, with which errno.

use std::fmt;
use std::path::{Path, PathBuf};

/// A failed client operation.
///
/// It names the path and the errno, because that is what a person debugging a
/// driver needs first ("`EACCES` on `/scheme/dsmil/device/0x8009`").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientError {
    /// What was being done: `open`, `read`, `write`, `call` or `decode`.
    pub op: &'static str,
    /// The path the operation was on.
    pub path: PathBuf,
    /// The errno (`syscall::error::*` numbering, which Linux shares for these values).
    pub errno: i32,
}

impl ClientError {
    /// An error of `op` on `path`.
    pub fn new(op: &'static str, path: &Path, errno: i32) -> ClientError {
        ClientError {
            op,
            path: path.to_path_buf(),
            errno,
        }
    }

    /// The symbolic name of the errno (`EACCES`), or `errno N` when unknown.
    pub fn errno_name(&self) -> String {
        errno_name(self.errno)
    }
}

/// The symbolic name of an errno value the `dsmil` scheme produces.
pub fn errno_name(errno: i32) -> String {
    use syscall::error::*;
    let name = match errno {
        EPERM => "EPERM",
        ENOENT => "ENOENT",
        EIO => "EIO",
        EBADF => "EBADF",
        EAGAIN => "EAGAIN",
        ENOMEM => "ENOMEM",
        EACCES => "EACCES",
        EFAULT => "EFAULT",
        EBUSY => "EBUSY",
        EEXIST => "EEXIST",
        ENODEV => "ENODEV",
        ENOTDIR => "ENOTDIR",
        EISDIR => "EISDIR",
        EINVAL => "EINVAL",
        EMFILE => "EMFILE",
        ENOSPC => "ENOSPC",
        ENOSYS => "ENOSYS",
        EOPNOTSUPP => "EOPNOTSUPP",
        ETIMEDOUT => "ETIMEDOUT",
        EINTR => "EINTR",
        ENOTCONN => "ENOTCONN",
        _ => return format!("errno {errno}"),
    };
    name.to_string()
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {} (errno {})",
            self.op,
            self.path.display(),
            self.errno_name(),
            self.errno
        )
    }
}

impl std::error::Error for ClientError {}

/// Result of a client operation.
pub type Result<T> = std::result::Result<T, ClientError>;
