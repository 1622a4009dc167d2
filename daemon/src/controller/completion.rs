//! Waiting for the controller's completion interrupt, bounded by a deadline.
//!
//! The Redox kernel's IRQ handles never block: a read returns the interrupt count
//! when something is pending and 0 bytes at once otherwise, and subscribing posts no
//! event for an interrupt that already fired (redox-real.md §1.5–1.6). So the
//! handle is subscribed to an event queue together with a `time` scheme timer armed
//! at the deadline, and each wait reads the handle first, then sleeps on the
//! queue. Events are only hints: after any of them the handle is read again, and a
//! timer event counts only if the clock really passed the current deadline (an
//! event left over from an earlier command's timer does not).

use event::{EventFlags, EventQueue};
use libredox::Fd;
use libredox::flag::O_RDWR;
use syscall::data::TimeSpec;
use syscall::error::{ETIMEDOUT, Error, Result};

use driver_sys::irq::IrqHandle;

event::user_data! {
    enum Source {
        Interrupt,
        Deadline,
    }
}

fn errno(e: libredox::error::Error) -> Error {
    Error::new(e.errno())
}

const NS_PER_SEC: u64 = 1_000_000_000;

fn to_ns(t: &TimeSpec) -> u64 {
    let secs = u64::try_from(t.tv_sec).unwrap_or(0);
    let nanos = u64::try_from(t.tv_nsec).unwrap_or(0);
    secs.saturating_mul(NS_PER_SEC).saturating_add(nanos)
}

fn from_ns(ns: u64) -> TimeSpec {
    TimeSpec {
        tv_sec: i64::try_from(ns / NS_PER_SEC).unwrap_or(i64::MAX),
        // < 1e9: fits.
        tv_nsec: (ns % NS_PER_SEC) as i32,
    }
}

/// One interrupt handle and the timer that bounds waits on it.
pub(super) struct CompletionWait {
    queue: EventQueue<Source>,
    /// `/scheme/time/<CLOCK_MONOTONIC>`; `None` when the machine has no `time`
    /// scheme (waits are then unbounded, which is logged once at setup).
    timer: Option<Fd>,
}

impl CompletionWait {
    /// Subscribes `irq` and a monotonic timer to a fresh event queue. The first
    /// [`CompletionWait::wait`] reads the handle before sleeping, which catches an
    /// interrupt from before the subscription.
    pub(super) fn new(irq: &IrqHandle) -> Result<Self> {
        let queue = EventQueue::<Source>::new().map_err(errno)?;
        irq.subscribe(&queue, Source::Interrupt)?;
        let path = format!("/scheme/time/{}", syscall::flag::CLOCK_MONOTONIC);
        let timer = match Fd::open(&path, O_RDWR, 0) {
            Ok(fd) => {
                queue
                    .subscribe(fd.raw(), Source::Deadline, EventFlags::READ)
                    .map_err(errno)?;
                Some(fd)
            }
            Err(e) => {
                log::warn!(
                    "dsmil controller: no time scheme ({e}); completion waits are unbounded"
                );
                None
            }
        };
        Ok(Self { queue, timer })
    }

    fn now_ns(timer: &Fd) -> Result<u64> {
        let mut now = TimeSpec::default();
        timer.read(&mut now).map_err(errno)?;
        Ok(to_ns(&now))
    }

    /// Arms the timer `timeout_ms` from now; returns the deadline (ns), or
    /// `None` without a timer.
    pub(super) fn arm(&self, timeout_ms: u32) -> Result<Option<u64>> {
        let Some(timer) = &self.timer else {
            return Ok(None);
        };
        let deadline = Self::now_ns(timer)?.saturating_add(u64::from(timeout_ms) * 1_000_000);
        timer.write(&from_ns(deadline)).map_err(errno)?;
        Ok(Some(deadline))
    }

    /// Waits until `irq` has fired (returns the count to acknowledge) or the
    /// clock passes `deadline` (`ETIMEDOUT`).
    pub(super) fn wait(&self, irq: &IrqHandle, deadline: Option<u64>) -> Result<u64> {
        loop {
            if let Some(count) = irq.pending()? {
                return Ok(count);
            }
            if let (Some(timer), Some(deadline)) = (&self.timer, deadline)
                && Self::now_ns(timer)? >= deadline
            {
                // One last look: the interrupt may have raced the deadline.
                return irq.pending()?.ok_or(Error::new(ETIMEDOUT));
            }
            // Which source woke us does not matter: both are re-checked above.
            self.queue.next_event().map_err(errno)?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timespec_conversions_round_trip_and_saturate() {
        let t = from_ns(3 * NS_PER_SEC + 5);
        assert_eq!((t.tv_sec, t.tv_nsec), (3, 5));
        assert_eq!(to_ns(&t), 3 * NS_PER_SEC + 5);
        let negative = TimeSpec {
            tv_sec: -1,
            tv_nsec: -1,
        };
        assert_eq!(to_ns(&negative), 0);
        let huge = TimeSpec {
            tv_sec: i64::MAX,
            tv_nsec: 999_999_999,
        };
        assert_eq!(to_ns(&huge), u64::MAX);
    }
}
