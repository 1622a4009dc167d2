//! The FUSE filesystem: each FUSE request becomes the same `libredox` call a Redox
//! program would make, issued from a process of the simulated machine.
//!
//! Identity: one simulated process per Linux (uid, gid) of the FUSE caller —
//! uid 0 becomes root (`Cred::ROOT`), anyone else keeps their ids. So `sudo cat`
//! and `cat` differ exactly as they would on Redox (root-only writes get
//! `EACCES` for ordinary users), and descriptors of one user live in one fd table.
//! A FUSE file handle maps to one descriptor: open ↔ `open`, read ↔ `read`,
//! write ↔ `write`, release ↔ `close` (the last close ends the scheme session),
//! poll ↔ an event-queue subscription (`fevent`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use event::raw::{
    EventFlags, RawEventV1, redox_event_queue_create_v1, redox_event_queue_ctl_v1,
    redox_event_queue_destroy_v1, redox_event_queue_get_events_v1,
};
use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, PollEvents, PollFlags, PollNotifier, ReplyAttr, ReplyData, ReplyDirectory,
    ReplyEmpty, ReplyEntry, ReplyOpen, ReplyPoll, ReplyWrite, ReplyXattr, Request, WriteFlags,
};
use libredox::call;
use libredox::flag::{O_ACCMODE, O_CLOEXEC, O_DIRECTORY, O_NONBLOCK, O_RDONLY};

use super::namespace::{Inodes, NodeKind, ROOT_INO, join, kernel_path, list_dir};
use super::workers::Workers;
use crate::kernel::description::DescKind;
use crate::kernel::process::enter;
use crate::kernel::{Cred, Kernel, Process};

/// How long the Linux kernel may cache names and attributes.
const TTL: Duration = Duration::from_secs(1);

struct OpenFile {
    process: Arc<Process>,
    fd: usize,
    nonblock: bool,
    // The event queue a poll watcher is blocked on (one at a time), so release
    // can wake it: a watcher must not outlive its file.
    watch: Mutex<Option<usize>>,
}

impl OpenFile {
    /// Wakes the watcher blocked on this file's queue, if any.
    fn wake_watcher(&self) {
        if let Some(queue) = *lock(&self.watch)
            && let Ok(desc) = self.process.get(queue)
            && let DescKind::EventQueue(q) = &desc.kind
        {
            // An empty event: the watcher wakes, sees the file gone, and exits.
            q.push(usize::MAX, usize::MAX, 0);
        }
    }
}

/// The `/scheme` namespace of one simulated machine, as a FUSE filesystem.
pub struct SchemeFs {
    kernel: Arc<Kernel>,
    inodes: Inodes,
    callers: Mutex<HashMap<(u32, u32), Arc<Process>>>,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_fh: AtomicU64,
    workers: Arc<Workers>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl SchemeFs {
    /// The namespace of `kernel`.
    pub fn new(kernel: Arc<Kernel>, workers: Arc<Workers>) -> SchemeFs {
        SchemeFs {
            kernel,
            inodes: Inodes::new(),
            callers: Mutex::new(HashMap::new()),
            files: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            workers,
        }
    }

    /// The simulated process acting for the FUSE caller.
    fn caller(&self, req: &Request) -> Arc<Process> {
        let key = (req.uid(), req.gid());
        lock(&self.callers)
            .entry(key)
            .or_insert_with(|| {
                let cred = if key.0 == 0 {
                    Cred::ROOT
                } else {
                    Cred {
                        uid: key.0,
                        gid: key.1,
                    }
                };
                self.kernel.process(&format!("fuse-uid-{}", key.0), cred)
            })
            .clone()
    }

    fn file(&self, fh: FileHandle) -> Option<Arc<OpenFile>> {
        lock(&self.files).get(&fh.0).cloned()
    }

    fn attr(&self, ino: u64, kind: NodeKind, req_uid: u32, req_gid: u32) -> FileAttr {
        let now = SystemTime::now();
        let (kind, perm, nlink) = match kind {
            NodeKind::Dir => (FileType::Directory, 0o755, 2),
            // The scheme decides who may read or write; the mode lets every
            // request reach it.
            NodeKind::File => (FileType::RegularFile, 0o666, 1),
        };
        FileAttr {
            ino: INodeNo(ino),
            size: 0,
            blocks: 0,
            atime: now,
            mtime: now,
            ctime: now,
            crtime: now,
            kind,
            perm,
            nlink,
            uid: req_uid,
            gid: req_gid,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        }
    }

    /// The kind of `parent/name`, asking the scheme: its `getdents` listing
    /// first (no side effects), an `O_DIRECTORY` probe for unlisted names.
    fn kind_of(&self, parent: &str, name: &str) -> Result<NodeKind, i32> {
        if parent.is_empty() {
            return if self.kernel.scheme_names().iter().any(|s| s == name) {
                Ok(NodeKind::Dir)
            } else {
                Err(syscall::error::ENOENT)
            };
        }
        if let Ok(entries) = list_dir(parent)
            && let Some(e) = entries.iter().find(|e| e.name == name)
        {
            return Ok(e.kind);
        }
        match call::open(
            kernel_path(&join(parent, name)),
            O_RDONLY | O_DIRECTORY | O_CLOEXEC,
            0,
        ) {
            Ok(fd) => {
                let _ = call::close(fd);
                Ok(NodeKind::Dir)
            }
            Err(e) if e.errno() == syscall::error::ENOENT => Err(e.errno()),
            Err(_) => Ok(NodeKind::File),
        }
    }
}

fn read_job(file: Arc<OpenFile>, kernel: Arc<Kernel>, size: u32, reply: ReplyData) {
    let _g = enter(&kernel, &file.process);
    let mut buf = vec![0u8; size as usize];
    match call::read(file.fd, &mut buf) {
        Ok(n) => reply.data(buf.get(..n).unwrap_or(&[])),
        Err(e) => reply.error(errno(e.errno())),
    }
}

/// An event queue of the simulated machine, destroyed on drop (in the process
/// that made it: the caller keeps that process entered).
struct Watch(usize);

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: the queue number came from `redox_event_queue_create_v1`.
        unsafe {
            redox_event_queue_destroy_v1(self.0);
        }
    }
}

