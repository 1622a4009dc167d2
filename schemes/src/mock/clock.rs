//! The simulated monotonic clock and its timers.
//!
//! Time runs with the host's monotonic clock, plus an offset tests can advance, so a
//! test of "idle sessions expire after 30 s" advances time instead of sleeping.
//! Timers fire from one lazily started thread that sleeps until the earliest deadline.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::kernel::wait::lock;

type Action = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct Timers {
    pending: BTreeMap<(u64, u64), Action>,
    next_seq: u64,
    thread_running: bool,
}

/// A monotonic clock in nanoseconds since boot.
pub struct Clock {
    start: Instant,
    offset_ns: AtomicU64,
    timers: Mutex<Timers>,
    changed: Condvar,
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock {
    /// A clock starting at zero now.
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            offset_ns: AtomicU64::new(0),
            timers: Mutex::new(Timers::default()),
            changed: Condvar::new(),
        }
    }

    /// Nanoseconds since boot, including advances.
    pub fn now_ns(&self) -> u64 {
        let real = u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX);
        real.saturating_add(self.offset_ns.load(Ordering::Acquire))
    }

    /// Moves time forward (timers due by then fire).
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::AcqRel);
        let _t = lock(&self.timers);
        self.changed.notify_all();
    }

    /// Runs `action` once the clock reaches `deadline_ns`.
    pub fn at(self: &Arc<Self>, deadline_ns: u64, action: impl FnOnce() + Send + 'static) {
        let mut t = lock(&self.timers);
        let seq = t.next_seq;
        t.next_seq += 1;
        t.pending.insert((deadline_ns, seq), Box::new(action));
        if !t.thread_running {
            t.thread_running = true;
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("redox-host-timer".into())
                .spawn(move || me.timer_thread());
            if spawned.is_err() {
                t.thread_running = false;
                log::error!("redox-host: cannot start the timer thread");
            }
        }
        self.changed.notify_all();
    }

    fn timer_thread(self: Arc<Self>) {
        let mut t = lock(&self.timers);
        loop {
            let now = self.now_ns();
            let due: Vec<(u64, u64)> = t
                .pending
                .range(..=(now, u64::MAX))
                .map(|(k, _)| *k)
                .collect();
            if !due.is_empty() {
                let actions: Vec<Action> = due.iter().filter_map(|k| t.pending.remove(k)).collect();
                drop(t);
                for a in actions {
                    a();
                }
                t = lock(&self.timers);
                continue;
            }
            let Some(&(next, _)) = t.pending.keys().next() else {
                // Nothing pending: the thread ends and the next timer starts a new one.
                t.thread_running = false;
                return;
            };
            let wait = Duration::from_nanos(next.saturating_sub(now));
            t = self
                .changed
                .wait_timeout(t, wait)
                .map(|(g, _)| g)
                .unwrap_or_else(|e| e.into_inner().0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn advancing_fires_due_timers_only() {
        let c = Arc::new(Clock::new());
        let (tx, rx) = mpsc::channel();
        let far = c.now_ns() + 3_600_000_000_000;
        let tx2 = tx.clone();
        c.at(far, move || tx2.send("far").unwrap_or(()));
        c.at(far * 2, move || tx.send("farther").unwrap_or(()));
        c.advance(Duration::from_secs(3601));
        assert_eq!(rx.recv().ok(), Some("far"));
        assert!(rx.try_recv().is_err(), "the later timer must not fire yet");
    }
}
