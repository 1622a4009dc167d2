//! `config/<name>`: the tunables, as text in and out, validated.

use syscall::error::{EINVAL, Error, Result};

use crate::config::Config;
use crate::device::{MAX_THERMAL_LIMIT_CELSIUS, MIN_THERMAL_LIMIT_CELSIUS};

/// Most sessions the limit can be raised to (bounded memory: a read session
/// pins at most 64 KiB).
pub const MAX_SESSION_LIMIT: u32 = 4096;
/// Most handles a per-client bound can be raised to (the global bound).
pub const MAX_HANDLES_PER_CLIENT: u32 = super::MAX_HANDLES as u32;
/// Most SMI-raising operations per second a user can be granted.
pub const MAX_SMI_PER_SECOND: u32 = 10_000;
/// Longest idle timeout, seconds.
pub const MAX_IDLE_TIMEOUT_SECS: u32 = 3600;
/// Shortest housekeeping interval, ms (a faster timer only burns CPU).
pub const MIN_HOUSEKEEPING_MS: u32 = 10;
/// Longest housekeeping interval, ms.
pub const MAX_HOUSEKEEPING_MS: u32 = 60_000;

/// One tunable.
///
/// | name | unit | range |
/// |---|---|---|
/// | `session_limit` | sessions over all clients | 1–4096 |
/// | `session_idle_timeout` | seconds | 1–3600 |
/// | `thermal_limit` | °C | 0–125 |
/// | `housekeeping_interval` | milliseconds | 10–60000 |
/// | `handles_per_uid` | handles of one non-root user | 1–65536 |
/// | `handles_per_process` | handles of one process | 1–65536 |
/// | `sessions_per_uid` | sessions of one non-root user | 1–4096 |
/// | `sessions_per_process` | sessions of one process | 1–4096 |
/// | `smi_per_second` | SMI-raising operations of one non-root user per second | 1–10000 |
///
/// A read gives the value and a newline; a write (root only) takes a decimal
/// number, surrounding whitespace allowed. Anything else, or out of range, is
/// `EINVAL` and changes nothing.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub enum Tunable {
    /// Most concurrent sessions (`EMFILE` past it).
    SessionLimit,
    /// Idle seconds before housekeeping expires a session.
    SessionIdleTimeout,
    /// Device reads are `EBUSY` above this, °C.
    ThermalLimit,
    /// Milliseconds between housekeeping passes.
    HousekeepingInterval,
    /// Handles of one non-root user (`EMFILE` past it).
    HandlesPerUid,
    /// Handles of one process (`EMFILE` past it).
    HandlesPerProcess,
    /// Sessions of one non-root user (`EMFILE` past it).
    SessionsPerUid,
    /// Sessions of one process (`EMFILE` past it).
    SessionsPerProcess,
    /// SMI-raising operations per second of one non-root user (`EAGAIN`).
    SmiPerSecond,
}

impl Tunable {
    /// Every tunable, in listing order.
    pub const ALL: [Tunable; 9] = [
        Tunable::SessionLimit,
        Tunable::SessionIdleTimeout,
        Tunable::ThermalLimit,
        Tunable::HousekeepingInterval,
        Tunable::HandlesPerUid,
        Tunable::HandlesPerProcess,
        Tunable::SessionsPerUid,
        Tunable::SessionsPerProcess,
        Tunable::SmiPerSecond,
    ];