fn ready_now(queue: &Watch, timeout: Option<&libredox::data::TimeSpec>) -> Result<u32, i32> {
    let mut event = RawEventV1::default();
    let t = timeout.map_or(std::ptr::null(), |t| t as *const _);
    // SAFETY: one writable event slot; the timeout outlives the call.
    let r =
        unsafe { redox_event_queue_get_events_v1(queue.0, &mut event, 1, 0, t, std::ptr::null()) };
    let n = libredox::error::Error::demux(r).map_err(|e| e.errno())?;
    Ok(if n == 0 { 0 } else { event.flags })
}

fn to_redox_events(events: PollEvents) -> EventFlags {
    let mut f = EventFlags::empty();
    if events.intersects(PollEvents::POLLIN | PollEvents::POLLRDNORM) {
        f |= EventFlags::READ;
    }
    if events.intersects(PollEvents::POLLOUT | PollEvents::POLLWRNORM) {
        f |= EventFlags::WRITE;
    }
    f
}

fn to_poll_events(flags: u32) -> PollEvents {
    let mut p = PollEvents::empty();
    if flags & EventFlags::READ.bits() != 0 {
        p |= PollEvents::POLLIN;
    }
    if flags & EventFlags::WRITE.bits() != 0 {
        p |= PollEvents::POLLOUT;
    }
    p
}

