//! A small userspace scheme that records what it is asked, for tests of the mocked
//! kernel itself: which flags, credentials and close messages reach a daemon.
//!
//! Paths: any name opens a file; writing to a file makes the scheme post `EVENT_READ`
//! for every open file of the same name (a "doorbell"); reading a file returns the
//! number of `CloseMsg`s seen so far (8 bytes) — a FIFO barrier, since the socket
//! delivers messages in order. A read of a file named `hang` is never answered until
//! the kernel cancels it (Redox's `Cancel` message), then it gets `ECANCELED`.
//!
//! Fd passing: descriptors sent to a file (`SYS_CALL` with `CallFlags::FD`) are
//! obtained into the probe's own table and kept by that file, their `fpath` logged;
//! sending to a file named `refuse` is answered `EOPNOTSUPP` without obtaining them.
//! A `Recvfd` on a file moves its kept descriptors back to the caller; a `dup` named
//! `fd` answers with the first kept one (`RespondWithFd`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redox_scheme::scheme::{IntoTag, Op};
use redox_scheme::scheme::{SchemeState, SchemeSync};
use redox_scheme::{
    CallerCtx, OpenResult, RecvFdRequest, RequestKind, Response, SendFdRequest, SignalBehavior,
    Socket,
};
use syscall::error::{EBADF, ECANCELED, EINVAL, ENOENT, EOPNOTSUPP, Error, Result};
use syscall::flag::{EventFlags, FmoveFdFlags, FobtainFdFlags};
use syscall::schemev2::NewFdFlags;
use syscall::schemev2::Sqe;

/// What the probe saw.
#[derive(Debug, Default)]
pub struct ProbeLog {
    /// `(path, Redox flags, uid, gid, pid)` of every open.
    pub opens: Vec<(String, usize, u32, u32, usize)>,
    /// File numbers whose last close arrived.
    pub closes: Vec<usize>,
    /// `(file number, F_SETFL flags)`.
    pub fcntls: Vec<(usize, usize)>,
    /// Reads of `hang` held unanswered so far.
    pub parked: usize,
    /// Cancel messages that matched a held read.
    pub cancelled: usize,
    /// `(file number, fpath of each descriptor obtained, SendFd args[2], uid)` per Sendfd.
    pub received: Vec<(usize, Vec<String>, u64, u32)>,
    /// Raw `Sqe`s of every `call`: `(args, sqe flags, caller)`.
    pub calls: Vec<([u64; 6], u8, u64)>,
    /// `(tag, caller, args)` of every `CloseMsg`.
    pub close_msgs: Vec<(u32, u64, [u64; 6])>,
}

/// The probe scheme.
pub struct ProbeScheme {
    log: Arc<Mutex<ProbeLog>>,
    files: BTreeMap<usize, (String, bool)>,
    next: usize,
    fevents: Vec<(usize, usize)>,
    /// Descriptors (in the probe's table) sent to each file.
    kept: BTreeMap<usize, Vec<usize>>,
}

