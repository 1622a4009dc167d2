//! Userspace schemes: the kernel side of a scheme socket (`UserInner` in
//! `redox-os/kernel src/scheme/user.rs`).
//!
//! A call on a file of a userspace scheme becomes a real `Sqe` (pointers into the
//! caller's own buffers), queued on the socket; the caller blocks until the daemon
//! writes the `Cqe` with the same tag. The daemon reads `Sqe`s with `read` and answers
//! with `write`, exactly the byte protocol `redox-scheme` speaks on Redox.
//!
//! What this copies from the kernel, each item also on the function that does it:
//! * a request's state lives until the scheme answers it; nothing else ends it except
//!   SIGKILL ([`SchemeSocket::sigkill`]) — a closed socket leaves in-flight callers
//!   blocked (`user.rs` has no path that wakes them);
//! * a signal sends a one-way `Cancel` with the same tag and the caller keeps waiting;
//!   `ECANCELED` then reaches it as `EINTR`, and an `EINTR` the scheme returns for a
//!   request nobody cancelled becomes `EIO` (`UserInner::respond`);
//! * descriptions sent with a request (`Sendfd`) wait in the request's state until the
//!   scheme takes them (`ObtainFd`) or answers; whatever is left is closed then;
//! * a scheme moves descriptions into a `Recvfd` request (`MoveFd`) and answers with
//!   `RespondWithMultipleFds`; `RespondWithFd` moves one fd out of its own table;
//! * a bad `Cqe` fails the write only when it is the first one (`UserInner::write`).

use std::cell::RefCell;
use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{
    EAGAIN, EBADFD, ECANCELED, EFAULT, EINTR, EINVAL, EIO, ENODEV, ENOENT, Error, Result,
};
use syscall::flag::{EventFlags, FobtainFdFlags};
use syscall::schemev2::{Cqe, CqeOpcode, Opcode, Sqe, SqeFlags};

use super::description::Description;
use super::event::{EventHub, SourceKey};
use super::process::Process;
use super::wait::{Completion, Waitpoint, lock};

/// What the daemon answered.
pub enum Reply {
    /// A plain completion.
    Cqe(Cqe),
    /// `RespondWithFd`: a description the daemon handed over.
    Fd(Arc<Description>),
    /// `RespondWithMultipleFds`: the descriptions the daemon moved into the request
    /// with `MoveFd` (`None` if it moved none).
    MultipleFds(Option<Vec<Arc<Description>>>),
}

/// Descriptions riding on a request.
type Fds = Option<Vec<Arc<Description>>>;

/// A caller blocked on its reply.
type Waiter = Arc<Completion<Result<Reply>>>;

thread_local! {
    /// The calling thread's reply completion, reused from call to call: a thread has
    /// at most one call in flight (it blocks in it), so one is enough.
    static REPLY: RefCell<Option<Waiter>> = const { RefCell::new(None) };
}

/// A completion for the calling thread's next reply: its cached one when no completer
/// holds it any more, otherwise a fresh one (which becomes the cached one). A completer
/// still holds it for a moment after the reply (it drops its reference after waking the
/// caller), and a request abandoned by SIGKILL keeps its own until the scheme answers;
/// both just cost an allocation.
fn reply_completion() -> Waiter {
    REPLY
        .try_with(|cell| {
            let mut cached = cell.borrow_mut();
            if let Some(done) = cached.as_mut()
                && let Some(c) = Arc::get_mut(done)
            {
                c.reset();
                return done.clone();
            }
            let fresh = Arc::new(Completion::for_current_thread());
            *cached = Some(fresh.clone());
            fresh
        })
        // A call from another thread-local's destructor, after this one is gone.
        .unwrap_or_else(|_| Arc::new(Completion::for_current_thread()))
}

/// One request awaiting its `Cqe` (`State::Waiting` in `user.rs`).
struct Inflight {
    tag: u32,
    pid: usize,
    waiter: Waiter,
    /// Sent with a `Sendfd`, or moved in by the scheme for a `Recvfd`.
    fds: Fds,
    /// A `Cancel` was sent for it.
    canceling: bool,
    /// The caller was SIGKILLed and already returned `EINTR`: the answer only
    /// releases the state.
    abandoned: bool,
}

