//! Per-client bounds: who opened each handle, what each user and each process
//! holds, and the SMI budget of each non-root user.
//!
//! A client is known by what the kernel told the scheme when it opened a handle
//! (uid and pid at open); later requests on that handle are attributed and
//! authorised on that record, never on the credentials a request carries.
//!
//! | bound | applies to | errno |
//! |---|---|---|
//! | `handles_per_uid` | each non-root user (all its processes together) | `EMFILE` |
//! | `handles_per_process` | each process, root's included (on Redox every driver is root) | `EMFILE` |
//! | `sessions_per_uid` | each non-root user | `EMFILE` |
//! | `sessions_per_process` | each process | `EMFILE` |
//! | `smi_per_second` | SMI-raising operations of each non-root user | `EAGAIN` |
//!
//! Root is exempt from the per-user bounds only: the global bounds
//! ([`MAX_HANDLES`](super::MAX_HANDLES), `session_limit`) and the per-process
//! ones hold for everybody.

use std::collections::BTreeMap;

use syscall::error::{EAGAIN, Error, Result};

use crate::config::Config;

/// Most heap bytes one handle can hold (an `events` reader with a full queue,
/// or a `control` channel holding an unread whole-table reply, with the
/// scheme's table entries for it). `tests/tests/dsmil_client_memory.rs`
/// measures it.
pub const MAX_HANDLE_BYTES: usize = 6 * 1024;
/// Most heap bytes one session can hold (a scan's copy of the table, or a
/// read's value, record and register block).
pub const MAX_SESSION_BYTES: usize = 6 * 1024;

/// Who opened a handle: the kernel's caller record at open.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub struct Opener {
    /// User id at open.
    pub uid: u32,
    /// Process id at open.
    pub pid: usize,
}

impl Opener {
    /// Root (uid 0) is exempt from per-user bounds and the SMI rate.
    pub fn is_root(self) -> bool {
        self.uid == 0
    }
}

/// What one user or one process holds.
#[derive(Clone, Copy, Debug, Default, Eq, PartialEq)]
pub struct Usage {
    /// Open handles.
    pub handles: usize,
    /// Live sessions.
    pub sessions: usize,
}

impl Usage {
    fn is_empty(self) -> bool {
        self.handles == 0 && self.sessions == 0
    }
}

/// A token bucket in thousandths of an SMI: `rate` per second, at most `rate`
/// at once, refilled from the scheme's clock (the virtual clock in tests).
#[derive(Clone, Copy, Debug)]
struct SmiBucket {
    milli: u64,
    at_ms: u64,
}

/// Which bound a refusal came from (for `stats`).
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Bound {
    /// The user's handle or session bound.
    User,
    /// The process's handle or session bound.
    Process,
}

/// The per-client books.
#[derive(Debug, Default)]
pub struct Clients {
    openers: BTreeMap<usize, Opener>,
    by_uid: BTreeMap<u32, Usage>,
    by_pid: BTreeMap<usize, Usage>,
    smi: BTreeMap<u32, SmiBucket>,
}

impl Clients {
    /// Who opened handle `id`.
    pub fn opener(&self, id: usize) -> Option<Opener> {
        self.openers.get(&id).copied()
    }

    /// What `uid` holds.
    pub fn user(&self, uid: u32) -> Usage {
        self.by_uid.get(&uid).copied().unwrap_or_default()
    }

    /// What process `pid` holds.
    pub fn process(&self, pid: usize) -> Usage {
        self.by_pid.get(&pid).copied().unwrap_or_default()
    }

    /// Users and processes with something open (bounded by the handles).
    pub fn tracked(&self) -> (usize, usize) {
        (self.by_uid.len(), self.by_pid.len())
    }

    /// Whether `who` may open one more handle under `config`'s bounds.
    pub fn check_handle(&self, who: Opener, config: &Config) -> Result<(), Bound> {
        if !who.is_root() && self.user(who.uid).handles >= config.handles_per_uid as usize {
            return Err(Bound::User);
        }
        if self.process(who.pid).handles >= config.handles_per_process as usize {
            return Err(Bound::Process);
        }
        Ok(())
    }

    /// Whether `who` may start one more session.
    pub fn check_session(&self, who: Opener, config: &Config) -> Result<(), Bound> {
        if !who.is_root() && self.user(who.uid).sessions >= config.sessions_per_uid as usize {
            return Err(Bound::User);
        }
        if self.process(who.pid).sessions >= config.sessions_per_process as usize {
            return Err(Bound::Process);
        }
        Ok(())
    }

    /// Records handle `id` as opened by `who`.
    pub fn opened(&mut self, id: usize, who: Opener) {
        self.openers.insert(id, who);
        self.by_uid.entry(who.uid).or_default().handles += 1;
        self.by_pid.entry(who.pid).or_default().handles += 1;
    }

