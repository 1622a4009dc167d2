//! A small userspace scheme that records what it is asked, for tests of the mocked
//! kernel itself: which flags, credentials and close messages reach a daemon.
//!
//! Paths: any name opens a file; writing to a file makes the scheme post `EVENT_READ`
//! for every open file of the same name (a "doorbell"); reading a file returns the
//! number of `CloseMsg`s seen so far (8 bytes) — a FIFO barrier, since the socket
//! delivers messages in order. A read of a file named `hang` is never answered until
//! the kernel cancels it (Redox's `Cancel` message), then it gets `ECANCELED`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use redox_scheme::scheme::{IntoTag, Op};
use redox_scheme::scheme::{SchemeState, SchemeSync};
use redox_scheme::{CallerCtx, OpenResult, RequestKind, Response, SignalBehavior, Socket};
use syscall::error::{EBADF, ECANCELED, Error, Result};
use syscall::flag::EventFlags;
use syscall::schemev2::NewFdFlags;

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
}

/// The probe scheme.
pub struct ProbeScheme {
    log: Arc<Mutex<ProbeLog>>,
    files: BTreeMap<usize, (String, bool)>,
    next: usize,
    fevents: Vec<(usize, usize)>,
}

impl ProbeScheme {
    /// A probe writing into `log`.
    pub fn new(log: Arc<Mutex<ProbeLog>>) -> Self {
        Self {
            log,
            files: BTreeMap::new(),
            next: 1,
            fevents: Vec::new(),
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

    fn on_close(&mut self, id: usize) {
        self.files.remove(&id);
        self.log().closes.push(id);
    }
}

/// Registers the probe as `name` and serves it with a blocking request loop until EOF.
pub fn serve(name: &str, log: Arc<Mutex<ProbeLog>>) -> Result<()> {
    let socket = Socket::create()?;
    let mut scheme = ProbeScheme::new(log);
    let mut state = SchemeState::new();
    let mut held: Vec<Op> = Vec::new();
    redox_scheme::scheme::register_sync_scheme(&socket, name, &mut scheme)?;
    while let Some(req) = socket.next_request(SignalBehavior::Restart)? {
        match req.kind() {
            RequestKind::Call(call) => {
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
            RequestKind::OnClose { id } => scheme.on_close(id),
            _ => {}
        }
        for (id, flags) in scheme.fevents.drain(..) {
            socket.write_response(Response::post_fevent(id, flags), SignalBehavior::Restart)?;
        }
    }
    Ok(())
}
