//! Sessions over all handles: the limit, ids, and housekeeping's idle expiry.

use syscall::error::{EMFILE, Error, Result};

use super::DsmilScheme;
use super::handle::Handle;
use super::oplog::Target;

impl DsmilScheme {
    /// Takes one session from the limit (`EMFILE` when it is reached) and
    /// gives it an id.
    pub(super) fn reserve_session(&mut self) -> Result<u64> {
        let limit = usize::try_from(self.config.session_limit).unwrap_or(usize::MAX);
        if self.sessions >= limit {
            self.stats.sessions_refused += 1;
            return Err(Error::new(EMFILE));
        }
        let id = self.ids.allocate()?;
        self.sessions += 1;
        self.stats.sessions_started += 1;
        Ok(id)
    }

    pub(super) fn release_sessions(&mut self, n: usize, expired: bool) {
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
        for handle in self.handles.values_mut() {
            match handle {
                Handle::Control { sessions, .. } => {
                    let before = sessions.len();
                    sessions.retain(|_, s| !stale(s.last_used_ms));
                    expired += before - sessions.len();
                }
                Handle::Scan {
                    session,
                    last_used_ms,
                } if session.is_some() && stale(*last_used_ms) => {
                    *session = None;
                    expired += 1;
                }
                Handle::Device {
                    session,
                    last_used_ms,
                    ..
                } if session.is_some() && stale(*last_used_ms) => {
                    *session = None;
                    expired += 1;
                }
                _ => {}
            }
        }
        self.release_sessions(expired, true);
        if expired > 0 {
            self.log.record(now, 0, "expire", Target::None, Ok(expired));
        }
        self.machine.bring_up();
        self.flush_notices();
        expired
    }
}
