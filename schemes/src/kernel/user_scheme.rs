//! Userspace schemes: the kernel side of a scheme socket.
//!
//! A call on a file of a userspace scheme becomes a real `Sqe` (pointers into the
//! caller's own buffers), queued on the socket; the caller blocks until the daemon
//! writes the `Cqe` with the same tag. The daemon reads `Sqe`s with `read` and answers
//! with `write`, exactly the byte protocol `redox-scheme` speaks on Redox.

use std::collections::VecDeque;
use std::mem::size_of;
use std::sync::{Arc, Mutex};

use syscall::error::{EAGAIN, EBADF, ECANCELED, EINTR, EINVAL, EIO, ENODEV, Error, Result};
use syscall::flag::EventFlags;
use syscall::schemev2::{Cqe, CqeOpcode, Opcode, Sqe, SqeFlags};

use super::description::Description;
use super::event::{EventHub, SourceKey};
use super::wait::{Completion, Waitpoint, lock};

/// What the daemon answered.
pub enum Reply {
    /// A plain completion.
    Cqe(Cqe),
    /// `RespondWithFd`: a description the daemon handed over.
    Fd(Arc<Description>),
}

/// A caller blocked on its reply.
type Waiter = Arc<Completion<Result<Reply>>>;

#[derive(Default)]
struct SocketState {
    queue: VecDeque<Sqe>,
    /// Requests awaiting their `Cqe`, with the caller's pid (few at a time: a
    /// linear scan beats hashing).
    inflight: Vec<(u32, usize, Waiter)>,
    /// Tags whose callers were interrupted (a Cancel was sent): an `ECANCELED`
    /// reply to them reaches the caller as `EINTR`.
    cancelled: Vec<u32>,
    next_tag: u32,
    /// The daemon closed its socket: the scheme is gone.
    dead: bool,
    /// Shut down from the host: reads return 0 (EOF) once the queue is drained.
    eof: bool,
}

/// The kernel side of one scheme socket.
pub struct SchemeSocket {
    /// Kernel-unique id.
    pub id: u64,
    state: Mutex<SocketState>,
    readable: Waitpoint,
    hub: Arc<EventHub>,
}

impl SchemeSocket {
    /// A new socket.
    pub fn new(id: u64, hub: Arc<EventHub>) -> Self {
        Self {
            id,
            state: Mutex::new(SocketState::default()),
            readable: Waitpoint::default(),
            hub,
        }
    }

    fn wake_daemon(&self) {
        self.readable.notify();
        self.hub.post(
            SourceKey::Socket(self.id),
            EventFlags::EVENT_READ.bits() as u32,
        );
    }

    /// Sends a request and blocks until the daemon answers it.
    pub fn request(&self, mut sqe: Sqe) -> Result<Reply> {
        let done = Arc::new(Completion::for_current_thread());
        {
            let mut st = lock(&self.state);
            if st.dead || st.eof {
                return Err(Error::new(ENODEV));
            }
            st.next_tag = st.next_tag.wrapping_add(1);
            while st.inflight.iter().any(|(t, ..)| *t == st.next_tag) {
                st.next_tag = st.next_tag.wrapping_add(1);
            }
            sqe.tag = st.next_tag;
            st.inflight
                .push((sqe.tag, sqe.caller as usize, done.clone()));
            st.queue.push_back(sqe);
        }
        self.wake_daemon();
        done.wait().unwrap_or(Err(Error::new(EIO)))
    }

    /// Queues a one-way message (no reply expected).
    pub fn send_oneway(&self, mut sqe: Sqe) {
        sqe.sqe_flags |= SqeFlags::ONEWAY;
        {
            let mut st = lock(&self.state);
            if st.dead {
                return;
            }
            st.queue.push_back(sqe);
        }
        self.wake_daemon();
    }

    /// The last close of a description: `CloseMsg` for its number.
    pub fn send_close(&self, number: usize) {
        let mut sqe = Sqe {
            opcode: Opcode::CloseMsg as u8,
            ..Sqe::default()
        };
        sqe.args[0] = number as u64;
        self.send_oneway(sqe);
    }

