//! Sessions over all handles: the limit, ids, and housekeeping's idle expiry.

use syscall::error::{EMFILE, Error, Result};

use super::DsmilScheme;
use super::clients::Opener;
use super::handle::Handle;
use super::oplog::Target;

impl DsmilScheme {
    /// Takes one session for `who` from the global limit and from its user's
    /// and process's bounds (`EMFILE` when any is reached) and gives it an id.
    pub(super) fn reserve_session(&mut self, who: Opener) -> Result<u64> {
        let limit = usize::try_from(self.config.session_limit).unwrap_or(usize::MAX);
        if self.sessions >= limit {
            self.stats.sessions_refused += 1;
            return Err(Error::new(EMFILE));
        }
        if let Err(bound) = self.clients.check_session(who, &self.config) {
            self.stats.sessions_refused += 1;
            self.stats.client_bound(bound);
            return Err(Error::new(EMFILE));
        }
        let id = self.ids.allocate()?;
        self.sessions += 1;
        self.clients.sessions_started(who, 1);
        self.stats.sessions_started += 1;
        Ok(id)
    }

    /// Gives `n` sessions of `who` back.
    pub(super) fn release_sessions(&mut self, who: Opener, n: usize, expired: bool) {
        self.clients.sessions_ended(who, n);
        self.sessions = self.sessions.saturating_sub(n);
        if expired {
            self.stats.sessions_expired += n as u64;
        } else {
            self.stats.sessions_completed += n as u64;
        }
    }

    /// One housekeeping pass (the daemon runs it every
    /// `housekeeping_interval` ms from a `time` scheme deadline): re-reads the
    /// sensor, expires sessions idle for `session_idle_timeout` seconds or
    /// more, and brings failed devices back up. Returns the sessions expired.
    pub fn housekeeping(&mut self) -> usize {
        self.stats.housekeeping += 1;
        self.machine.refresh_thermal();
        let now = self.now_ms();
        let timeout = u64::from(self.config.session_idle_timeout_secs).saturating_mul(1000);
        let stale = |last: u64| now.saturating_sub(last) >= timeout;
        let mut expired = 0;
        let mut by_owner: Vec<(usize, usize)> = Vec::new();
        for (id, handle) in self.handles.iter_mut() {
            let n = match handle {
                Handle::Control { sessions, .. } => {
                    let before = sessions.len();
                    sessions.retain(|_, s| !stale(s.last_used_ms));
                    before - sessions.len()
                }
                Handle::Scan {
                    session,
                    last_used_ms,
                } if session.is_some() && stale(*last_used_ms) => {
                    *session = None;
                    1
                }
                Handle::Device {
                    session,
                    last_used_ms,
                    ..
                } if session.is_some() && stale(*last_used_ms) => {
                    *session = None;
                    1
                }
                _ => 0,
            };
            if n > 0 {
                by_owner.push((*id, n));
                expired += n;
            }
        }
        for (id, n) in by_owner {
            let who = self.opener_of(id);
            self.release_sessions(who, n, true);
        }
        self.clients
            .forget_full_buckets(self.config.smi_per_second, now);
        if expired > 0 {
            self.log.record(now, 0, "expire", Target::None, Ok(expired));
        }
        self.machine.bring_up();
        self.flush_notices();
        expired
    }
}
