//! The kernel's `pipe` scheme, as init and pcid-spawner use it for readiness
//! (`redox-os/kernel src/scheme/pipe.rs`; redox-real.md §5.2).
//!
//! What is copied:
//! * a pipe is a read end and a write end over one byte queue of at most 64 KiB;
//! * reading an empty pipe blocks until bytes arrive, and returns 0 (EOF) once the
//!   write end is closed; `O_NONBLOCK` gives `EAGAIN` instead of blocking;
//! * writing into a pipe whose read end is closed is `EPIPE`;
//! * descriptors sent with `SYS_CALL(WRITE|FD)` on the write end wait in a queue of
//!   their own, apart from the bytes: a daemon that writes a byte never satisfies a
//!   reader waiting for an fd, and the reverse;
//! * receiving (`SYS_CALL(READ|FD)` on the read end) blocks until descriptors are
//!   queued, and returns none (0) once the write end is closed.
//!
//! Starters that are host code (the simulated init, [`crate::init`]) make pipes with
//! [`PipeScheme::pipe`] and wait on them with [`PipeScheme::wait`], which can take a
//! deadline; the kernel's own read never times out.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use syscall::error::{EAGAIN, EBADF, ENOENT, EPIPE, Error, Result};
use syscall::flag::O_NONBLOCK;

use crate::kernel::description::Description;
use crate::kernel::kscheme::{Caller, KernelScheme};
use crate::kernel::wait::{Waitpoint, lock};

/// Bytes a pipe holds (`MAX_QUEUE_SIZE`).
pub const PIPE_CAPACITY: usize = 65536;
/// Descriptors a pipe holds at once (bounded; the kernel's queue is a Vec).
pub const PIPE_FD_CAPACITY: usize = 64;
/// Marks a write-end handle (`WRITE_NOT_READ_BIT`).
const WRITE_BIT: usize = 1 << (usize::BITS - 1);

#[derive(Default)]
struct Queues {
    bytes: VecDeque<u8>,
    fds: VecDeque<Arc<Description>>,
    writer_alive: bool,
    reader_alive: bool,
}

#[derive(Default)]
struct Pipe {
    queues: Mutex<Queues>,
    changed: Waitpoint,
}

/// What a waiting reader found.
pub enum PipeEvent {
    /// Bytes were read (at most the buffer).
    Bytes(Vec<u8>),
    /// A descriptor was received.
    Fd(Arc<Description>),
    /// The write end is closed and nothing is queued.
    Eof,
    /// The deadline passed first.
    TimedOut,
}

/// The `pipe` scheme.
#[derive(Default)]
pub struct PipeScheme {
    pipes: Mutex<HashMap<usize, Arc<Pipe>>>,
    next: AtomicUsize,
}

impl PipeScheme {
    /// A new pipe: (read-end handle, write-end handle).
    pub fn pipe(&self) -> (usize, usize) {
        let key = self.next.fetch_add(1, Ordering::Relaxed) + 1;
        let pipe = Arc::new(Pipe::default());
        {
            let mut q = lock(&pipe.queues);
            q.writer_alive = true;
            q.reader_alive = true;
        }
        lock(&self.pipes).insert(key, pipe);
        (key, key | WRITE_BIT)
    }

    fn get(&self, handle: usize) -> Result<(bool, Arc<Pipe>)> {
        let pipe = lock(&self.pipes)
            .get(&(handle & !WRITE_BIT))
            .cloned()
            .ok_or(Error::new(EBADF))?;
        Ok((handle & WRITE_BIT != 0, pipe))
    }

    /// Waits on the read end `handle` for bytes (when `want_fd` is false) or a
    /// descriptor, until `deadline` if one is given.
    pub fn wait(
        &self,
        handle: usize,
        want_fd: bool,
        deadline: Option<Instant>,
    ) -> Result<PipeEvent> {
        let (is_write, pipe) = self.get(handle)?;
        if is_write {
            return Err(Error::new(EBADF));
        }
        loop {
            let seen = pipe.changed.epoch();
            {
                let mut q = lock(&pipe.queues);
                if want_fd {
                    if let Some(fd) = q.fds.pop_front() {
                        return Ok(PipeEvent::Fd(fd));
                    }
                } else if !q.bytes.is_empty() {
                    let bytes: Vec<u8> = q.bytes.drain(..).collect();
                    drop(q);
                    pipe.changed.notify();
                    return Ok(PipeEvent::Bytes(bytes));
                }
                if !q.writer_alive {
                    return Ok(PipeEvent::Eof);
                }
            }
            if !pipe.changed.wait_past(seen, deadline) {
                return Ok(PipeEvent::TimedOut);
            }
        }
    }
}