    /// Its file name.
    pub const fn name(self) -> &'static str {
        match self {
            Tunable::SessionLimit => "session_limit",
            Tunable::SessionIdleTimeout => "session_idle_timeout",
            Tunable::ThermalLimit => "thermal_limit",
            Tunable::HousekeepingInterval => "housekeeping_interval",
            Tunable::HandlesPerUid => "handles_per_uid",
            Tunable::HandlesPerProcess => "handles_per_process",
            Tunable::SessionsPerUid => "sessions_per_uid",
            Tunable::SessionsPerProcess => "sessions_per_process",
            Tunable::SmiPerSecond => "smi_per_second",
        }
    }

    /// By file name.
    pub fn parse(name: &str) -> Option<Tunable> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// The inclusive range of accepted values.
    pub const fn range(self) -> (i64, i64) {
        match self {
            Tunable::SessionLimit => (1, MAX_SESSION_LIMIT as i64),
            Tunable::SessionIdleTimeout => (1, MAX_IDLE_TIMEOUT_SECS as i64),
            Tunable::ThermalLimit => (
                MIN_THERMAL_LIMIT_CELSIUS as i64,
                MAX_THERMAL_LIMIT_CELSIUS as i64,
            ),
            Tunable::HousekeepingInterval => {
                (MIN_HOUSEKEEPING_MS as i64, MAX_HOUSEKEEPING_MS as i64)
            }
            Tunable::HandlesPerUid | Tunable::HandlesPerProcess => {
                (1, MAX_HANDLES_PER_CLIENT as i64)
            }
            Tunable::SessionsPerUid | Tunable::SessionsPerProcess => (1, MAX_SESSION_LIMIT as i64),
            Tunable::SmiPerSecond => (1, MAX_SMI_PER_SECOND as i64),
        }
    }

    /// The current value in `config`.
    pub fn get(self, config: &Config) -> i64 {
        match self {
            Tunable::SessionLimit => i64::from(config.session_limit),
            Tunable::SessionIdleTimeout => i64::from(config.session_idle_timeout_secs),
            Tunable::ThermalLimit => i64::from(config.thermal_limit_celsius),
            Tunable::HousekeepingInterval => i64::from(config.housekeeping_interval_ms),
            Tunable::HandlesPerUid => i64::from(config.handles_per_uid),
            Tunable::HandlesPerProcess => i64::from(config.handles_per_process),
            Tunable::SessionsPerUid => i64::from(config.sessions_per_uid),
            Tunable::SessionsPerProcess => i64::from(config.sessions_per_process),
            Tunable::SmiPerSecond => i64::from(config.smi_per_second),
        }
    }

    /// The file's text.
    pub fn render(self, config: &Config) -> String {
        format!("{}\n", self.get(config))
    }

    /// Parses written text into a value in range, else `EINVAL`.
    pub fn parse_value(self, text: &[u8]) -> Result<i64> {
        let text = std::str::from_utf8(text).map_err(|_| Error::new(EINVAL))?;
        let text = text.trim();
        if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return Err(Error::new(EINVAL));
        }
        let value: i64 = text.parse().map_err(|_| Error::new(EINVAL))?;
        let (lo, hi) = self.range();
        if (lo..=hi).contains(&value) {
            Ok(value)
        } else {
            Err(Error::new(EINVAL))
        }
    }

    /// Stores an already validated value into `config`.
    pub fn set(self, config: &mut Config, value: i64) -> Result<()> {
        let bad = |_| Error::new(EINVAL);
        match self {
            Tunable::SessionLimit => config.session_limit = u32::try_from(value).map_err(bad)?,
            Tunable::SessionIdleTimeout => {
                config.session_idle_timeout_secs = u32::try_from(value).map_err(bad)?
            }
            Tunable::ThermalLimit => {
                config.thermal_limit_celsius = i32::try_from(value).map_err(bad)?
            }
            Tunable::HousekeepingInterval => {
                config.housekeeping_interval_ms = u32::try_from(value).map_err(bad)?
            }
            Tunable::HandlesPerUid => config.handles_per_uid = u32::try_from(value).map_err(bad)?,
            Tunable::HandlesPerProcess => {
                config.handles_per_process = u32::try_from(value).map_err(bad)?
            }
            Tunable::SessionsPerUid => {
                config.sessions_per_uid = u32::try_from(value).map_err(bad)?
            }
            Tunable::SessionsPerProcess => {
                config.sessions_per_process = u32::try_from(value).map_err(bad)?
            }
            Tunable::SmiPerSecond => config.smi_per_second = u32::try_from(value).map_err(bad)?,
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_validated() {
        let t = Tunable::SessionLimit;
        assert_eq!(t.parse_value(b"12\n"), Ok(12));
        assert_eq!(t.parse_value(b"  4096 "), Ok(4096));
        for bad in [
            &b"0"[..],
            b"4097",
            b"",
            b"\n",
            b"12x",
            b"+3",
            b"0x10",
            b"\xff",
            b"99999999999999999999",
        ] {
            assert_eq!(t.parse_value(bad), Err(Error::new(EINVAL)), "{bad:?}");
        }
        assert_eq!(
            Tunable::ThermalLimit.parse_value(b"-1"),
            Err(Error::new(EINVAL))
        );
        assert_eq!(Tunable::ThermalLimit.parse_value(b"0"), Ok(0));
        assert_eq!(
            Tunable::HousekeepingInterval.parse_value(b"9"),
            Err(Error::new(EINVAL))
        );
        let mut c = Config::default();
        Tunable::SessionIdleTimeout.set(&mut c, 5).unwrap();
        assert_eq!(c.session_idle_timeout_secs, 5);
        assert_eq!(Tunable::SessionIdleTimeout.render(&c), "5\n");
    }
}
