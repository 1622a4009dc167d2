//! Processes: credentials, a file descriptor table, memory mappings — and the
//! thread-local "current process" through which the relibc ABI finds its kernel.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EBADF, EMFILE, Error, Result};

use super::Kernel;
use super::description::Description;
use super::kscheme::MmapGrant;
use super::wait::lock;

/// Most file descriptors one process may hold (`EMFILE` past it).
pub const FD_LIMIT: usize = 4096;

/// User and group a process runs as.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Cred {
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

impl Cred {
    /// root.
    pub const ROOT: Cred = Cred { uid: 0, gid: 0 };
    /// An ordinary user.
    pub const USER: Cred = Cred {
        uid: 1000,
        gid: 1000,
    };
}

struct FdEntry {
    desc: Arc<Description>,
    cloexec: bool,
}

/// One simulated process. Threads that enter it share its descriptors.
pub struct Process {
    /// Process id.
    pub pid: usize,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
    /// A name for logs.
    pub name: String,
    fds: Mutex<BTreeMap<usize, FdEntry>>,
    /// Memory mapped through kernel schemes, by host address.
    pub mappings: Mutex<BTreeMap<usize, MmapGrant>>,
    null_namespace: AtomicBool,
    /// Threads the kernel let run `in`/`out` (`Iopl` is per thread).
    io_threads: Mutex<std::collections::HashSet<std::thread::ThreadId>>,
}

impl Process {
    pub(super) fn new(pid: usize, cred: Cred, name: &str) -> Self {
        Self {
            pid,
            uid: cred.uid,
            gid: cred.gid,
            name: name.to_string(),
            fds: Mutex::new(BTreeMap::new()),
            mappings: Mutex::new(BTreeMap::new()),
            null_namespace: AtomicBool::new(false),
            io_threads: Mutex::new(std::collections::HashSet::new()),
        }
    }

    /// Installs a description at the lowest free descriptor.
    pub fn insert(&self, desc: Arc<Description>, cloexec: bool) -> Result<usize> {
        let mut fds = lock(&self.fds);
        if fds.len() >= FD_LIMIT {
            return Err(Error::new(EMFILE));
        }
        // Descriptor numbers start at 1 so that a stray 0 never names a live file.
        let mut fd = 1;
        for &used in fds.keys() {
            if used != fd {
                break;
            }
            fd += 1;
        }
        fds.insert(fd, FdEntry { desc, cloexec });
        Ok(fd)
    }

    /// Installs a description at `fd`, returning what was there (to drop outside the lock).
    pub fn insert_at(
        &self,
        fd: usize,
        desc: Arc<Description>,
        cloexec: bool,
    ) -> Result<Option<Arc<Description>>> {
        if fd >= FD_LIMIT * 16 {
            return Err(Error::new(EBADF));
        }
        let old = lock(&self.fds).insert(fd, FdEntry { desc, cloexec });
        Ok(old.map(|e| e.desc))
    }

    /// The description behind `fd`.
    pub fn get(&self, fd: usize) -> Result<Arc<Description>> {
        lock(&self.fds)
            .get(&fd)
            .map(|e| e.desc.clone())
            .ok_or(Error::new(EBADF))
    }

    /// Removes `fd`; the caller drops the description outside the table lock, since the
    /// last close may talk to a scheme.
    pub fn remove(&self, fd: usize) -> Result<Arc<Description>> {
        lock(&self.fds)
            .remove(&fd)
            .map(|e| e.desc)
            .ok_or(Error::new(EBADF))
    }

    /// The close-on-exec bit of `fd`.
    pub fn cloexec(&self, fd: usize) -> Result<bool> {
        lock(&self.fds)
            .get(&fd)
            .map(|e| e.cloexec)
            .ok_or(Error::new(EBADF))
    }

    /// Sets the close-on-exec bit of `fd`.
    pub fn set_cloexec(&self, fd: usize, on: bool) -> Result<()> {
        let mut fds = lock(&self.fds);
        let e = fds.get_mut(&fd).ok_or(Error::new(EBADF))?;
        e.cloexec = on;
        Ok(())
    }

    /// Number of open descriptors.
    pub fn fd_count(&self) -> usize {
        lock(&self.fds).len()
    }

    /// Closes every descriptor (the process exits).
    pub fn close_all(&self) {
        let all = std::mem::take(&mut *lock(&self.fds));
        drop(all);
    }

    /// Whether `setrens(0, 0)` moved the process into the null namespace.
    pub fn in_null_namespace(&self) -> bool {
        self.null_namespace.load(Ordering::Acquire)
    }

    /// Whether the kernel granted the *calling thread* of this process x86 I/O
    /// port privilege (`Iopl`): the grant is per thread and not inherited
    /// (kernel `src/scheme/proc.rs`: `context::current()`).
    pub fn has_io_privilege(&self) -> bool {
        lock(&self.io_threads).contains(&std::thread::current().id())
    }

    /// Grants the calling thread I/O port privilege.
    pub(super) fn grant_io_privilege(&self) {
        lock(&self.io_threads).insert(std::thread::current().id());
    }

    pub(super) fn enter_null_namespace(&self) {
        self.null_namespace.store(true, Ordering::Release);
    }
}

/// The kernel and process the current thread runs in.
#[derive(Clone)]
pub struct Context {
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// The process.
    pub process: Arc<Process>,
}

thread_local! {
    static CURRENT: RefCell<Option<Context>> = const { RefCell::new(None) };
}

/// Runs `f` with the current thread's context, if it entered one.
pub fn with_current<R>(f: impl FnOnce(&Context) -> R) -> Option<R> {
    // Borrowed, not cloned: this runs on every system call.
    CURRENT.with(|c| c.borrow().as_ref().map(f))
}

/// Restores the previous context of the thread when dropped.
pub struct EnterGuard {
    previous: Option<Context>,
}

impl Drop for EnterGuard {
    fn drop(&mut self) {
        let prev = self.previous.take();
        CURRENT.with(|c| *c.borrow_mut() = prev);
    }
}

/// Makes the current thread run as `process` of `kernel` until the guard drops.
pub fn enter(kernel: &Arc<Kernel>, process: &Arc<Process>) -> EnterGuard {
    let ctx = Context {
        kernel: kernel.clone(),
        process: process.clone(),
    };
    let previous = CURRENT.with(|c| c.borrow_mut().replace(ctx));
    EnterGuard { previous }
}
