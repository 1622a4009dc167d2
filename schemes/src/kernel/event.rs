//! Event queues (`redox_event_queue_*_v1`) and the readiness hub that feeds them.
//!
//! A description that can become ready is an event *source*. Subscribing a file
//! descriptor to a queue records (queue, fd, user data, wanted flags) under the
//! description's source key; when the source reports readiness (a scheme's
//! `post_fevent`, a request arriving on a scheme socket, an IRQ, a timer) the hub
//! queues one event per matching subscription. Events for the same subscription
//! coalesce while unread, so a queue holds at most one entry per subscription.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Instant;

use event::raw::RawEventV1;

use super::wait::{Waitpoint, lock};

/// A multiplicative hasher for the hub's small integer keys: SipHash's DoS resistance
/// buys nothing here and costs on every posted event.
#[derive(Clone, Copy, Default)]
pub struct FastHash;

/// State of [`FastHash`].
#[derive(Default)]
pub struct FastHasher(u64);

impl std::hash::Hasher for FastHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, v: u64) {
        self.0 = (self.0.rotate_left(5) ^ v).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
    fn write_usize(&mut self, v: usize) {
        self.write_u64(v as u64);
    }
    fn write_isize(&mut self, v: isize) {
        self.write_u64(v as u64);
    }
}

impl std::hash::BuildHasher for FastHash {
    type Hasher = FastHasher;
    fn build_hasher(&self) -> FastHasher {
        FastHasher::default()
    }
}

/// Identifies what an event is about.
#[derive(Clone, Copy, Debug, Eq, Hash, PartialEq)]
pub enum SourceKey {
    /// A scheme socket: readable when requests are queued (or at EOF).
    Socket(u64),
    /// A file of a userspace scheme: `(socket id, file number)`, as `post_fevent` names it.
    UserFile(u64, usize),
    /// A handle of a kernel scheme: `(scheme id, handle)`.
    Kernel(u64, usize),
}

struct Subscription {
    queue: Weak<EventQueue>,
    queue_id: u64,
    desc_id: u64,
    fd: usize,
    user_data: usize,
    flags: u32,
}

/// The kernel's table of who listens to what.
#[derive(Default)]
pub struct EventHub {
    subs: Mutex<HashMap<SourceKey, Vec<Subscription>, FastHash>>,
}

impl EventHub {
    /// Adds, changes (same queue and fd) or with empty `flags` removes a subscription.
    pub fn subscribe(
        &self,
        key: SourceKey,
        queue: &Arc<EventQueue>,
        desc_id: u64,
        fd: usize,
        user_data: usize,
        flags: u32,
    ) {
        let mut subs = lock(&self.subs);
        let list = subs.entry(key).or_default();
        list.retain(|s| !(s.queue_id == queue.id && s.fd == fd) && s.queue.strong_count() > 0);
        if flags != 0 {
            list.push(Subscription {
                queue: Arc::downgrade(queue),
                queue_id: queue.id,
                desc_id,
                fd,
                user_data,
                flags,
            });
        }
        if list.is_empty() {
            subs.remove(&key);
        }
    }

    /// Reports readiness `flags` of a source to every queue subscribed to it.
    pub fn post(&self, key: SourceKey, flags: u32) {
        let subs = lock(&self.subs);
        let Some(list) = subs.get(&key) else {
            return;
        };
        // Subscriptions of dropped queues are skipped here and pruned on `subscribe`.
        for s in list.iter() {
            let hit = s.flags & flags;
            if hit != 0
                && let Some(q) = s.queue.upgrade()
            {
                q.push(s.fd, s.user_data, hit);
            }
        }
    }

    /// Forgets every subscription made through a description (it was closed).
    pub fn forget_description(&self, desc_id: u64) {
        let mut subs = lock(&self.subs);
        subs.retain(|_, list| {
            list.retain(|s| s.desc_id != desc_id);
            !list.is_empty()
        });
    }
}

/// One event queue (what `/scheme/event` opens on Redox).
///
/// `repr(C)` keeps `nonempty` beside `ready`'s epoch, on the line a waiting daemon
/// spins on, and away from the `pending` lock posters take.
#[repr(C)]
pub struct EventQueue {
    id: u64,
    pending: Mutex<VecDeque<RawEventV1>>,
    /// Whether `pending` holds events, republished under its lock by every change, so
    /// a reader finding the queue empty (after each batch it handled) does not take the
    /// lock a poster is queueing under.
    nonempty: AtomicBool,
    ready: Waitpoint,
}

impl EventQueue {
    /// A new, empty queue with a kernel-unique id.
    pub fn new(id: u64) -> Self {
        Self {
            id,
            pending: Mutex::new(VecDeque::new()),
            nonempty: AtomicBool::new(false),
            ready: Waitpoint::default(),
        }
    }

    /// Queues (or merges into a pending) event for one subscription.
    pub fn push(&self, fd: usize, user_data: usize, flags: u32) {
        let mut q = lock(&self.pending);
        if let Some(e) = q
            .iter_mut()
            .find(|e| e.fd == fd && e.user_data == user_data)
        {
            e.flags |= flags;
        } else {
            q.push_back(RawEventV1 {
                fd,
                user_data,
                flags,
            });
            self.nonempty.store(true, Ordering::Release);
        }
        drop(q);
        self.ready.notify();
    }

    /// Takes up to `out.len()` events, blocking until at least one exists or `deadline`.
    /// Returns the number taken (0 only on timeout).
    pub fn take(&self, out: &mut [RawEventV1], deadline: Option<Instant>) -> usize {
        if out.is_empty() {
            return 0;
        }
        loop {
            let seen = self.ready.epoch();
            // Empty: an event pushed after this load bumps the epoch after publishing
            // `nonempty`, so the wait below cannot miss it.
            if self.nonempty.load(Ordering::Acquire) {
                let mut q = lock(&self.pending);
                if !q.is_empty() {
                    let n = q.len().min(out.len());
                    for (slot, e) in out.iter_mut().zip(q.drain(..n)) {
                        *slot = e;
                    }
                    self.nonempty.store(!q.is_empty(), Ordering::Release);
                    return n;
                }
            }
            if !self.ready.wait_past(seen, deadline) {
                return 0;
            }
        }
    }
}
