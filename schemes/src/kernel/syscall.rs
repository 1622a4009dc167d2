//! The system calls, as the Redox kernel would serve them for the current process.
//!
//! `abi.rs` turns the relibc C ABI into calls on [`Context`]; everything here works
//! with Rust slices and Redox flag values, and returns `syscall::Result`.

use std::mem::size_of;
use std::sync::Arc;
use std::time::Instant;

use syscall::data::NewFdParams;
use syscall::dirent::DirentHeader;
use syscall::error::{EBADF, EINVAL, EIO, ENODEV, ENOENT, ENOSYS, ENOTDIR, EPERM, Error, Result};
use syscall::flag::{self as rflag, EventFlags, StdFsCallKind};
use syscall::schemev2::{NewFdFlags, Opcode, Sqe};

use event::raw::RawEventV1;

use super::NsEntry;
use super::description::{DescKind, Description};
use super::event::{EventQueue, SourceKey};
use super::flags;
use super::kscheme::{Caller, MmapRequest};
use super::process::Context;
use super::user_scheme::{Reply, SchemeSocket};

const SCHEME_PREFIX: &str = "/scheme/";

/// The schemes a process in the null namespace (after `setrens(0, 0)`) can still
/// open by path: the kernel's null namespace holds only `memory`, `thisproc` and
/// `pipe` (kernel `src/scheme/mod.rs` `SchemeList::new_null`), and the mock serves
/// `memory` of those. Any other name is missing there, and `open` fails with
/// ENODEV as for any name a namespace lacks (kernel `src/syscall/fs.rs` `open`:
/// `get_name(scheme_ns, ..)` → ENODEV). Descriptors opened before, and `openat` on
/// them, keep working: they name their scheme directly.
const NULL_NAMESPACE_SCHEMES: &[&str] = &["memory"];

/// The kernel's tail buffer a user-scheme path is copied into: one page.
const TAIL_BUFFER: usize = 4096;

impl Context {
    pub(super) fn caller(&self) -> Caller {
        Caller {
            process: self.process.clone(),
        }
    }

    pub(super) fn creds_arg(&self) -> u64 {
        u64::from(self.process.uid) | (u64::from(self.process.gid) << 32)
    }

    pub(super) fn sqe(&self, opcode: Opcode, args: [u64; 6]) -> Sqe {
        Sqe {
            opcode: opcode as u8,
            args,
            caller: self.process.pid as u64,
            ..Sqe::default()
        }
    }

    /// `open(path, flags, mode)` with host flags.
    pub fn open(&self, path: &str, host_flags: i32, mode: u16) -> Result<usize> {
        let flags = flags::open_flags(host_flags) | usize::from(mode);
        let rest = path.strip_prefix(SCHEME_PREFIX).ok_or(Error::new(ENOENT))?;
        let (name, sub) = rest.split_once('/').unwrap_or((rest, ""));
        if self.process.in_null_namespace() && !NULL_NAMESPACE_SCHEMES.contains(&name) {
            return Err(Error::new(ENODEV));
        }
        let desc = if name == "namespace" {
            if sub != "scheme-creation-cap" {
                return Err(Error::new(ENOENT));
            }
            self.kernel
                .new_description(DescKind::CreationCap, flags, false)
        } else {
            match self.kernel.lookup(name).ok_or(Error::new(ENOENT))? {
                NsEntry::User(root) => self.open_user(&root, sub, flags)?,
                NsEntry::Kernel { scheme, id } => {
                    let handle = scheme.open(sub, flags, &self.caller())?;
                    self.kernel.new_description(
                        DescKind::Kernel {
                            scheme,
                            scheme_id: id,
                            scheme_name: name.to_string(),
                            handle,
                            path: sub.to_string(),
                        },
                        flags & !libredox::protocol::O_CLOEXEC,
                        false,
                    )
                }
            }
        };
        self.install(desc, flags)
    }

