//! The mocked `time` scheme: `/scheme/time/<clock>` (Redox clock ids: 1 realtime,
//! 4 monotonic). Reading gives the clock as a Redox `TimeSpec`; writing a `TimeSpec`
//! arms a timeout at that absolute time, after which the handle reports `EVENT_READ`
//! — how Redox daemons do periodic work from their event loop.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use syscall::data::TimeSpec;
use syscall::error::{EBADF, EINVAL, ENOENT, Error, Result};
use syscall::flag::{CLOCK_MONOTONIC, CLOCK_REALTIME, EventFlags};

use super::clock::Clock;
use crate::kernel::kscheme::{Caller, EventPort, KernelScheme};
use crate::kernel::wait::lock;

struct Timer {
    clock: usize,
    deadline_ns: Option<u64>,
}

/// The `time` scheme.
pub struct TimeScheme {
    me: Weak<TimeScheme>,
    clock: Arc<Clock>,
    handles: Mutex<HashMap<usize, Timer>>,
    next: AtomicUsize,
    events: EventPort,
}

fn to_timespec(ns: u64) -> TimeSpec {
    TimeSpec {
        tv_sec: (ns / 1_000_000_000) as i64,
        tv_nsec: (ns % 1_000_000_000) as i32,
    }
}

fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

impl TimeScheme {
    /// The scheme over `clock`.
    pub fn new(clock: Arc<Clock>, events: EventPort) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            me: me.clone(),
            clock,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
            events,
        })
    }

    fn now(&self, clock: usize) -> u64 {
        if clock == CLOCK_REALTIME {
            realtime_ns()
        } else {
            self.clock.now_ns()
        }
    }

    fn expired(&self, h: usize) {
        let fire = match lock(&self.handles).get(&h) {
            Some(t) => t.deadline_ns.is_some_and(|d| self.now(t.clock) >= d),
            None => false,
        };
        if fire {
            self.events.post(h, EventFlags::EVENT_READ.bits() as u32);
        }
    }
}

impl KernelScheme for TimeScheme {
    fn open(&self, path: &str, _flags: usize, _c: &Caller) -> Result<usize> {
        let clock: usize = path.parse().map_err(|_| Error::new(ENOENT))?;
        if clock != CLOCK_MONOTONIC && clock != CLOCK_REALTIME {
            return Err(Error::new(ENOENT));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(
            id,
            Timer {
                clock,
                deadline_ns: None,
            },
        );
        Ok(id)
    }

    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let clock = lock(&self.handles)
            .get(&h)
            .map(|t| t.clock)
            .ok_or(Error::new(EBADF))?;
        if buf.len() < size_of::<TimeSpec>() {
            return Err(Error::new(EINVAL));
        }
        let ts = to_timespec(self.now(clock));
        buf[..8].copy_from_slice(&ts.tv_sec.to_ne_bytes());
        buf[8..12].copy_from_slice(&ts.tv_nsec.to_ne_bytes());
        buf[12..16].fill(0);
        Ok(size_of::<TimeSpec>())
    }

    fn write(&self, h: usize, buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        if buf.len() < size_of::<TimeSpec>() {
            return Err(Error::new(EINVAL));
        }
        let sec = i64::from_ne_bytes(buf[..8].try_into().map_err(|_| Error::new(EINVAL))?);
        let nsec = i32::from_ne_bytes(buf[8..12].try_into().map_err(|_| Error::new(EINVAL))?);
        if sec < 0 || !(0..1_000_000_000).contains(&nsec) {
            return Err(Error::new(EINVAL));
        }
        let deadline = (sec as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(nsec as u64);
        let clock = {
            let mut hs = lock(&self.handles);
            let t = hs.get_mut(&h).ok_or(Error::new(EBADF))?;
            t.deadline_ns = Some(deadline);
            t.clock
        };
        if clock == CLOCK_REALTIME {
            // Realtime deadlines are rare in daemons; approximate them on the monotonic clock.
            let delta = deadline.saturating_sub(realtime_ns());
            let me = self.me.clone();
            self.clock.at(self.clock.now_ns() + delta, move || {
                if let Some(s) = me.upgrade() {
                    s.events.post(h, EventFlags::EVENT_READ.bits() as u32);
                }
            });
        } else {
            let me = self.me.clone();
            self.clock.at(deadline, move || {
                if let Some(s) = me.upgrade() {
                    s.expired(h);
                }
            });
        }
        Ok(size_of::<TimeSpec>())
    }

    fn fevent(&self, h: usize, _flags: u32) -> Result<u32> {
        let hs = lock(&self.handles);
        let t = hs.get(&h).ok_or(Error::new(EBADF))?;
        Ok(match t.deadline_ns {
            Some(d) if self.now(t.clock) >= d => EventFlags::EVENT_READ.bits() as u32,
            _ => 0,
        })
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}
