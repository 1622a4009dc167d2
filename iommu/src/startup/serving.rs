//! What a daemon's serving loop needs besides its scheme: the error it stops
//! with, and a deadline timer on the `time` scheme for its event queue.

use libredox::Fd;
use libredox::flag::O_RDWR;
use syscall::data::TimeSpec;

/// Why a daemon stopped.
#[derive(Debug)]
pub enum DaemonError {
    /// A system call failed while starting or serving (`what`, errno).
    Sys(&'static str, i32),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Sys(what, errno) => write!(f, "{what} failed: errno {errno}"),
        }
    }
}

impl std::error::Error for DaemonError {}

/// `r`'s error as [`DaemonError::Sys`] naming `what` was being done.
pub fn sys<T>(
    what: &'static str,
    r: Result<T, impl Into<syscall::Error>>,
) -> Result<T, DaemonError> {
    r.map_err(|e| DaemonError::Sys(what, e.into().errno))
}

/// A handle of `/scheme/time/<CLOCK_MONOTONIC>`: writing an absolute deadline
/// makes it readable (an event) once the clock passes it.
pub struct DeadlineTimer {
    fd: Fd,
}

impl DeadlineTimer {
    /// Opens the monotonic clock (before the daemon enters the null namespace).
    pub fn open() -> libredox::error::Result<Self> {
        let path = format!("/scheme/time/{}", syscall::flag::CLOCK_MONOTONIC);
        Ok(Self {
            fd: Fd::open(&path, O_RDWR, 0)?,
        })
    }

    /// The handle, to subscribe an event queue to.
    pub fn raw(&self) -> usize {
        self.fd.raw()
    }

    /// Sets the next deadline `after_ms` from now.
    pub fn arm(&self, after_ms: u32) -> libredox::error::Result<()> {
        let mut now = TimeSpec::default();
        self.fd.read(&mut now)?;
        let total_ns = i64::from(now.tv_nsec) + i64::from(after_ms % 1000) * 1_000_000;
        let deadline = TimeSpec {
            tv_sec: now.tv_sec + i64::from(after_ms / 1000) + total_ns / 1_000_000_000,
            // < 2e9 % 1e9: fits.
            tv_nsec: (total_ns % 1_000_000_000) as i32,
        };
        self.fd.write(&deadline)?;
        Ok(())
    }
}