impl KernelScheme for PipeScheme {
    /// Opening the scheme root makes a new pipe and gives its read end.
    fn open(&self, path: &str, _flags: usize, _caller: &Caller) -> Result<usize> {
        if !path.trim_start_matches('/').is_empty() {
            return Err(Error::new(ENOENT));
        }
        Ok(self.pipe().0)
    }

    fn read(&self, handle: usize, buf: &mut [u8], flags: usize, _c: &Caller) -> Result<usize> {
        let (is_write, pipe) = self.get(handle)?;
        if is_write {
            return Err(Error::new(EBADF));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            let seen = pipe.changed.epoch();
            {
                let mut q = lock(&pipe.queues);
                if !q.bytes.is_empty() {
                    let n = buf.len().min(q.bytes.len());
                    for (slot, byte) in buf.iter_mut().zip(q.bytes.drain(..n)) {
                        *slot = byte;
                    }
                    drop(q);
                    pipe.changed.notify();
                    return Ok(n);
                }
                if !q.writer_alive {
                    return Ok(0);
                }
                if flags & O_NONBLOCK != 0 {
                    return Err(Error::new(EAGAIN));
                }
            }
            pipe.changed.wait_past(seen, None);
        }
    }

    fn write(&self, handle: usize, buf: &[u8], flags: usize, _c: &Caller) -> Result<usize> {
        let (is_write, pipe) = self.get(handle)?;
        if !is_write {
            return Err(Error::new(EBADF));
        }
        loop {
            let seen = pipe.changed.epoch();
            {
                let mut q = lock(&pipe.queues);
                if !q.reader_alive {
                    return Err(Error::new(EPIPE));
                }
                let room = PIPE_CAPACITY.saturating_sub(q.bytes.len());
                if room > 0 || buf.is_empty() {
                    let n = room.min(buf.len());
                    q.bytes.extend(&buf[..n]);
                    drop(q);
                    pipe.changed.notify();
                    return Ok(n);
                }
                if flags & O_NONBLOCK != 0 {
                    return Err(Error::new(EAGAIN));
                }
            }
            pipe.changed.wait_past(seen, None);
        }
    }

    /// `SYS_CALL(WRITE|FD)` on the write end: queues `descs` apart from the bytes.
    fn send_fds(&self, handle: usize, descs: Vec<Arc<Description>>) -> Result<usize> {
        let (is_write, pipe) = self.get(handle)?;
        if !is_write {
            return Err(Error::new(EBADF));
        }
        let n = descs.len();
        {
            let mut q = lock(&pipe.queues);
            if !q.reader_alive {
                return Err(Error::new(EPIPE));
            }
            if q.fds.len() + n > PIPE_FD_CAPACITY {
                return Err(Error::new(EAGAIN));
            }
            q.fds.extend(descs);
        }
        pipe.changed.notify();
        Ok(n)
    }

    /// `SYS_CALL(READ|FD)` on the read end: up to `max` queued descriptors,
    /// blocking until one is queued; none once the write end is closed.
    fn recv_fds(&self, handle: usize, max: usize) -> Result<Vec<Arc<Description>>> {
        match self.wait(handle, true, None)? {
            PipeEvent::Fd(first) => {
                let (_, pipe) = self.get(handle)?;
                let mut out = vec![first];
                let mut q = lock(&pipe.queues);
                while out.len() < max {
                    match q.fds.pop_front() {
                        Some(d) => out.push(d),
                        None => break,
                    }
                }
                Ok(out)
            }
            _ => Ok(Vec::new()),
        }
    }

    fn close(&self, handle: usize) {
        let Ok((is_write, pipe)) = self.get(handle) else {
            return;
        };
        let gone = {
            let mut q = lock(&pipe.queues);
            if is_write {
                q.writer_alive = false;
            } else {
                q.reader_alive = false;
                // Descriptors nobody will receive are closed with the pipe.
                q.fds.clear();
            }
            !q.writer_alive && !q.reader_alive
        };
        pipe.changed.notify();
        if gone {
            lock(&self.pipes).remove(&(handle & !WRITE_BIT));
        }
    }
}