    /// The daemon reads requests. `buf` holds whole `Sqe`s.
    pub fn read_requests(&self, buf: &mut [u8], nonblock: bool) -> Result<usize> {
        let max = buf.len() / size_of::<Sqe>();
        if max == 0 {
            return Err(Error::new(EINVAL));
        }
        loop {
            let seen = self.readable.epoch();
            {
                let mut st = lock(&self.state);
                if !st.queue.is_empty() {
                    let n = st.queue.len().min(max);
                    for (i, sqe) in st.queue.drain(..n).enumerate() {
                        let at = buf[i * size_of::<Sqe>()..].as_mut_ptr().cast::<Sqe>();
                        // SAFETY: `at` is inside `buf`, which has room for `max` Sqes.
                        unsafe { at.write_unaligned(sqe) };
                    }
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

    /// Whether a read would return something now (requests or EOF).
    pub fn is_readable(&self) -> bool {
        let st = lock(&self.state);
        !st.queue.is_empty() || st.eof || st.dead
    }

    /// The daemon writes responses. `take_fd` resolves a `RespondWithFd` fd in the
    /// daemon's own table. Returns the bytes consumed.
    pub fn write_responses(
        &self,
        buf: &[u8],
        take_fd: impl Fn(usize) -> Option<Arc<Description>>,
    ) -> Result<usize> {
        if !buf.len().is_multiple_of(size_of::<Cqe>()) {
            return Err(Error::new(EINVAL));
        }
        let n = buf.len() / size_of::<Cqe>();
        for i in 0..n {
            // SAFETY: in bounds; Cqe is plain old data.
            let cqe: Cqe = unsafe {
                buf[i * size_of::<Cqe>()..]
                    .as_ptr()
                    .cast::<Cqe>()
                    .read_unaligned()
            };
            self.complete(cqe, &take_fd)?;
        }
        Ok(n * size_of::<Cqe>())
    }

    fn complete(
        &self,
        cqe: Cqe,
        take_fd: &impl Fn(usize) -> Option<Arc<Description>>,
    ) -> Result<()> {
        match CqeOpcode::try_from_raw(cqe.flags & 0b111) {
            Some(CqeOpcode::SendFevent) => {
                self.hub
                    .post(SourceKey::UserFile(self.id, cqe.result as usize), cqe.tag);
                Ok(())
            }
            Some(CqeOpcode::RespondRegular | CqeOpcode::RespondAndNotifyOnDetach) => {
                self.finish(cqe.tag, Ok(Reply::Cqe(cqe)));
                Ok(())
            }
            Some(CqeOpcode::RespondWithFd) => {
                let reply = take_fd(cqe.result as usize)
                    .map(Reply::Fd)
                    .ok_or(Error::new(EBADF));
                self.finish(cqe.tag, reply);
                Ok(())
            }
            // Multiple fds and fd passing are not emulated: fail the caller, not the daemon.
            _ => {
                self.finish(cqe.tag, Err(Error::new(EIO)));
                Ok(())
            }
        }
    }

    /// Interrupts process `pid`'s calls in flight on this socket, as a signal does
    /// on Redox: each gets a one-way `Cancel` Sqe carrying its tag; the caller keeps
    /// waiting for the daemon's answer and sees `EINTR` if that answer is
    /// `ECANCELED` (a request the daemon finished first keeps its result).
    /// Returns how many calls were interrupted.
    pub fn interrupt(&self, pid: usize) -> usize {
        let tags: Vec<u32> = {
            let mut st = lock(&self.state);
            let tags: Vec<u32> = st
                .inflight
                .iter()
                .filter(|(t, p, _)| *p == pid && !st.cancelled.contains(t))
                .map(|(t, ..)| *t)
                .collect();
            st.cancelled.extend_from_slice(&tags);
            tags
        };
        for &tag in &tags {
            self.send_oneway(Sqe {
                opcode: Opcode::Cancel as u8,
                tag,
                ..Sqe::default()
            });
        }
        tags.len()
    }

    fn finish(&self, tag: u32, reply: Result<Reply>) {
        let (waiter, interrupted) = {
            let mut st = lock(&self.state);
            let at = st.inflight.iter().position(|(t, ..)| *t == tag);
            // Only interrupted calls pay for this lookup.
            let interrupted = match st.cancelled.iter().position(|t| *t == tag) {
                Some(i) => {
                    st.cancelled.swap_remove(i);
                    true
                }
                None => false,
            };
            (at.map(|i| st.inflight.swap_remove(i).2), interrupted)
        };
        let reply = match reply {
            Ok(Reply::Cqe(cqe))
                if interrupted
                    && Error::demux(cqe.result as usize) == Err(Error::new(ECANCELED)) =>
            {
                Err(Error::new(EINTR))
            }
            other => other,
        };
        match waiter {
            Some(w) => w.complete(reply),
            None => log::debug!("socket {}: response for unknown tag {tag}", self.id),
        }
    }

    /// Host-side shutdown: the daemon reads EOF after draining what is queued.
    pub fn shutdown(&self) {
        lock(&self.state).eof = true;
        self.wake_daemon();
    }

    /// The daemon closed its socket: fail everything in flight.
    pub fn owner_closed(&self) {
        let inflight: Vec<_> = {
            let mut st = lock(&self.state);
            st.dead = true;
            st.queue.clear();
            st.inflight.drain(..).map(|(.., w)| w).collect()
        };
        for w in inflight {
            w.complete(Err(Error::new(EIO)));
        }
    }
}