/// A queued `Sqe` on a cache line of its own: a 64-byte `Sqe` in a plain `VecDeque`
/// straddles two lines, and each line is one more handoff between the caller's core
/// and the daemon's.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct QueuedSqe(Sqe);

#[derive(Default)]
struct SocketState {
    queue: VecDeque<QueuedSqe>,
    /// Requests awaiting their `Cqe` (few at a time: a linear scan beats hashing).
    inflight: Vec<Inflight>,
    next_tag: u32,
    /// The daemon closed its socket: the scheme is gone.
    dead: bool,
    /// Shut down from the host: reads return 0 (EOF) once the queue is drained.
    eof: bool,
}

impl SocketState {
    fn find(&mut self, tag: u32) -> Option<&mut Inflight> {
        self.inflight.iter_mut().find(|i| i.tag == tag)
    }

    /// Whether a read of the socket returns now: requests are queued, or EOF.
    fn readable(&self) -> bool {
        !self.queue.is_empty() || self.eof || self.dead
    }
}

/// The kernel side of one scheme socket.
pub struct SchemeSocket {
    /// Kernel-unique id.
    pub id: u64,
    state: Mutex<SocketState>,
    /// [`SocketState::readable`], republished under the lock by every change of it, so
    /// a daemon polling an empty socket (redox-scheme's loop reads until `EAGAIN` after
    /// each batch) learns it without taking the lock a caller is queueing under.
    readable_now: AtomicBool,
    readable: Waitpoint,
    hub: Arc<EventHub>,
}

impl SchemeSocket {
    /// A new socket.
    pub fn new(id: u64, hub: Arc<EventHub>) -> Self {
        Self {
            id,
            state: Mutex::new(SocketState::default()),
            readable_now: AtomicBool::new(false),
            readable: Waitpoint::default(),
            hub,
        }
    }

    /// Republishes readability; call with the state locked, after changing it.
    fn publish(&self, st: &SocketState) {
        self.readable_now.store(st.readable(), Ordering::Release);
    }

    fn wake_daemon(&self) {
        self.readable.notify();
        self.hub.post(
            SourceKey::Socket(self.id),
            EventFlags::EVENT_READ.bits() as u32,
        );
    }

    /// Sends a request and blocks until the daemon answers it.
    pub fn request(&self, sqe: Sqe) -> Result<Reply> {
        self.request_with_fds(sqe, None)
    }

    /// Sends a request carrying descriptions (`Sendfd`) and blocks until the daemon
    /// answers it. A dead or shut-down scheme fails new requests with `ENODEV`
    /// (`user.rs` `call_extended_inner` while unmounting, and the failed upgrade of
    /// the scheme's `Weak` once its socket is gone); the descriptions are then closed.
    pub fn request_with_fds(&self, mut sqe: Sqe, fds: Fds) -> Result<Reply> {
        let done = reply_completion();
        {
            let mut st = lock(&self.state);
            if st.dead || st.eof {
                drop(st);
                drop(fds);
                return Err(Error::new(ENODEV));
            }
            st.next_tag = st.next_tag.wrapping_add(1);
            while st.inflight.iter().any(|i| i.tag == st.next_tag) {
                st.next_tag = st.next_tag.wrapping_add(1);
            }
            sqe.tag = st.next_tag;
            st.inflight.push(Inflight {
                tag: sqe.tag,
                pid: sqe.caller as usize,
                waiter: done.clone(),
                fds,
                canceling: false,
                abandoned: false,
            });
            st.queue.push_back(QueuedSqe(sqe));
            self.publish(&st);
        }
        self.wake_daemon();
        done.wait().unwrap_or(Err(Error::new(EIO)))
    }

    /// Queues a message that gets no reply.
    fn send_message(&self, sqe: Sqe) {
        {
            let mut st = lock(&self.state);
            if st.dead {
                return;
            }
            st.queue.push_back(QueuedSqe(sqe));
            self.publish(&st);
        }
        self.wake_daemon();
    }