impl ProbeScheme {
    /// A probe writing into `log`.
    pub fn new(log: Arc<Mutex<ProbeLog>>) -> Self {
        Self {
            log,
            files: BTreeMap::new(),
            next: 1,
            fevents: Vec::new(),
            kept: BTreeMap::new(),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, ProbeLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SchemeSync for ProbeScheme {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(0)
    }

    fn openat(
        &mut self,
        _dir: usize,
        path: &str,
        flags: usize,
        _fcntl: u32,
        ctx: &CallerCtx,
    ) -> Result<OpenResult> {
        self.log()
            .opens
            .push((path.to_string(), flags, ctx.uid, ctx.gid, ctx.pid));
        let n = self.next;
        self.next += 1;
        self.files.insert(n, (path.to_string(), false));
        Ok(OpenResult::ThisScheme {
            number: n,
            flags: NewFdFlags::empty(),
        })
    }

    fn read(
        &mut self,
        id: usize,
        buf: &mut [u8],
        _o: u64,
        _f: u32,
        _c: &CallerCtx,
    ) -> Result<usize> {
        if !self.files.contains_key(&id) {
            return Err(Error::new(EBADF));
        }
        let closes = self.log().closes.len() as u64;
        let n = buf.len().min(8);
        buf[..n].copy_from_slice(&closes.to_le_bytes()[..n]);
        Ok(n)
    }

    fn write(&mut self, id: usize, buf: &[u8], _o: u64, _f: u32, _c: &CallerCtx) -> Result<usize> {
        let name = self.files.get(&id).ok_or(Error::new(EBADF))?.0.clone();
        for (n, (path, rung)) in self.files.iter_mut() {
            if *path == name {
                *rung = true;
                self.fevents.push((*n, EventFlags::EVENT_READ.bits()));
            }
        }
        Ok(buf.len())
    }

    fn fcntl(&mut self, id: usize, cmd: usize, arg: usize, _c: &CallerCtx) -> Result<usize> {
        if cmd == syscall::flag::F_SETFL {
            self.log().fcntls.push((id, arg));
        }
        Ok(0)
    }

    fn fevent(&mut self, id: usize, _flags: EventFlags, _c: &CallerCtx) -> Result<EventFlags> {
        let (_, rung) = self.files.get(&id).ok_or(Error::new(EBADF))?;
        Ok(if *rung {
            EventFlags::EVENT_READ
        } else {
            EventFlags::empty()
        })
    }

    fn dup(&mut self, id: usize, buf: &[u8], _ctx: &CallerCtx) -> Result<OpenResult> {
        if buf != b"fd" {
            return Err(Error::new(EINVAL));
        }
        let kept = self.kept.get_mut(&id).ok_or(Error::new(ENOENT))?;
        if kept.is_empty() {
            return Err(Error::new(ENOENT));
        }
        Ok(OpenResult::OtherScheme { fd: kept.remove(0) })
    }

    fn call(
        &mut self,
        id: usize,
        _payload: &mut [u8],
        _metadata: &[u64],
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        self.files.get(&id).map(|_| 0).ok_or(Error::new(EBADF))
    }

    fn call_multiple_ids(
        &mut self,
        ids: &[usize],
        _payload: &mut [u8],
        _metadata: &[u64],
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        match ids.iter().all(|id| self.files.contains_key(id)) {
            true => Ok(0),
            false => Err(Error::new(EBADF)),
        }
    }

    fn on_close(&mut self, id: usize) {
        self.files.remove(&id);
        for fd in self.kept.remove(&id).unwrap_or_default() {
            let _ = libredox::call::close(fd);
        }
        self.log().closes.push(id);
    }
}

/// A `Sendfd`: obtain the descriptors and keep them with the file (or refuse).
fn on_sendfd(scheme: &mut ProbeScheme, socket: &Socket, req: &SendFdRequest) -> Result<usize> {
    let file = scheme.files.get(&req.id()).ok_or(Error::new(EBADF))?;
    if file.0 == "refuse" {
        return Err(Error::new(EOPNOTSUPP));
    }
    let mut fds = vec![usize::MAX; req.num_fds()];
    req.obtain_fd(socket, FobtainFdFlags::empty(), &mut fds)?;
    let paths = fds
        .iter()
        .map(|&fd| {
            let mut buf = [0u8; 256];
            let n = libredox::call::fpath(fd, &mut buf).unwrap_or(0);
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
        .collect();
    scheme
        .log()
        .received
        .push((req.id(), paths, req.arg(), req.caller().uid));
    scheme.kept.entry(req.id()).or_default().extend(fds);
    Ok(0)
}

/// A `Recvfd`: move the file's kept descriptors back to the caller.
fn on_recvfd(scheme: &mut ProbeScheme, socket: &Socket, req: &RecvFdRequest) -> Result<OpenResult> {
    let kept = scheme.kept.remove(&req.id()).unwrap_or_default();
    if kept.is_empty() {
        return Err(Error::new(ENOENT));
    }
    req.move_fd(socket, FmoveFdFlags::empty(), &kept)?;
    Ok(OpenResult::OtherSchemeMultiple {
        num_fds: kept.len(),
    })
}

/// Registers the probe as `name` and serves it with a blocking request loop until EOF.
pub fn serve(name: &str, log: Arc<Mutex<ProbeLog>>) -> Result<()> {
    let socket = Socket::create()?;
    let mut scheme = ProbeScheme::new(log);
    let mut state = SchemeState::new();
    let mut held: Vec<Op> = Vec::new();
    redox_scheme::scheme::register_sync_scheme(&socket, name, &mut scheme)?;
    while let Some(req) = socket.next_request(SignalBehavior::Restart)? {
        // SAFETY: `Request` is `repr(transparent)` over the `Sqe` (redox-scheme 0.12).
        let raw: Sqe = unsafe { std::ptr::read((&raw const req).cast::<Sqe>()) };
        match req.kind() {
            RequestKind::Call(call) => {
                if raw.opcode == syscall::schemev2::Opcode::Call as u8 {
                    scheme
                        .log()
                        .calls
                        .push((raw.args, raw.sqe_flags.bits(), raw.caller));
                }
                let caller = call.caller();
                let op = match call.op() {
                    Ok(op) => op,
                    Err(call) => {
                        let resp = Response::err(syscall::error::EOPNOTSUPP, call);
                        socket.write_response(resp, SignalBehavior::Restart)?;
                        continue;
                    }
                };
                let hangs = matches!(&op, Op::Read(r) if scheme.files.get(&r.fd).is_some_and(|f| f.0 == "hang"));
                if hangs {
                    scheme.log().parked += 1;
                    held.push(op);
                    continue;
                }
                let resp = op.handle_sync(caller, &mut scheme, &mut state);
                socket.write_response(resp, SignalBehavior::Restart)?;
            }
            RequestKind::Cancellation(c) => {
                if let Some(i) = held.iter().position(|op| op.req_id() == c.id) {
                    let op = held.swap_remove(i);
                    scheme.log().cancelled += 1;
                    socket.write_response(Response::err(ECANCELED, op), SignalBehavior::Restart)?;
                }
            }
            RequestKind::OnClose { id } => {
                scheme
                    .log()
                    .close_msgs
                    .push((raw.tag, raw.caller, raw.args));
                scheme.on_close(id)
            }
            RequestKind::SendFd(req) => {
                let result = on_sendfd(&mut scheme, &socket, &req);
                socket.write_response(Response::new(result, req), SignalBehavior::Restart)?;
            }
            RequestKind::RecvFd(req) => {
                let result = on_recvfd(&mut scheme, &socket, &req);
                socket.write_response(
                    Response::open_dup_like(result, req),
                    SignalBehavior::Restart,
                )?;
            }
            _ => {}
        }
        for (id, flags) in scheme.fevents.drain(..) {
            socket.write_response(Response::post_fevent(id, flags), SignalBehavior::Restart)?;
        }
    }
    Ok(())
}

/// A probe daemon running on its own kernel, stopped (and checked) on drop.
pub struct Running {
    /// The machine.
    pub kernel: Arc<redox_host::Kernel>,
    /// What the probe saw.
    pub log: Arc<Mutex<ProbeLog>>,
    /// The daemon's process.
    pub daemon: Arc<redox_host::kernel::Process>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl Running {
    /// Boots a machine and starts the probe as scheme `probe`.
    pub fn start() -> Running {
        let kernel = redox_host::Kernel::boot();
        let log = Arc::new(Mutex::new(ProbeLog::default()));
        let l = log.clone();
        let daemon = kernel.process("probed", redox_host::Cred::ROOT);
        let thread = kernel.spawn_in(&daemon, move || serve("probe", l));
        kernel.wait_for_scheme("probe");
        Running {
            kernel,
            log,
            daemon,
            thread: Some(thread),
        }
    }

    /// The log, locked.
    pub fn log(&self) -> std::sync::MutexGuard<'_, ProbeLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request after everything sent before it: the socket is FIFO, so once it is
    /// answered the probe has handled all earlier messages. Returns the close count.
    pub fn barrier(&self) -> u64 {
        let fd = libredox::call::open("/scheme/probe/barrier", libredox::flag::O_RDONLY, 0)
            .unwrap_or_else(|e| panic!("open barrier: {e:?}"));
        let mut b = [0u8; 8];
        let n = libredox::call::read(fd, &mut b);
        assert_eq!(n, Ok(8), "barrier read");
        let _ = libredox::call::close(fd);
        u64::from_le_bytes(b)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.kernel.shutdown_scheme("probe");
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(()))), "probe daemon ended badly: {r:?}");
            }
        }
    }
}