    /// `openat(dirfd, path, flags, fcntl_flags)` with host flags.
    pub fn openat(&self, dirfd: usize, path: &str, host_flags: i32, fcntl: u32) -> Result<usize> {
        let flags = flags::open_flags(host_flags) | flags::status_flags(fcntl as usize);
        let dir = self.process.get(dirfd)?;
        let desc = match &dir.kind {
            DescKind::UserFile { .. } => self.open_user(&dir, path, flags)?,
            DescKind::Kernel {
                scheme,
                scheme_id,
                scheme_name,
                path: base,
                handle: dir_handle,
            } => {
                scheme.check_openat_dir(*dir_handle)?;
                let full = match base.as_str() {
                    "" | "scheme-root" => path.to_string(),
                    b => format!("{b}/{path}"),
                };
                let handle = scheme.open(&full, flags, &self.caller())?;
                self.kernel.new_description(
                    DescKind::Kernel {
                        scheme: scheme.clone(),
                        scheme_id: *scheme_id,
                        scheme_name: scheme_name.clone(),
                        handle,
                        path: full,
                    },
                    flags & !libredox::protocol::O_CLOEXEC,
                    false,
                )
            }
            _ => return Err(Error::new(ENOTDIR)),
        };
        self.install(desc, flags)
    }

    fn install(&self, desc: Arc<Description>, flags: usize) -> Result<usize> {
        self.process
            .insert(desc, flags & libredox::protocol::O_CLOEXEC != 0)
    }

    /// OpenAt on a userspace scheme: the request carries the path and the caller.
    /// The path is copied into the kernel's one-page tail buffer, so a longer one is
    /// `EINVAL` (`UserInner::copy_and_capture_tail` in `src/scheme/user.rs`).
    fn open_user(&self, dir: &Description, path: &str, flags: usize) -> Result<Arc<Description>> {
        let DescKind::UserFile { socket, number } = &dir.kind else {
            return Err(Error::new(ENOTDIR));
        };
        if path.len() > TAIL_BUFFER {
            return Err(Error::new(EINVAL));
        }
        let sqe = self.sqe(
            Opcode::OpenAt,
            [
                *number as u64,
                path.as_ptr() as u64,
                path.len() as u64,
                flags as u64,
                (flags & rflag::O_FCNTL_MASK) as u64,
                self.creds_arg(),
            ],
        );
        self.new_file_reply(socket, socket.request(sqe)?, flags)
    }

    fn new_file_reply(
        &self,
        socket: &Arc<SchemeSocket>,
        reply: Reply,
        flags: usize,
    ) -> Result<Arc<Description>> {
        match reply {
            Reply::Fd(desc) => Ok(desc),
            Reply::MultipleFds(_) => Err(Error::new(EIO)),
            Reply::Cqe(cqe) => {
                let number = Error::demux(cqe.result as usize)?;
                let new_flags = NewFdFlags::from_bits_retain(cqe.extra_raw[0]);
                Ok(self.kernel.new_description(
                    DescKind::UserFile {
                        socket: socket.clone(),
                        number,
                    },
                    flags & !libredox::protocol::O_CLOEXEC,
                    new_flags.contains(NewFdFlags::POSITIONED),
                ))
            }
        }
    }

    /// The answer to a request that expects a number: an fd (or fds) handed back
    /// instead is `EIO` (`UserInner::call` in `src/scheme/user.rs`).
    pub(super) fn regular(reply: Reply) -> Result<usize> {
        match reply {
            Reply::Cqe(cqe) => Error::demux(cqe.result as usize),
            Reply::Fd(_) | Reply::MultipleFds(_) => Err(Error::new(EIO)),
        }
    }

    fn offset_arg(desc: &Description) -> u64 {
        if desc.positioned {
            desc.offset.load(std::sync::atomic::Ordering::Acquire)
        } else {
            u64::MAX
        }
    }

    fn advance(desc: &Description, n: usize) {
        if desc.positioned {
            desc.offset
                .fetch_add(n as u64, std::sync::atomic::Ordering::AcqRel);
        }
    }

