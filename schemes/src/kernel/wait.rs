//! Blocking without losing latency: spin briefly, then park.
//!
//! A park/unpark round trip costs 50–100 µs on the 2-core machines this runs on, while
//! the next request usually arrives within a few microseconds. So every wait in the
//! mocked kernel first spins on a sequence counter for a short, bounded time and only
//! then registers the thread and parks.

use std::cell::UnsafeCell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

/// How long a waiter spins before it parks.
pub const SPIN_FOR: Duration = Duration::from_micros(40);
/// How long it spins without yielding first: a typical scheme round trip fits in it,
/// and a `sched_yield` in the middle of one would cost more than the whole trip.
pub const PURE_SPIN: Duration = Duration::from_micros(4);

/// Spins until `ready()` holds or [`SPIN_FOR`] passes; returns whether it held.
pub fn spin_until(mut ready: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        let spent = start.elapsed();
        if spent >= SPIN_FOR {
            return ready();
        }
        if spent >= PURE_SPIN {
            // More runnable threads than cores: let the one we wait for run.
            thread::yield_now();
        }
    }
}

/// A point many threads can wait at for "something changed".
///
/// Waiters read [`Waitpoint::epoch`], test their condition, and call
/// [`Waitpoint::wait_past`] with the epoch they read; a notifier bumps the epoch and wakes
/// parked waiters. A notification between the read and the park is never lost.
#[derive(Default)]
pub struct Waitpoint {
    epoch: AtomicU64,
    parked: AtomicUsize,
    sleepers: Mutex<Vec<Thread>>,
}

impl Waitpoint {
    /// The current epoch; read it before testing the condition.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Threads registered to park here (parked, or between their last look at the
    /// epoch and the park): what a test waits for before it proves a wake-up arrives.
    pub fn parked(&self) -> usize {
        self.parked.load(Ordering::Acquire)
    }

    /// Wakes every waiter.
    pub fn notify(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        if self.parked.load(Ordering::Acquire) > 0 {
            let sleepers = std::mem::take(&mut *lock(&self.sleepers));
            for t in sleepers {
                t.unpark();
            }
        }
    }

    /// Waits until the epoch moves past `seen` or `deadline` passes. Returns false on timeout.
    pub fn wait_past(&self, seen: u64, deadline: Option<Instant>) -> bool {
        if spin_until(|| self.epoch() != seen) {
            return true;
        }
        self.parked.fetch_add(1, Ordering::AcqRel);
        let me = thread::current();
        let woke = loop {
            // Registered again before every look, not once: a notifier whose epoch bump
            // came before `seen` was read can still take this entry and unpark us for
            // its old change; we then park again, and without a fresh entry the
            // notification we do wait for would find nobody to wake (a lost wake-up).
            {
                let mut sleepers = lock(&self.sleepers);
                if !sleepers.iter().any(|t| t.id() == me.id()) {
                    sleepers.push(me.clone());
                }
            }
            if self.epoch() != seen {
                break true;
            }
            match deadline {
                None => thread::park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        break false;
                    }
                    thread::park_timeout(d - now);
                }
            }
        };
        self.parked.fetch_sub(1, Ordering::AcqRel);
        // A stale entry only costs a spurious unpark later, which every park loop tolerates.
        woke
    }
}

/// A one-shot completion a single blocked caller waits on (its scheme reply).
///
/// Lock-free: this is on the path of every scheme call. Cache-line aligned, so inside an
/// `Arc` the reference counts sit on a line of their own: the completer dropping its
/// reference does not take away the line the waiter is reading its value from.
/// [`Completion::reset`] lets a thread reuse its completion for its next call once the
/// completer has let go of it, instead of allocating one per call.
#[repr(align(64))]
pub struct Completion<T> {
    state: AtomicU8,
    /// Set by the waiter before it parks, so a completer whose waiter is still
    /// spinning skips `unpark` (another cache line, and often a futex call).
    parked: AtomicBool,
    value: UnsafeCell<Option<T>>,
    waiter: Thread,
}

const EMPTY: u8 = 0;
const WRITING: u8 = 1;
const DONE: u8 = 2;

// SAFETY: `value` is written once by the thread that wins EMPTY→WRITING and read only
// by the waiter after it observed DONE (Release/Acquire), so access is never shared.
unsafe impl<T: Send> Sync for Completion<T> {}
unsafe impl<T: Send> Send for Completion<T> {}

impl<T> Completion<T> {
    /// A completion the current thread will wait on.
    pub fn for_current_thread() -> Self {
        Self {
            state: AtomicU8::new(EMPTY),
            parked: AtomicBool::new(false),
            value: UnsafeCell::new(None),
            waiter: thread::current(),
        }
    }

    /// Makes a completion that delivered its value waitable again. `&mut` proves that no
    /// completer holds it any more (the caller got it from `Arc::get_mut`).
    pub fn reset(&mut self) {
        *self.state.get_mut() = EMPTY;
        *self.parked.get_mut() = false;
        *self.value.get_mut() = None;
    }

    /// Delivers the value and wakes the waiter. Later deliveries are ignored.
    pub fn complete(&self, value: T) {
        if self
            .state
            .compare_exchange(EMPTY, WRITING, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return;
        }
        // SAFETY: only the winner of the exchange above writes, and the waiter reads
        // only after DONE.
        unsafe { *self.value.get() = Some(value) };
        // SeqCst pairs with the waiter's `parked` store then `state` load: at least one
        // of the two sides sees the other, so a parked waiter is always woken.
        self.state.store(DONE, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) {
            self.waiter.unpark();
        }
    }

    /// Whether a value was delivered.
    pub fn is_done(&self) -> bool {
        self.state.load(Ordering::Acquire) == DONE
    }

    /// Blocks (spin, then park) until the value arrives. Callers are never timed out:
    /// their buffers stay valid because they are blocked here, as on Redox.
    /// Call it once, from the thread that created the completion.
    pub fn wait(&self) -> Option<T> {
        if !spin_until(|| self.is_done()) {
            self.parked.store(true, Ordering::SeqCst);
            while self.state.load(Ordering::SeqCst) != DONE {
                thread::park();
            }
        }
        // SAFETY: DONE was observed with Acquire; the writer is finished with `value`.
        unsafe { (*self.value.get()).take() }
    }
}

/// Locks a mutex, ignoring poisoning: a panicking test thread must not wedge the kernel.
pub fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A notifier that bumped the epoch before the waiter read it, and only then took
    /// the sleepers and unparked them (it was preempted in between), wakes the waiter
    /// for a change it already saw. The waiter parks again and must still be woken by
    /// the next notification: it registers again (the old code registered once, and
    /// its entry was gone).
    #[test]
    fn a_waiter_woken_for_an_old_change_stays_registered() {
        let wp = Arc::new(Waitpoint::default());
        // The late notifier's first half: its bump, before the waiter looks.
        wp.epoch.fetch_add(1, Ordering::AcqRel);
        let seen = wp.epoch();
        let w = wp.clone();
        let waiter = thread::spawn(move || w.wait_past(seen, None));
        while wp.parked() == 0 || lock(&wp.sleepers).is_empty() {
            thread::yield_now();
        }
        // Its second half: it saw a parked waiter, takes the sleepers and wakes them.
        for t in std::mem::take(&mut *lock(&wp.sleepers)) {
            t.unpark();
        }
        // The waiter finds its epoch unchanged and parks again, registered anew.
        while lock(&wp.sleepers).is_empty() {
            thread::yield_now();
        }
        wp.notify();
        assert!(matches!(waiter.join(), Ok(true)));
    }
}
