//! `redox-host mount <dir>`: the simulated machine's `/scheme` namespace as a
//! Linux directory, through FUSE.
//!
//! Any Linux program — `cat`, `dd`, Python, a C program, `dsmilctl --root` —
//! becomes a real client of the unmodified daemons: its `open`, `read`, `write`,
//! `close` and `poll` arrive here and are issued as the same `libredox` calls a
//! Redox program makes (see [`bridge`] for how callers map to simulated
//! processes). `<dir>/dsmil/status` is `/scheme/dsmil/status`.
//!
//! Files report size 0 and are opened with direct I/O, so every read reaches
//! the scheme (readers read until a 0-byte read, as `cat` does). Blocking reads
//! (`events`) run on a worker pool so other clients keep being served.

pub mod bridge;
pub mod namespace;
pub mod workers;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use fuser::{BackgroundSession, Config, MountOption, SessionACL};

use crate::kernel::Kernel;
use bridge::SchemeFs;
use workers::Workers;

/// FUSE session threads (requests that may block run on [`Workers`] instead).
const SESSION_THREADS: usize = 4;

/// A mounted namespace; dropping it (or [`Mounted::unmount`]) unmounts.
pub struct Mounted {
    session: Option<BackgroundSession>,
    workers: Arc<Workers>,
    dir: PathBuf,
}

impl Mounted {
    /// Unmounts and waits for the FUSE session to end.
    pub fn unmount(mut self) -> io::Result<()> {
        self.unmount_inner()
    }

    /// Whether the FUSE session has ended without us: someone unmounted the
    /// directory (`umount`, `fusermount3 -u`), or the kernel dropped the
    /// connection. [`Mounted::unmount`] then only collects the session.
    pub fn session_ended(&self) -> bool {
        self.session.as_ref().is_none_or(|s| s.guard.is_finished())
    }

    fn unmount_inner(&mut self) -> io::Result<()> {
        self.workers.close();
        if self.session_ended() || !is_mounted(&self.dir) {
            // Unmounted from outside: nothing is mounted any more, only the
            // session thread to collect (it ends as soon as the kernel tells
            // it the connection is gone).
            return self.session.take().map_or(Ok(()), |s| s.join());
        }
        match self.session.take() {
            Some(s) => match s.umount_and_join() {
                // FUSE sends RELEASE after close(2) returns, so a client that
                // just closed its last file can still hold the mount busy: detach
                // it instead; the session ends when the kernel lets go.
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => detach(&self.dir),
                r => r,
            },
            None => Ok(()),
        }
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = self.unmount_inner() {
            log::error!("redox-host mount: unmount: {e}");
        }
    }
}

/// Whether `dir` is a mount point now (`/proc/self/mounts`, octal escapes and all).
fn is_mounted(dir: &Path) -> bool {
    let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") else {
        // Cannot tell: assume it is, so an unmount is still attempted.
        return true;
    };
    let want = dir
        .to_string_lossy()
        .replace('\\', "\\134")
        .replace(' ', "\\040")
        .replace('\t', "\\011")
        .replace('\n', "\\012");
    mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(want.as_str()))
}

/// Lazy unmount (`MNT_DETACH`): gone from the namespace now, released when unused.
fn detach(dir: &Path) -> io::Result<()> {
    let path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Why FUSE cannot be used here, if it cannot: no `/dev/fuse` (e.g. in a
/// container), or nothing that may mount (neither root nor a `fusermount3` /
/// `fusermount` helper on `PATH`). Tests and benchmarks print this and skip
/// (under `CI=true`, where CI installed FUSE, they fail instead). Past this
/// check a mount that fails is a failure, not a skip.
pub fn unavailable_reason() -> Option<String> {
    if let Err(e) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
    {
        return Some(format!("/dev/fuse cannot be opened: {e}"));
    }
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let helper = std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path)
            .any(|dir| dir.join("fusermount3").exists() || dir.join("fusermount").exists())
    });
    if !root && !helper {
        return Some("not root, and no fusermount3/fusermount helper on PATH".into());
    }
    None
}

/// Mounts `kernel`'s `/scheme` namespace at `dir` (an existing, empty directory).
pub fn mount(kernel: Arc<Kernel>, dir: &Path) -> io::Result<Mounted> {
    let workers = Workers::new();
    let fs = SchemeFs::new(kernel, workers.clone());
    let mut config = Config::default();
    config.mount_options = vec![
        MountOption::FSName("redox-host".into()),
        MountOption::Subtype("redox".into()),
        MountOption::NoExec,
    ];
    // Root can let every user in (Redox-side permissions still apply); others
    // would need `user_allow_other` in /etc/fuse.conf.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        config.acl = SessionACL::All;
    }
    config.n_threads = Some(SESSION_THREADS);
    let session = fuser::spawn_mount(fs, dir, &config)?;
    Ok(Mounted {
        session: Some(session),
        workers,
        dir: dir.to_path_buf(),
    })
}