    /// A Read or Write on a userspace scheme: the request points into the caller's
    /// buffer, which stays valid because the caller blocks until the reply.
    fn transfer(
        &self,
        desc: &Description,
        socket: &SchemeSocket,
        number: usize,
        opcode: Opcode,
        ptr: *mut u8,
        len: usize,
    ) -> Result<usize> {
        let sqe = self.sqe(
            opcode,
            [
                number as u64,
                ptr as u64,
                len as u64,
                Self::offset_arg(desc),
                desc.flags() as u64,
                self.creds_arg(),
            ],
        );
        let n = Self::regular(socket.request(sqe)?)?;
        Self::advance(desc, n);
        Ok(n)
    }

    /// `read(fd, buf)`.
    pub fn read(&self, fd: usize, buf: &mut [u8]) -> Result<usize> {
        let desc = self.process.get(fd)?;
        match &desc.kind {
            DescKind::UserFile { socket, number } => self.transfer(
                &desc,
                socket,
                *number,
                Opcode::Read,
                buf.as_mut_ptr(),
                buf.len(),
            ),
            DescKind::Socket(s) => s.read_requests(buf, desc.flags() & rflag::O_NONBLOCK != 0),
            DescKind::Kernel { scheme, handle, .. } => {
                scheme.read(*handle, buf, desc.flags(), &self.caller())
            }
            _ => Err(Error::new(EBADF)),
        }
    }

    /// `write(fd, buf)`.
    pub fn write(&self, fd: usize, buf: &[u8]) -> Result<usize> {
        let desc = self.process.get(fd)?;
        match &desc.kind {
            DescKind::UserFile { socket, number } => {
                let ptr = buf.as_ptr().cast_mut();
                self.transfer(&desc, socket, *number, Opcode::Write, ptr, buf.len())
            }
            DescKind::Socket(s) => s.write_responses(buf, &self.process),
            DescKind::Kernel { scheme, handle, .. } => {
                scheme.write(*handle, buf, desc.flags(), &self.caller())
            }
            _ => Err(Error::new(EBADF)),
        }
    }

    /// `close(fd)`: the last close of a description runs its `Drop` (CloseMsg).
    pub fn close(&self, fd: usize) -> Result<usize> {
        let desc = self.process.remove(fd)?;
        drop(desc);
        Ok(0)
    }

    /// `dup(fd, buf)`: empty `buf` shares the description; otherwise the scheme decides.
    pub fn dup(&self, fd: usize, buf: &[u8]) -> Result<usize> {
        let desc = self.process.get(fd)?;
        if buf.is_empty() {
            return self.process.insert(desc, false);
        }
        let new = match &desc.kind {
            DescKind::CreationCap if buf == b"create-scheme" => {
                let socket = Arc::new(SchemeSocket::new(
                    self.kernel.next_id(),
                    self.kernel.hub.clone(),
                ));
                self.kernel
                    .new_description(DescKind::Socket(socket), rflag::O_RDWR, false)
            }
            DescKind::Socket(socket) if buf.len() == size_of::<NewFdParams>() => {
                // SAFETY: length checked; NewFdParams is plain old data.
                let params: NewFdParams =
                    unsafe { buf.as_ptr().cast::<NewFdParams>().read_unaligned() };
                let positioned = NewFdFlags::from_bits_retain(params.internal_flags)
                    .contains(NewFdFlags::POSITIONED);
                let d = self.kernel.new_description(
                    DescKind::UserFile {
                        socket: socket.clone(),
                        number: params.number,
                    },
                    params.flags,
                    positioned,
                );
                d.offset
                    .store(params.offset, std::sync::atomic::Ordering::Release);
                d
            }
            DescKind::Thread if buf == b"open_via_dup" => {
                self.kernel
                    .new_description(DescKind::Thread, rflag::O_RDWR, false)
            }
            DescKind::UserFile { socket, number } => {
                let sqe = self.sqe(
                    Opcode::Dup,
                    [
                        *number as u64,
                        buf.as_ptr() as u64,
                        buf.len() as u64,
                        0,
                        0,
                        self.creds_arg(),
                    ],
                );
                self.new_file_reply(socket, socket.request(sqe)?, desc.flags())?
            }
            _ => return Err(Error::new(EINVAL)),
        };
        self.process.insert(new, false)
    }

