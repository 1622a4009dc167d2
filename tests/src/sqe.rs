//! The SQE-level harness: real `Sqe`s with real buffers, decoded by redox-scheme's own
//! `Op::from_sqe_unchecked` and dispatched with `Op::handle_sync` into any
//! `SchemeSync`, returning the `Cqe` — protocol tests without threads or a kernel.

use std::mem::{size_of, transmute};

use redox_scheme::scheme::{IntoTag, Op, SchemeState, SchemeSync};
use redox_scheme::{CallerCtx, Request, RequestKind, Response};
use syscall::dirent::DirentHeader;
use syscall::error::Error;
use syscall::schemev2::{Cqe, Opcode, Sqe};

/// What a request came back with.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Reply {
    /// The result, or the errno.
    pub result: Result<usize, i32>,
    /// `Cqe::extra_raw` (new-fd flags of an open).
    pub extra: [u8; 3],
}

/// Drives one scheme with hand-built `Sqe`s.
pub struct SqeHarness<S: SchemeSync> {
    /// The scheme under test.
    pub scheme: S,
    state: SchemeState,
    next_tag: u32,
    /// Process id the requests claim.
    pub pid: usize,
    /// User id the requests claim.
    pub uid: u32,
    /// Group id the requests claim.
    pub gid: u32,
}

/// Builds an `Sqe`.
pub fn sqe(opcode: Opcode, args: [u64; 6], pid: usize) -> Sqe {
    Sqe {
        opcode: opcode as u8,
        args,
        caller: pid as u64,
        ..Sqe::default()
    }
}

impl<S: SchemeSync> SqeHarness<S> {
    /// A harness calling as root (pid 100).
    pub fn new(scheme: S) -> Self {
        Self {
            scheme,
            state: SchemeState::new(),
            next_tag: 0,
            pid: 100,
            uid: 0,
            gid: 0,
        }
    }

    /// Requests from now on claim this user.
    pub fn as_user(&mut self, uid: u32, gid: u32) {
        self.uid = uid;
        self.gid = gid;
    }

    fn creds(&self) -> u64 {
        u64::from(self.uid) | (u64::from(self.gid) << 32)
    }

    /// A caller context the way the daemon loop builds one (for direct calls).
    pub fn ctx(&self) -> CallerCtx {
        let probe = sqe(Opcode::Fsync, [0; 6], self.pid);
        // SAFETY: Fsync carries no buffers.
        let id = unsafe { Op::from_sqe_unchecked(&probe) }
            .map(|op| op.req_id())
            .unwrap_or_else(|| unreachable!("Fsync always decodes"));
        CallerCtx {
            pid: self.pid,
            uid: self.uid,
            gid: self.gid,
            id,
        }
    }

    /// Dispatches one `Sqe` as the daemon loop would; `None` for one-way messages.
    ///
    /// The caller keeps every buffer the `Sqe` points at alive for the call.
    pub fn dispatch(&mut self, mut sqe: Sqe) -> Option<Reply> {
        self.next_tag = self.next_tag.wrapping_add(1);
        sqe.tag = self.next_tag;
        if sqe.opcode == Opcode::CloseMsg as u8 {
            // SAFETY: `Request` is `repr(transparent)` over `Sqe`.
            let req: Request = unsafe { transmute::<Sqe, Request>(sqe) };
            if let RequestKind::OnClose { id } = req.kind() {
                self.scheme.on_close(id);
            }
            return None;
        }
        // SAFETY: the Sqe's pointers come from the caller's live buffers.
        let response = match unsafe { Op::from_sqe_unchecked(&sqe) } {
            Some(op) => {
                // As `CallRequest::caller` builds it: uid/gid from args[5] (which for a
                // `call` carries metadata instead, exactly as a real daemon sees it).
                let caller = CallerCtx {
                    pid: sqe.caller as usize,
                    uid: sqe.args[5] as u32,
                    gid: (sqe.args[5] >> 32) as u32,
                    id: op.req_id(),
                };
                op.handle_sync(caller, &mut self.scheme, &mut self.state)
            }
            None => {
                return Some(Reply {
                    result: Err(syscall::error::ENOSYS),
                    extra: [0; 3],
                });
            }
        };
        // SAFETY: `Response` is `repr(transparent)` over `Cqe`.
        let cqe: Cqe = unsafe { transmute::<Response, Cqe>(response) };
        Some(Reply {
            result: Error::demux(cqe.result as usize).map_err(|e| e.errno),
            extra: cqe.extra_raw,
        })
    }

