//! Clocks for the scheme's own timekeeping (session idle times, timestamps).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use super::port_io::Clock;

/// The system's monotonic clock, read through `libredox` (`CLOCK_MONOTONIC`).
///
/// This is the clock the `time` scheme's timeouts are measured against, so
/// housekeeping woken by a `/scheme/time` deadline sees the same time the
/// deadline was set in. A failed read gives the origin (zero), which can
/// only make sessions look younger, never expire them early.
#[derive(Clone, Copy, Debug, Default)]
pub struct RedoxClock;

impl Clock for RedoxClock {
    fn now(&self) -> Duration {
        match libredox::call::clock_gettime(libredox::flag::CLOCK_MONOTONIC) {
            Ok(ts) => Duration::new(
                u64::try_from(ts.tv_sec).unwrap_or(0),
                u32::try_from(ts.tv_nsec).unwrap_or(0),
            ),
            Err(_) => Duration::ZERO,
        }
    }
}

/// A clock that moves only when told to: for tests that drive the scheme
/// directly (no kernel, no `time` scheme). Clones share the same time.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    nanos: Arc<AtomicU64>,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ns = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(ns, Ordering::AcqRel);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(Ordering::Acquire))
    }
}