    /// `dup2(old, new)`: `new` refers to the same description as `old`.
    pub fn dup2(&self, old: usize, new: usize) -> Result<usize> {
        let desc = self.process.get(old)?;
        if old == new {
            return Ok(new);
        }
        let replaced = self.process.insert_at(new, desc, false)?;
        drop(replaced);
        Ok(new)
    }

    /// `fcntl(fd, cmd, arg)` with host flag values for `F_SETFL`/`F_GETFL`.
    ///
    /// As `fcntl` in `redox-os/kernel src/syscall/fs.rs`: `F_DUPFD` is the kernel's
    /// alone; every other command except `F_GETFD`/`F_SETFD` first goes to the scheme
    /// as an `Fcntl` request (`UserScheme::fcntl` in `src/scheme/user.rs`, with the
    /// caller's uid/gid), and only if the scheme answers Ok does the kernel apply it.
    /// So redox-scheme's default `fcntl` (`EOPNOTSUPP`) makes even `F_GETFL` fail.
    pub fn fcntl(&self, fd: usize, cmd: usize, arg: usize) -> Result<usize> {
        let desc = self.process.get(fd)?;
        if cmd == rflag::F_DUPFD {
            return self.process.insert(desc, false);
        }
        // What the scheme sees: Redox flag values, as relibc would pass them.
        let status = flags::status_flags(arg);
        let scheme_arg = if cmd == rflag::F_SETFL { status } else { arg };
        if cmd != rflag::F_GETFD
            && cmd != rflag::F_SETFD
            && let DescKind::UserFile { socket, number } = &desc.kind
        {
            let sqe = self.sqe(
                Opcode::Fcntl,
                [
                    *number as u64,
                    cmd as u64,
                    scheme_arg as u64,
                    0,
                    0,
                    self.creds_arg(),
                ],
            );
            Self::regular(socket.request(sqe)?)?;
        }
        match cmd {
            rflag::F_GETFD => Ok(usize::from(self.process.cloexec(fd)?)),
            rflag::F_SETFD => {
                let on =
                    arg & (libc::FD_CLOEXEC as usize) != 0 || arg & (libc::O_CLOEXEC as usize) != 0;
                self.process.set_cloexec(fd, on)?;
                Ok(0)
            }
            rflag::F_GETFL => Ok(flags::host_status_flags(desc.flags())),
            rflag::F_SETFL => {
                let keep = desc.flags() & rflag::O_ACCMODE;
                desc.flags
                    .store(keep | status, std::sync::atomic::Ordering::Release);
                Ok(0)
            }
            _ => Err(Error::new(EINVAL)),
        }
    }

    /// `fpath(fd, buf)`.
    pub fn fpath(&self, fd: usize, buf: &mut [u8]) -> Result<usize> {
        let desc = self.process.get(fd)?;
        match &desc.kind {
            DescKind::UserFile { socket, number } => {
                let sqe = self.sqe(
                    Opcode::Fpath,
                    [
                        *number as u64,
                        buf.as_mut_ptr() as u64,
                        buf.len() as u64,
                        0,
                        0,
                        self.creds_arg(),
                    ],
                );
                Self::regular(socket.request(sqe)?)
            }
            DescKind::Kernel {
                scheme,
                scheme_name,
                path,
                handle,
                ..
            } => {
                let p = match scheme.fpath(*handle) {
                    Some(p) => p?,
                    None => format!("{SCHEME_PREFIX}{scheme_name}/{path}"),
                };
                let n = p.len().min(buf.len());
                buf[..n].copy_from_slice(&p.as_bytes()[..n]);
                Ok(n)
            }
            _ => Err(Error::new(EBADF)),
        }
    }

