//! Waiting for an SMI to finish: status-port polling with hang detection,
//! a time budget, and retries.

use std::time::Duration;

use syscall::error::{EINVAL, Error, Result};

use super::port_io::{Clock, PortIo};
use super::smi_error::SmiError;

/// Default budget for one SMI operation, retries included.
pub const DEFAULT_SMI_BUDGET: Duration = Duration::from_millis(50);
/// Identical consecutive status reads that mean "stuck".
pub const DEFAULT_HANG_POLLS: u32 = 10;
/// Default extra attempts after a hung or silent one.
pub const DEFAULT_SMI_RETRIES: u32 = 2;

/// Status bit 0: the SMI finished.
pub const STATUS_DONE: u8 = 0x01;
/// Status bit 7: the SMI failed.
pub const STATUS_ERROR: u8 = 0x80;

/// How long and how hard to wait for an SMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmiPolicy {
    budget: Duration,
    hang_polls: u32,
    retries: u32,
}

impl Default for SmiPolicy {
    /// 50 ms, 10 identical polls, 2 retries.
    fn default() -> SmiPolicy {
        SmiPolicy {
            budget: DEFAULT_SMI_BUDGET,
            hang_polls: DEFAULT_HANG_POLLS,
            retries: DEFAULT_SMI_RETRIES,
        }
    }
}

impl SmiPolicy {
    /// A policy: `budget` for the whole operation (all attempts),
    /// `hang_polls` identical reads (≥ 2) to call an attempt stuck, and up
    /// to `retries` extra attempts. `EINVAL` for a zero budget or fewer
    /// than 2 hang polls (one read cannot be "the same as before").
    pub fn new(budget: Duration, hang_polls: u32, retries: u32) -> Result<SmiPolicy> {
        if budget.is_zero() || hang_polls < 2 {
            return Err(Error::new(EINVAL));
        }
        Ok(SmiPolicy {
            budget,
            hang_polls,
            retries,
        })
    }

    /// The whole-operation budget.
    pub const fn budget(&self) -> Duration {
        self.budget
    }
    /// Identical polls that mean stuck.
    pub const fn hang_polls(&self) -> u32 {
        self.hang_polls
    }
    /// Extra attempts allowed.
    pub const fn retries(&self) -> u32 {
        self.retries
    }
}

/// Running totals for `stats`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmiCounters {
    /// Operations that reached firmware.
    pub operations: u64,
    /// SMIs raised (operations plus retries).
    pub raised: u64,
    /// Retries after a hung or silent attempt.
    pub retries: u64,
    /// Operations that failed with `ETIMEDOUT` (hung or over budget).
    pub timeouts: u64,
    /// Operations that failed with a firmware error or no answer.
    pub errors: u64,
    /// Requests refused before firmware (quarantine, bad buffer).
    pub refused: u64,
}

impl SmiCounters {
    /// Counts the outcome of one finished operation.
    pub(crate) fn record<T>(&mut self, outcome: &core::result::Result<T, SmiError>) {
        match outcome {
            Ok(_) => {}
            Err(SmiError::Quarantined | SmiError::BadBuffer) => self.refused += 1,
            Err(SmiError::Hung { .. } | SmiError::BudgetExceeded { .. }) => self.timeouts += 1,
            Err(_) => self.errors += 1,
        }
    }
}

enum Reading {
    Done,
    Error,
    /// 0x00 or 0xFF: what a port with nothing behind it reads.
    Invalid,
    Busy,
}

fn classify(status: u8) -> Reading {
    if status == 0x00 || status == 0xFF {
        Reading::Invalid
    } else if status & STATUS_ERROR != 0 {
        Reading::Error
    } else if status & STATUS_DONE != 0 {
        Reading::Done
    } else {
        Reading::Busy
    }
}

/// Raises an SMI with `raise` and polls `status_port` until it finishes,
/// retrying hung or silent attempts while budget and retries last.
///
/// One attempt reads the status port until: bit 7 → [`SmiError::Firmware`];
/// bit 0 → done; the same value `hang_polls` times in a row →
/// [`SmiError::InvalidStatus`] if it is 0x00/0xFF, else [`SmiError::Hung`].
/// After every read the budget (measured from the first raise) is checked:
/// past it → [`SmiError::BudgetExceeded`]. With `status_port` `None` the
/// SMI is taken as synchronous (the `out` returns when firmware is done,
/// as on Dell hardware) and no polling happens.
pub(crate) fn raise_and_wait<P, C, F>(
    ports: &mut P,
    clock: &C,
    policy: &SmiPolicy,
    status_port: Option<u16>,
    counters: &mut SmiCounters,
    mut raise: F,
) -> core::result::Result<(), SmiError>
where
    P: PortIo + ?Sized,
    C: Clock + ?Sized,
    F: FnMut(&mut P),
{
    let start = clock.now();
    counters.operations += 1;
    let mut attempt = 0;
    loop {
        counters.raised += 1;
        raise(ports);
        let Some(port) = status_port else {
            return Ok(());
        };
        match poll(ports, clock, policy, port, start) {
            Err(error) if error.is_retryable() && attempt < policy.retries => {
                attempt += 1;
                counters.retries += 1;
            }
            outcome => return outcome,
        }
    }
}

fn poll<P, C>(
    ports: &mut P,
    clock: &C,
    policy: &SmiPolicy,
    port: u16,
    start: Duration,
) -> core::result::Result<(), SmiError>
where
    P: PortIo + ?Sized,
    C: Clock + ?Sized,
{
    let mut previous = None;
    let mut streak = 0u32;
    loop {
        let status = ports.inb(port);
        let reading = classify(status);
        match reading {
            Reading::Done => return Ok(()),
            Reading::Error => return Err(SmiError::Firmware { status }),
            Reading::Invalid | Reading::Busy => {}
        }
        if previous == Some(status) {
            streak += 1;
        } else {
            previous = Some(status);
            streak = 1;
        }
        if streak >= policy.hang_polls {
            return Err(match reading {
                Reading::Invalid => SmiError::InvalidStatus { status },
                _ => SmiError::Hung { status },
            });
        }
        let elapsed = clock.now().saturating_sub(start);
        if elapsed > policy.budget {
            return Err(SmiError::BudgetExceeded { elapsed });
        }
    }
}