    /// Forgets handle `id`; returns who had opened it.
    pub fn closed(&mut self, id: usize) -> Option<Opener> {
        let who = self.openers.remove(&id)?;
        self.adjust(who, |u| u.handles = u.handles.saturating_sub(1));
        Some(who)
    }

    /// `n` more sessions held by `who`.
    pub fn sessions_started(&mut self, who: Opener, n: usize) {
        self.adjust(who, |u| u.sessions = u.sessions.saturating_add(n));
    }

    /// `n` fewer sessions held by `who`.
    pub fn sessions_ended(&mut self, who: Opener, n: usize) {
        self.adjust(who, |u| u.sessions = u.sessions.saturating_sub(n));
    }

    fn adjust(&mut self, who: Opener, f: impl Fn(&mut Usage)) {
        let user = self.by_uid.entry(who.uid).or_default();
        f(user);
        if user.is_empty() {
            self.by_uid.remove(&who.uid);
        }
        let process = self.by_pid.entry(who.pid).or_default();
        f(process);
        if process.is_empty() {
            self.by_pid.remove(&who.pid);
        }
    }

    /// Takes one SMI-raising operation from `who`'s budget of `rate` per
    /// second at `now_ms`; root is never limited. `EAGAIN` when the budget is
    /// spent (try again later).
    pub fn take_smi(&mut self, who: Opener, rate: u32, now_ms: u64) -> Result<()> {
        if who.is_root() {
            return Ok(());
        }
        let full = u64::from(rate).saturating_mul(1000);
        let bucket = self.smi.entry(who.uid).or_insert(SmiBucket {
            milli: full,
            at_ms: now_ms,
        });
        // `rate` per 1000 ms is `rate` thousandths per ms.
        let elapsed = now_ms.saturating_sub(bucket.at_ms);
        bucket.milli = bucket
            .milli
            .saturating_add(elapsed.saturating_mul(u64::from(rate)))
            .min(full);
        bucket.at_ms = now_ms.max(bucket.at_ms);
        if bucket.milli < 1000 {
            return Err(Error::new(EAGAIN));
        }
        bucket.milli -= 1000;
        Ok(())
    }

    /// Drops the buckets that have refilled completely by `now_ms`: a new
    /// bucket starts full, so forgetting them grants nobody extra budget, and
    /// only users that raised an SMI within the last second keep one.
    pub fn forget_full_buckets(&mut self, rate: u32, now_ms: u64) {
        let full = u64::from(rate).saturating_mul(1000);
        self.smi.retain(|_, b| {
            let elapsed = now_ms.saturating_sub(b.at_ms);
            b.milli
                .saturating_add(elapsed.saturating_mul(u64::from(rate)))
                < full
        });
    }

    /// Users with an SMI bucket.
    pub fn smi_buckets(&self) -> usize {
        self.smi.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(uid: u32, pid: usize) -> Opener {
        Opener { uid, pid }
    }

    #[test]
    fn smi_budget_refills_with_the_clock() {
        let mut c = Clients::default();
        let u = user(1000, 7);
        for _ in 0..3 {
            assert_eq!(c.take_smi(u, 3, 0), Ok(()));
        }
        assert_eq!(c.take_smi(u, 3, 0), Err(Error::new(EAGAIN)));
        assert_eq!(c.take_smi(u, 3, 333), Err(Error::new(EAGAIN)), "0.999 SMI");
        assert_eq!(
            c.take_smi(u, 3, 334),
            Ok(()),
            "one third of a second: one SMI"
        );
        for _ in 0..100 {
            assert_eq!(c.take_smi(user(0, 1), 3, 334), Ok(()), "root unlimited");
        }
    }

    #[test]
    fn books_balance() {
        let mut c = Clients::default();
        let cfg = Config {
            handles_per_uid: 2,
            handles_per_process: 2,
            ..Config::default()
        };
        c.opened(1, user(5, 10));
        c.opened(2, user(5, 11));
        assert_eq!(c.check_handle(user(5, 12), &cfg), Err(Bound::User));
        assert_eq!(c.check_handle(user(0, 10), &cfg), Ok(()), "root, other pid");
        c.opened(3, user(0, 10));
        assert_eq!(c.check_handle(user(0, 10), &cfg), Err(Bound::Process));
        c.sessions_started(user(5, 10), 1);
        assert_eq!(
            c.user(5),
            Usage {
                handles: 2,
                sessions: 1
            }
        );
        c.sessions_ended(user(5, 10), 1);
        for id in 1..=3 {
            assert!(c.closed(id).is_some());
        }
        assert_eq!(c.tracked(), (0, 0));
    }
}