    /// `getdents(fd, buf, opaque)`.
    ///
    /// relibc lists a directory with a standard fs call (`CallFlags::STD_FS`,
    /// `StdFsCallMeta { kind: Getdents, arg1: opaque, arg2: header size }`), so a
    /// user scheme receives `Opcode::StdFsCall` with the kind, opaque offset and
    /// header size in `args[3..6]` and no credentials; the kernel's own
    /// `UserScheme::getdents` (`Opcode::Getdents`) is unreachable
    /// (`shared/notes/redox-real.md` §3; redox-scheme turns it back into `getdents`).
    pub fn getdents(&self, fd: usize, buf: &mut [u8], opaque: u64) -> Result<usize> {
        let desc = self.process.get(fd)?;
        match &desc.kind {
            DescKind::UserFile { socket, number } => {
                let sqe = self.sqe(
                    Opcode::StdFsCall,
                    [
                        *number as u64,
                        buf.as_mut_ptr() as u64,
                        buf.len() as u64,
                        StdFsCallKind::Getdents as u64,
                        opaque,
                        size_of::<DirentHeader>() as u64,
                    ],
                );
                Self::regular(socket.request(sqe)?)
            }
            DescKind::Kernel { scheme, handle, .. } => {
                scheme.getdents(*handle, buf, size_of::<DirentHeader>() as u16, opaque)
            }
            _ => Err(Error::new(ENOTDIR)),
        }
    }

    /// `fstat(fd)` of a kernel scheme handle (userspace schemes: `ENOSYS`, not emulated).
    pub fn fstat(&self, fd: usize) -> Result<syscall::data::Stat> {
        let desc = self.process.get(fd)?;
        match &desc.kind {
            DescKind::Kernel { scheme, handle, .. } => scheme.fstat(*handle),
            _ => Err(Error::new(ENOSYS)),
        }
    }

    /// `mmap` of a kernel scheme handle (memory allocations and physmaps), with host
    /// `PROT_*` / `MAP_*` values.
    pub fn mmap(
        &self,
        fd: usize,
        addr: usize,
        len: usize,
        host_prot: u32,
        host_flags: u32,
        offset: u64,
    ) -> Result<usize> {
        let desc = self.process.get(fd)?;
        let DescKind::Kernel { scheme, handle, .. } = &desc.kind else {
            return Err(Error::new(syscall::error::ENODEV));
        };
        let req = MmapRequest {
            offset,
            len,
            flags: flags::map_flags(host_prot, host_flags),
            addr,
        };
        let grant = scheme.mmap(*handle, &req, &self.caller())?;
        super::wait::lock(&self.process.mappings).insert(grant.host_addr, grant);
        Ok(grant.host_addr)
    }

    /// `munmap(addr, len)`: whole mappings only, as drivers unmap what they mapped.
    pub fn munmap(&self, addr: usize, _len: usize) -> Result<usize> {
        let grant = super::wait::lock(&self.process.mappings)
            .remove(&addr)
            .ok_or(Error::new(EINVAL))?;
        // Only the memory scheme hands out owned grants (allocations); the grant goes
        // back to whichever scheme serves `memory` on this machine (the simulated
        // arena, or guest RAM in guest mode).
        if grant.owned
            && let Some(NsEntry::Kernel { scheme, .. }) = self.kernel.lookup("memory")
        {
            scheme.unmap(&grant);
        }
        Ok(0)
    }

    /// `getns()`: a handle on the process's namespace.
    pub fn getns(&self) -> Result<usize> {
        let d = self.kernel.new_description(DescKind::Namespace, 0, false);
        self.process.insert(d, true)
    }