impl Filesystem for SchemeFs {
    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let Some((ppath, NodeKind::Dir)) = self.inodes.get(parent.0) else {
            return reply.error(Errno::ENOTDIR);
        };
        let Some(name) = name.to_str() else {
            return reply.error(Errno::ENOENT);
        };
        let process = self.caller(req);
        let _g = enter(&self.kernel, &process);
        match self.kind_of(&ppath, name) {
            Ok(kind) => {
                let ino = self.inodes.intern(&join(&ppath, name), kind);
                reply.entry(
                    &TTL,
                    &self.attr(ino, kind, req.uid(), req.gid()),
                    Generation(0),
                );
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn getattr(&self, req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.inodes.get(ino.0) {
            Some((_, kind)) => reply.attr(&TTL, &self.attr(ino.0, kind, req.uid(), req.gid())),
            None => reply.error(Errno::ENOENT),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        req: &Request,
        ino: INodeNo,
        _mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        _size: Option<u64>,
        _atime: Option<fuser::TimeOrNow>,
        _mtime: Option<fuser::TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        // Scheme files have no size or times to set; accepting the request is what
        // lets a shell's `echo ... > file` (O_TRUNC) reach the scheme's write.
        self.getattr(req, ino, None, reply);
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let Some((path, _)) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOENT);
        };
        let process = self.caller(req);
        let _g = enter(&self.kernel, &process);
        let nonblock = flags.0 & O_NONBLOCK != 0;
        let redox_flags = (flags.0 & O_ACCMODE) | (flags.0 & O_NONBLOCK) | O_CLOEXEC;
        match call::open(kernel_path(&path), redox_flags, 0) {
            Ok(fd) => {
                let fh = self.next_fh.fetch_add(1, Ordering::Relaxed);
                lock(&self.files).insert(
                    fh,
                    Arc::new(OpenFile {
                        process: process.clone(),
                        fd,
                        nonblock,
                        watch: Mutex::new(None),
                    }),
                );
                // Scheme files are streams with no known size: every read must
                // reach the scheme (no page cache), and offsets mean nothing.
                reply.opened(
                    FileHandle(fh),
                    FopenFlags::FOPEN_DIRECT_IO | FopenFlags::FOPEN_NONSEEKABLE,
                );
            }
            Err(e) => reply.error(errno(e.errno())),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let Some(file) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let kernel = self.kernel.clone();
        if file.nonblock {
            read_job(file, kernel, size, reply);
        } else {
            // A blocking read may wait for an event: off the session threads.
            self.workers
                .run(move || read_job(file, kernel, size, reply));
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let Some(file) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let _g = enter(&self.kernel, &file.process);
        match call::write(file.fd, data) {
            Ok(n) => reply.written(u32::try_from(n).unwrap_or(u32::MAX)),
            Err(e) => reply.error(errno(e.errno())),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        let Some(file) = lock(&self.files).remove(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        file.wake_watcher();
        let _g = enter(&self.kernel, &file.process);
        match call::close(file.fd) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e.errno())),
        }
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.inodes.get(ino.0) {
            Some((_, NodeKind::Dir)) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Some(_) => reply.error(Errno::ENOTDIR),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let Some((path, NodeKind::Dir)) = self.inodes.get(ino.0) else {
            return reply.error(Errno::ENOTDIR);
        };
        let entries: Vec<(String, NodeKind)> = if path.is_empty() {
            self.kernel
                .scheme_names()
                .into_iter()
                .map(|n| (n, NodeKind::Dir))
                .collect()
        } else {
            let process = self.caller(req);
            let _g = enter(&self.kernel, &process);
            match list_dir(&path) {
                Ok(list) => list.into_iter().map(|e| (e.name, e.kind)).collect(),
                Err(e) => return reply.error(errno(e)),
            }
        };
        let dots = [
            (".".to_string(), NodeKind::Dir, ino.0),
            ("..".to_string(), NodeKind::Dir, ROOT_INO),
        ];
        let all = dots
            .into_iter()
            .chain(entries.into_iter().map(|(name, kind)| {
                let child = self.inodes.intern(&join(&path, &name), kind);
                (name, kind, child)
            }));
        for (i, (name, kind, child)) in all.enumerate().skip(offset as usize) {
            let ft = match kind {
                NodeKind::Dir => FileType::Directory,
                NodeKind::File => FileType::RegularFile,
            };
            if reply.add(INodeNo(child), i as u64 + 1, ft, &name) {
                break;
            }
        }
        reply.ok();
    }

    fn getxattr(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: ReplyXattr,
    ) {
        // Schemes have no extended attributes (tools ask for SELinux labels).
        reply.error(Errno::ENODATA);
    }

    fn listxattr(&self, _req: &Request, _ino: INodeNo, _size: u32, reply: ReplyXattr) {
        reply.size(0);
    }

    #[allow(clippy::too_many_arguments)]
    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: fuser::IoctlFlags,
        _cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: fuser::ReplyIoctl,
    ) {
        // Redox's ioctl is `call` on the descriptor, which FUSE cannot carry;
        // "not a terminal" is what Linux tools expect from a plain file.
        reply.error(Errno::ENOTTY);
    }

    fn poll(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        ph: PollNotifier,
        events: PollEvents,
        flags: PollFlags,
        reply: ReplyPoll,
    ) {
        let Some(file) = self.file(fh) else {
            return reply.error(Errno::EBADF);
        };
        let wanted = to_redox_events(events);
        let _g = enter(&self.kernel, &file.process);
        // SAFETY: plain system call of the simulated machine.
        let q = unsafe { redox_event_queue_create_v1(0) };
        let queue = match libredox::error::Error::demux(q) {
            Ok(q) => Watch(q),
            Err(e) => return reply.error(errno(e.errno())),
        };
        // Subscribing asks the scheme (`fevent`) for the readiness it has now.
        // SAFETY: plain system call of the simulated machine.
        let r = unsafe { redox_event_queue_ctl_v1(queue.0, file.fd, wanted.bits(), 0) };
        if let Err(e) = libredox::error::Error::demux(r) {
            return reply.error(errno(e.errno()));
        }
        let zero = libredox::data::TimeSpec::default();
        let ready = match ready_now(&queue, Some(&zero)) {
            Ok(r) => r,
            Err(e) => return reply.error(errno(e)),
        };
        reply.poll(to_poll_events(ready) & events);
        if ready != 0 || !flags.contains(PollFlags::FUSE_POLL_SCHEDULE_NOTIFY) {
            return;
        }
        {
            let mut watch = lock(&file.watch);
            if watch.is_some() {
                // One watcher per file is enough: it notifies the Linux kernel,
                // which polls again and so re-arms.
                return;
            }
            *watch = Some(queue.0);
        }
        // Nothing ready: wait for the scheme's event (or the file's release),
        // then tell the Linux kernel to poll again.
        let kernel = self.kernel.clone();
        self.workers.run(move || {
            let _g = enter(&kernel, &file.process);
            let woke = ready_now(&queue, None);
            // Forget the queue before destroying it, so release never pushes to
            // a reused descriptor number.
            *lock(&file.watch) = None;
            drop(queue);
            if matches!(woke, Ok(flags) if flags != 0) {
                let _ = ph.notify();
            }
        });
    }
}
