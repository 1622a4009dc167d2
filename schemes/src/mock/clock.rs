//! The simulated monotonic clock and its timers.
//!
//! By default time runs with the host's monotonic clock, as a real machine's does,
//! plus an offset tests can advance, so a test of "idle sessions expire after 30 s"
//! advances time instead of sleeping. [`ClockSource::Manual`] (an explicit option the
//! real kernel lacks) stops the host part: time moves only when a test advances it, so
//! no daemon deadline passes because the host was slow. Timers fire from one lazily
//! started thread that sleeps until the earliest deadline (or, on a manual clock,
//! until time is advanced).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::kernel::wait::lock;

type Action = Box<dyn FnOnce() + Send>;

/// Where the simulated clock's time comes from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ClockSource {
    /// The host's monotonic clock plus advances: time flows as on a real machine.
    #[default]
    Host,
    /// Advances only: time stands still until [`Clock::advance`]. Real Redox has no
    /// such clock; tests whose outcome must not depend on how fast the host runs
    /// (a 10 ms flush deadline, a 100 ms command timeout) opt in.
    Manual,
}

#[derive(Default)]
struct Timers {
    pending: BTreeMap<(u64, u64), Action>,
    next_seq: u64,
    thread_running: bool,
}

/// A monotonic clock in nanoseconds since boot.
pub struct Clock {
    /// The host origin; `None` on a manual clock.
    start: Option<Instant>,
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
    /// A clock starting at zero now, running with the host's clock.
    pub fn new() -> Self {
        Self::with_source(ClockSource::Host)
    }

    /// A clock starting at zero now, its time taken from `source`.
    pub fn with_source(source: ClockSource) -> Self {
        Self {
            start: (source == ClockSource::Host).then(Instant::now),
            offset_ns: AtomicU64::new(0),
            timers: Mutex::new(Timers::default()),
            changed: Condvar::new(),
        }
    }

    /// Nanoseconds since boot, including advances.
    pub fn now_ns(&self) -> u64 {
        let real = self.start.map_or(0, |start| {
            u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX)
        });
        real.saturating_add(self.offset_ns.load(Ordering::Acquire))
    }

    /// Moves time forward (timers due by then fire).
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.offset_ns.fetch_add(ns, Ordering::AcqRel);
        let _t = lock(&self.timers);
        self.changed.notify_all();
    }

    /// How many timers were ever armed ([`Clock::at`] calls; the `time` scheme arms
    /// one per deadline a handle is given).
    pub fn armed(&self) -> u64 {
        lock(&self.timers).next_seq
    }

    /// Blocks until at least `count` timers were ever armed: how a test knows a
    /// daemon has set the deadline it is about to advance past (advancing first would
    /// only move the deadline along with the clock).
    pub fn wait_armed(&self, count: u64) {
        let mut t = lock(&self.timers);
        while t.next_seq < count {
            t = self.changed.wait(t).unwrap_or_else(|e| e.into_inner());
        }
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
            t = if self.start.is_none() {
                // A manual clock moves only in `advance`, which notifies.
                self.changed.wait(t).unwrap_or_else(|e| e.into_inner())
            } else {
                let wait = Duration::from_nanos(next.saturating_sub(now));
                self.changed
                    .wait_timeout(t, wait)
                    .map(|(g, _)| g)
                    .unwrap_or_else(|e| e.into_inner().0)
            };
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

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let c = Arc::new(Clock::with_source(ClockSource::Manual));
        assert_eq!(c.now_ns(), 0);
        let (tx, rx) = mpsc::channel();
        c.at(1, move || tx.send(()).unwrap_or(()));
        assert_eq!(c.armed(), 1);
        c.wait_armed(1);
        // The timer thread is running and waiting: only an advance releases it.
        assert_eq!(c.now_ns(), 0);
        assert!(rx.try_recv().is_err());
        c.advance(Duration::from_nanos(1));
        assert_eq!(rx.recv().ok(), Some(()));
        assert_eq!(c.now_ns(), 1);
    }
}