    fn regular(&mut self, sqe: Sqe) -> Result<usize, i32> {
        self.dispatch(sqe)
            .map(|r| r.result)
            .unwrap_or(Err(syscall::error::EIO))
    }

    /// OpenAt relative to `dir` with Redox `flags`.
    pub fn openat(&mut self, dir: usize, path: &str, flags: usize) -> Result<usize, i32> {
        let s = sqe(
            Opcode::OpenAt,
            [
                dir as u64,
                path.as_ptr() as u64,
                path.len() as u64,
                flags as u64,
                (flags & syscall::flag::O_FCNTL_MASK) as u64,
                self.creds(),
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// OpenAt relative to the scheme root.
    pub fn open(&mut self, path: &str, flags: usize) -> Result<usize, i32> {
        let root = self.scheme.scheme_root().map_err(|e| e.errno)?;
        self.openat(root, path, flags)
    }

    /// Read (not positioned).
    pub fn read(&mut self, id: usize, buf: &mut [u8]) -> Result<usize, i32> {
        self.read_flags(id, buf, 0)
    }

    /// Read with description flags (e.g. Redox `O_NONBLOCK`).
    pub fn read_flags(&mut self, id: usize, buf: &mut [u8], flags: usize) -> Result<usize, i32> {
        let s = sqe(
            Opcode::Read,
            [
                id as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                u64::MAX,
                flags as u64,
                self.creds(),
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// Write (not positioned).
    pub fn write(&mut self, id: usize, buf: &[u8]) -> Result<usize, i32> {
        let s = sqe(
            Opcode::Write,
            [
                id as u64,
                buf.as_ptr() as u64,
                buf.len() as u64,
                u64::MAX,
                0,
                self.creds(),
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// Read at `offset` (what the kernel sends for a positioned file or `pread`).
    pub fn pread(&mut self, id: usize, buf: &mut [u8], offset: u64) -> Result<usize, i32> {
        let s = sqe(
            Opcode::Read,
            [
                id as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                offset,
                0,
                self.creds(),
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// Write at `offset`.
    pub fn pwrite(&mut self, id: usize, buf: &[u8], offset: u64) -> Result<usize, i32> {
        let s = sqe(
            Opcode::Write,
            [
                id as u64,
                buf.as_ptr() as u64,
                buf.len() as u64,
                offset,
                0,
                self.creds(),
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// Call with up to three metadata words.
    pub fn call(&mut self, id: usize, payload: &mut [u8], metadata: &[u64]) -> Result<usize, i32> {
        let mut m = [0u64; 3];
        for (slot, v) in m.iter_mut().zip(metadata) {
            *slot = *v;
        }
        let s = sqe(
            Opcode::Call,
            [
                id as u64,
                payload.as_mut_ptr() as u64,
                payload.len() as u64,
                m[0],
                m[1],
                m[2],
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// Fevent: the readiness the scheme reports now.
    pub fn fevent(&mut self, id: usize, flags: usize) -> Result<usize, i32> {
        let s = sqe(
            Opcode::Fevent,
            [id as u64, flags as u64, 0, 0, 0, self.creds()],
            self.pid,
        );
        self.regular(s)
    }

    /// Getdents into `buf` from `opaque`: a standard fs call, as relibc sends it
    /// (kind, opaque offset and header size where metadata goes; no credentials).
    pub fn getdents(&mut self, id: usize, buf: &mut [u8], opaque: u64) -> Result<usize, i32> {
        let s = sqe(
            Opcode::StdFsCall,
            [
                id as u64,
                buf.as_mut_ptr() as u64,
                buf.len() as u64,
                syscall::flag::StdFsCallKind::Getdents as u64,
                opaque,
                size_of::<DirentHeader>() as u64,
            ],
            self.pid,
        );
        self.regular(s)
    }

    /// The last close of a description: `CloseMsg`, tag 0 and caller 0 as the
    /// kernel sends it (`src/scheme/user.rs` `UserScheme::close`).
    pub fn close(&mut self, id: usize) {
        let s = sqe(Opcode::CloseMsg, [id as u64, 0, 0, 0, 0, 0], 0);
        self.dispatch(s);
    }
}