    /// The last close of a description: `CloseMsg` for its number, exactly as
    /// `UserScheme::close` in `src/scheme/user.rs` builds it — tag 0, caller 0,
    /// no flags, `args[0]` = the number — queued without waiting, so the closer's
    /// `close()` has already returned when the daemon reads it.
    pub fn send_close(&self, number: usize) {
        let mut sqe = Sqe {
            opcode: Opcode::CloseMsg as u8,
            ..Sqe::default()
        };
        sqe.args[0] = number as u64;
        self.send_message(sqe);
    }

    /// The daemon reads requests. `buf` holds whole `Sqe`s. Empty and shut down (or
    /// dead) reads 0 (EOF), as `UserInner::read` does while unmounting.
    pub fn read_requests(&self, buf: &mut [u8], nonblock: bool) -> Result<usize> {
        let max = buf.len() / size_of::<Sqe>();
        if max == 0 {
            return Err(Error::new(EINVAL));
        }
        loop {
            let seen = self.readable.epoch();
            // Not readable: a request queued after this load also bumps the epoch after
            // publishing, so the wait below cannot miss it.
            if self.readable_now.load(Ordering::Acquire) {
                let mut st = lock(&self.state);
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max);
                    for (i, QueuedSqe(sqe)) in st.queue.drain(..n).enumerate() {
                        let at = buf[i * size_of::<Sqe>()..].as_mut_ptr().cast::<Sqe>();
                        // SAFETY: `at` is inside `buf`, which has room for `max` Sqes.
                        unsafe { at.write_unaligned(sqe) };
                    }
                    self.publish(&st);
                    return Ok(n * size_of::<Sqe>());
                }
                if st.eof || st.dead {
                    return Ok(0);
                }
            }
            if nonblock {
                return Err(Error::new(EAGAIN));
            }
            self.readable.wait_past(seen, None);
        }
    }

    /// Daemon threads parked in a blocking read of this socket (or about to park).
    pub fn parked_readers(&self) -> usize {
        self.readable.parked()
    }

    /// Whether a read would return something now (requests or EOF).
    pub fn is_readable(&self) -> bool {
        self.readable_now.load(Ordering::Acquire)
    }

    /// The daemon writes responses; `daemon` is its process (for `RespondWithFd` and
    /// `ObtainFd`). Returns the bytes consumed: a bad `Cqe` fails the write only if
    /// it is the first one, otherwise the write stops before it (`UserInner::write`).
    pub fn write_responses(&self, buf: &[u8], daemon: &Process) -> Result<usize> {
        let n = buf.len() / size_of::<Cqe>();
        for i in 0..n {
            // SAFETY: in bounds; Cqe is plain old data.
            let cqe: Cqe = unsafe {
                buf[i * size_of::<Cqe>()..]
                    .as_ptr()
                    .cast::<Cqe>()
                    .read_unaligned()
            };
            if let Err(e) = self.complete(cqe, daemon) {
                if i == 0 {
                    return Err(e);
                }
                return Ok(i * size_of::<Cqe>());
            }
        }
        Ok(n * size_of::<Cqe>())
    }

    /// One `Cqe`, as `ParsedCqe::parse_cqe` + `UserInner::handle_parsed` treat it.
    fn complete(&self, cqe: Cqe, daemon: &Process) -> Result<()> {
        match CqeOpcode::try_from_raw(cqe.flags & 0b111).ok_or(Error::new(EINVAL))? {
            CqeOpcode::SendFevent => {
                // Unknown event bits fail the write (`EventFlags::from_bits`).
                let flags = EventFlags::from_bits(cqe.tag as usize).ok_or(Error::new(EINVAL))?;
                self.hub.post(
                    SourceKey::UserFile(self.id, cqe.result as usize),
                    flags.bits() as u32,
                );
                Ok(())
            }
            CqeOpcode::RespondRegular | CqeOpcode::RespondAndNotifyOnDetach => {
                self.finish(cqe.tag, Reply::Cqe(cqe))
            }
            CqeOpcode::RespondWithFd => {
                // The fd leaves the daemon's table (EINVAL if it has no such fd);
                // redox-scheme's close of it afterwards then fails harmlessly.
                let desc = daemon
                    .remove(cqe.result as usize)
                    .map_err(|_| Error::new(EINVAL))?;
                self.finish(cqe.tag, Reply::Fd(desc))
            }
            CqeOpcode::RespondWithMultipleFds => self.finish(cqe.tag, Reply::MultipleFds(None)),
            CqeOpcode::ObtainFd => self.obtain_by_cqe(&cqe, daemon),
        }
    }

    /// The `ObtainFd` Cqe: the first description sent with request `tag` enters the
    /// daemon's table, close-on-exec, at `result` (`MANUAL_FD`) or at the lowest free
    /// slot, whose number is stored at the address `result` names.
    fn obtain_by_cqe(&self, cqe: &Cqe, daemon: &Process) -> Result<()> {
        let flags = FobtainFdFlags::from_bits(cqe.extra() as usize).ok_or(Error::new(EINVAL))?;
        let desc = self
            .obtain_fds(cqe.tag)?
            .into_iter()
            .next()
            .ok_or(Error::new(ENOENT))?;
        if flags.contains(FobtainFdFlags::MANUAL_FD) {
            let old = daemon.insert_at(cqe.result as usize, desc, true)?;
            drop(old);
            return Ok(());
        }
        let dst = cqe.result as usize as *mut usize;
        if dst.is_null() {
            return Err(Error::new(EFAULT));
        }
        let fd = daemon.insert(desc, true)?;
        // SAFETY: the daemon named a usize of its own memory; same address space here.
        unsafe { dst.write_unaligned(fd) };
        Ok(())
    }

    /// `ObtainFd` (`UserInner::handle_obtainfd`): takes the descriptions sent with
    /// request `tag`. `EINVAL` for an unknown tag, `ENOENT` when it carries none (or
    /// they were taken already).
    pub fn obtain_fds(&self, tag: u32) -> Result<Vec<Arc<Description>>> {
        let mut st = lock(&self.state);
        let req = st.find(tag).ok_or(Error::new(EINVAL))?;
        req.fds.take().ok_or(Error::new(ENOENT))
    }

    /// `MoveFd` (`UserInner::handle_movefd`): the daemon puts descriptions into
    /// request `tag`, for its `RespondWithMultipleFds` answer. Returns how many.
    pub fn move_fds(&self, tag: u32, descs: Vec<Arc<Description>>) -> Result<usize> {
        let n = descs.len();
        let replaced = {
            let mut st = lock(&self.state);
            let Some(req) = st.find(tag) else {
                drop(st);
                drop(descs);
                return Err(Error::new(EINVAL));
            };
            req.fds.replace(descs)
        };
        drop(replaced);
        Ok(n)
    }

    /// Interrupts process `pid`'s calls in flight on this socket, as a signal does
    /// on Redox (`UserInner::call_extended_inner`, "spurious wakeup" arm): each gets
    /// a one-way `Cancel` Sqe carrying its tag and no arguments; the caller keeps
    /// waiting for the daemon's answer. Returns how many calls were interrupted.
    pub fn interrupt(&self, pid: usize) -> usize {
        let tags: Vec<u32> = {
            let mut st = lock(&self.state);
            let mut tags = Vec::new();
            for req in st.inflight.iter_mut() {
                if req.pid == pid && !req.canceling && !req.abandoned {
                    req.canceling = true;
                    tags.push(req.tag);
                }
            }
            tags
        };
        for &tag in &tags {
            self.send_message(Sqe {
                opcode: Opcode::Cancel as u8,
                sqe_flags: SqeFlags::ONEWAY,
                tag,
                ..Sqe::default()
            });
        }
        tags.len()
    }

    /// SIGKILL of process `pid`: its blocked calls return `EINTR` without an answer,
    /// the only way a caller gives up on Redox (`eintr_if_sigkill` in `user.rs`).
    /// The request's state stays until the scheme answers it. One deviation, for
    /// memory safety of a host process: a request the daemon has not read yet is
    /// withdrawn from the queue (on Redox the scheme would still see it, with the
    /// caller's pages kept mapped for it). Returns how many calls were released.
    pub fn sigkill(&self, pid: usize) -> usize {
        let (released, withdrawn) = {
            let mut st = lock(&self.state);
            let dead = st.dead || st.eof;
            let mut released = Vec::new();
            let mut withdrawn = Vec::new();
            let mut i = 0;
            while i < st.inflight.len() {
                let req = &st.inflight[i];
                let queued = st.queue.iter().position(|s| s.0.tag == req.tag);
                if req.pid != pid || req.abandoned {
                    i += 1;
                    continue;
                }
                if let Some(q) = queued {
                    st.queue.remove(q);
                    let req = st.inflight.swap_remove(i);
                    withdrawn.push(req.fds);
                    released.push(req.waiter);
                } else if dead {
                    // Nobody will touch the caller's buffers again.
                    let req = &mut st.inflight[i];
                    req.abandoned = true;
                    released.push(req.waiter.clone());
                    i += 1;
                } else {
                    // The daemon holds pointers into the caller's buffers: the caller
                    // returns EINTR as soon as the daemon has answered.
                    st.inflight[i].abandoned = true;
                    i += 1;
                }
            }
            self.publish(&st);
            (released, withdrawn)
        };
        drop(withdrawn);
        for w in &released {
            w.complete(Err(Error::new(EINTR)));
        }
        released.len()
    }

    /// Callers of process `pid` (any, if `None`) blocked on this socket.
    pub fn blocked_callers(&self, pid: Option<usize>) -> usize {
        lock(&self.state)
            .inflight
            .iter()
            .filter(|r| !r.abandoned && pid.is_none_or(|p| p == r.pid))
            .count()
    }

    /// The scheme's answer to `tag` (`UserInner::respond`): `EBADFD` for a tag with
    /// no request; `ECANCELED` to a cancelled request becomes `EINTR`, `EINTR` to one
    /// nobody cancelled becomes `EIO`; descriptions the scheme did not take are
    /// closed, after the socket's lock is released (their `CloseMsg` may come here).
    fn finish(&self, tag: u32, reply: Reply) -> Result<()> {
        let (req, reply) = {
            let mut st = lock(&self.state);
            let at = st
                .inflight
                .iter()
                .position(|i| i.tag == tag)
                .ok_or(Error::new(EBADFD))?;
            let mut req = st.inflight.swap_remove(at);
            let reply = match reply {
                Reply::MultipleFds(_) => Reply::MultipleFds(req.fds.take()),
                other => other,
            };
            (req, reply)
        };
        let reply = match reply {
            Reply::Cqe(mut cqe) => {
                let code = Error::demux(cqe.result as usize);
                if req.canceling && code == Err(Error::new(ECANCELED)) {
                    cqe.result = Error::mux(Err(Error::new(EINTR))) as u64;
                } else if !req.canceling && code == Err(Error::new(EINTR)) {
                    cqe.result = Error::mux(Err(Error::new(EIO))) as u64;
                }
                Reply::Cqe(cqe)
            }
            other => other,
        };
        let Inflight {
            waiter,
            fds,
            abandoned,
            ..
        } = req;
        drop(fds);
        if abandoned {
            // SIGKILLed: the caller gives up with EINTR (or already did).
            drop(reply);
            waiter.complete(Err(Error::new(EINTR)));
        } else {
            waiter.complete(Ok(reply));
        }
        Ok(())
    }

    /// Host-side shutdown (unmount): new requests fail with `ENODEV` and the daemon
    /// reads EOF after draining what is queued.
    pub fn shutdown(&self) {
        {
            let mut st = lock(&self.state);
            st.eof = true;
            self.publish(&st);
        }
        self.wake_daemon();
    }

    /// The daemon closed its socket: the scheme is gone. New requests fail with
    /// `ENODEV`; requests in flight are **not** failed or woken — nothing in
    /// `src/scheme/user.rs` or `src/scheme/mod.rs` walks them — so their callers stay
    /// blocked until SIGKILL ([`SchemeSocket::sigkill`]). Queued requests nobody
    /// will read are dropped, their callers still blocked.
    pub fn owner_closed(&self) {
        let queued = {
            let mut st = lock(&self.state);
            st.dead = true;
            self.publish(&st);
            std::mem::take(&mut st.queue)
        };
        drop(queued);
        self.wake_daemon();
    }
}