    /// `register_scheme_to_ns(ns, name, cap)`.
    pub fn register_scheme_to_ns(&self, ns_fd: usize, name: &str, cap_fd: usize) -> Result<usize> {
        if !matches!(self.process.get(ns_fd)?.kind, DescKind::Namespace) {
            return Err(Error::new(EBADF));
        }
        let cap = self.process.get(cap_fd)?;
        if !matches!(cap.kind, DescKind::UserFile { .. }) {
            return Err(Error::new(EINVAL));
        }
        if name.is_empty() || name.contains('/') {
            return Err(Error::new(EINVAL));
        }
        self.kernel.register_user_scheme(name, cap)?;
        Ok(0)
    }

    /// `setrens(rns, ens)`: `(0, 0)` is the null namespace daemons enter after
    /// startup (kernel `src/syscall/process.rs` `setrens`). Entering it is always
    /// allowed; once in it, asking for any other namespace is EPERM ("do not allow
    /// leaving capability mode"); `usize::MAX` (-1) leaves a namespace as it is.
    /// The mock has one namespace, so a non-zero request outside the null
    /// namespace keeps it.
    pub fn setrens(&self, rns: usize, ens: usize) -> Result<usize> {
        let leaves = |ns: usize| ns != 0 && ns != usize::MAX;
        if self.process.in_null_namespace() && (leaves(rns) || leaves(ens)) {
            return Err(Error::new(EPERM));
        }
        if rns == 0 && ens == 0 {
            self.process.enter_null_namespace();
        }
        Ok(0)
    }

    /// `redox_event_queue_create_v1`.
    pub fn event_queue_create(&self) -> Result<usize> {
        let q = Arc::new(EventQueue::new(self.kernel.next_id()));
        let d = self
            .kernel
            .new_description(DescKind::EventQueue(q), rflag::O_RDWR, false);
        self.process.insert(d, true)
    }

    fn queue_of(&self, queue_fd: usize) -> Result<Arc<EventQueue>> {
        match &self.process.get(queue_fd)?.kind {
            DescKind::EventQueue(q) => Ok(q.clone()),
            _ => Err(Error::new(EBADF)),
        }
    }

    /// `redox_event_queue_ctl_v1`: subscribe `fd` (empty flags unsubscribe). Readiness
    /// the file already has is queued at once, like Redox's initial `fevent`.
    pub fn event_queue_ctl(
        &self,
        queue_fd: usize,
        fd: usize,
        flags: u32,
        data: usize,
    ) -> Result<usize> {
        let queue = self.queue_of(queue_fd)?;
        let desc = self.process.get(fd)?;
        let key = desc.source_key().ok_or(Error::new(EBADF))?;
        // Subscribe before asking, so readiness posted in between is not lost.
        self.kernel
            .hub
            .subscribe(key, &queue, desc.id, fd, data, flags);
        if flags == 0 {
            return Ok(0);
        }
        let ready = match &desc.kind {
            DescKind::UserFile { socket, number } => {
                let sqe = self.sqe(
                    Opcode::Fevent,
                    [*number as u64, u64::from(flags), 0, 0, 0, self.creds_arg()],
                );
                Self::regular(socket.request(sqe)?)? as u32
            }
            DescKind::Socket(s) => {
                if s.is_readable() {
                    EventFlags::EVENT_READ.bits() as u32
                } else {
                    0
                }
            }
            DescKind::Kernel { scheme, handle, .. } => scheme.fevent(*handle, flags)?,
            _ => 0,
        };
        if ready & flags != 0 {
            queue.push(fd, data, ready & flags);
        }
        Ok(0)
    }

    /// `redox_event_queue_get_events_v1`.
    pub fn event_queue_get(
        &self,
        queue_fd: usize,
        out: &mut [RawEventV1],
        deadline: Option<Instant>,
    ) -> Result<usize> {
        let queue = self.queue_of(queue_fd)?;
        Ok(queue.take(out, deadline))
    }

    /// Readiness key of a descriptor (tests use it to post events by hand).
    pub fn source_key(&self, fd: usize) -> Result<SourceKey> {
        self.process.get(fd)?.source_key().ok_or(Error::new(EBADF))
    }
}
