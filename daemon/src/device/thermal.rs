//! The thermal guard: refuses device reads while the platform is too hot.

use syscall::error::{EBUSY, EINVAL, Error, Result};

use crate::wire::ThermalReply;

/// Default limit, °C: reads are refused above it.
pub const DEFAULT_THERMAL_LIMIT_CELSIUS: i32 = 85;
/// Default hysteresis, °C: refused reads resume at `limit − hysteresis`.
pub const DEFAULT_THERMAL_HYSTERESIS_CELSIUS: i32 = 5;
/// Lowest accepted limit, °C.
pub const MIN_THERMAL_LIMIT_CELSIUS: i32 = 0;
/// Highest accepted limit, °C (beyond silicon junction limits).
pub const MAX_THERMAL_LIMIT_CELSIUS: i32 = 125;
/// Largest accepted hysteresis, °C.
pub const MAX_THERMAL_HYSTERESIS_CELSIUS: i32 = 30;

/// A crossing of the thermal limit, reported once per crossing (for the
/// `events` file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThermalCrossing {
    /// The temperature rose above the limit: reads are now `EBUSY`.
    Exceeded {
        /// Temperature that crossed, °C.
        celsius: i32,
        /// The limit, °C.
        limit: i32,
    },
    /// The temperature fell to the resume point: reads are allowed again.
    Recovered {
        /// Temperature that crossed, °C.
        celsius: i32,
        /// The resume point (`limit − hysteresis`), °C.
        resume: i32,
    },
}

/// Tracks the platform temperature against a limit with hysteresis.
///
/// Reads are refused (`EBUSY`) once the temperature is strictly above the
/// limit, and stay refused until it has cooled to `limit − hysteresis` or
/// below. Without the gap a sensor hovering at the limit would flip every
/// reading between refused and allowed, and clients would see `EBUSY`
/// flapping; with it, one excursion gives one refusal period. A hysteresis
/// of 0 makes recovery happen as soon as the temperature is back at the
/// limit.
///
/// Without a reading (no sensor found at start, or the last read failed) the
/// guard is *unavailable*: it reports no temperature rather than a guess, a
/// refusal in force stays in force, and otherwise reads are allowed or refused
/// as [`set_reads_without_sensor`](Self::set_reads_without_sensor) says
/// (allowed by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ThermalGuard {
    limit: i32,
    hysteresis: i32,
    current: i32,
    throttled: bool,
    available: bool,
    reads_without_sensor: bool,
}

impl Default for ThermalGuard {
    fn default() -> ThermalGuard {
        ThermalGuard {
            limit: DEFAULT_THERMAL_LIMIT_CELSIUS,
            hysteresis: DEFAULT_THERMAL_HYSTERESIS_CELSIUS,
            current: 0,
            throttled: false,
            available: false,
            reads_without_sensor: true,
        }
    }
}

impl ThermalGuard {
    /// A guard with `limit` (0–125 °C) and `hysteresis` (0–30 °C); out of
    /// range is `EINVAL`. Starts cool (0 °C) until the first reading.
    pub fn new(limit: i32, hysteresis: i32) -> Result<ThermalGuard> {
        Self::check_limit(limit)?;
        if !(0..=MAX_THERMAL_HYSTERESIS_CELSIUS).contains(&hysteresis) {
            return Err(Error::new(EINVAL));
        }
        Ok(ThermalGuard {
            limit,
            hysteresis,
            current: 0,
            throttled: false,
            available: false,
            reads_without_sensor: true,
        })
    }

    fn check_limit(limit: i32) -> Result<()> {
        if (MIN_THERMAL_LIMIT_CELSIUS..=MAX_THERMAL_LIMIT_CELSIUS).contains(&limit) {
            Ok(())
        } else {
            Err(Error::new(EINVAL))
        }
    }

    /// Records a sensor reading; returns the crossing it caused, if any.
    pub fn update(&mut self, celsius: i32) -> Option<ThermalCrossing> {
        self.current = celsius;
        self.available = true;
        self.reevaluate()
    }

    /// There is no reading now (no sensor, or its read failed).
    pub fn mark_unavailable(&mut self) {
        self.available = false;
    }

    /// Whether the last sensor read gave a temperature.
    pub const fn is_available(&self) -> bool {
        self.available
    }

    /// Whether device reads are allowed while no temperature is available.
    pub fn set_reads_without_sensor(&mut self, allowed: bool) {
        self.reads_without_sensor = allowed;
    }

    /// See [`set_reads_without_sensor`](Self::set_reads_without_sensor).
    pub const fn reads_without_sensor(&self) -> bool {
        self.reads_without_sensor
    }

    /// The last reading, `None` while unavailable.
    pub const fn reading(&self) -> Option<i32> {
        if self.available {
            Some(self.current)
        } else {
            None
        }
    }

    /// Changes the limit (0–125 °C, else `EINVAL`) and re-judges the current
    /// temperature against it; returns the crossing that caused, if any.
    pub fn set_limit(&mut self, limit: i32) -> Result<Option<ThermalCrossing>> {
        Self::check_limit(limit)?;
        self.limit = limit;
        Ok(self.reevaluate())
    }

    fn reevaluate(&mut self) -> Option<ThermalCrossing> {
        if !self.available {
            return None;
        }
        if !self.throttled && self.current > self.limit {
            self.throttled = true;
            Some(ThermalCrossing::Exceeded {
                celsius: self.current,
                limit: self.limit,
            })
        } else if self.throttled && self.current <= self.resume_celsius() {
            self.throttled = false;
            Some(ThermalCrossing::Recovered {
                celsius: self.current,
                resume: self.resume_celsius(),
            })
        } else {
            None
        }
    }

    /// `Ok` when device reads are allowed, `EBUSY` while throttled (or while no
    /// temperature is available and reads without one are refused).
    pub fn check(&self) -> Result<()> {
        if self.throttled || (!self.available && !self.reads_without_sensor()) {
            Err(Error::new(EBUSY))
        } else {
            Ok(())
        }
    }

    /// Whether reads are currently refused.
    pub const fn is_throttled(&self) -> bool {
        self.throttled
    }
    /// The last reading, °C (meaningful only while [`is_available`](Self::is_available)).
    pub const fn current_celsius(&self) -> i32 {
        self.current
    }
    /// The limit, °C.
    pub const fn limit_celsius(&self) -> i32 {
        self.limit
    }
    /// The hysteresis, °C.
    pub const fn hysteresis_celsius(&self) -> i32 {
        self.hysteresis
    }
    /// Where refused reads resume: `limit − hysteresis`, °C.
    pub const fn resume_celsius(&self) -> i32 {
        self.limit - self.hysteresis
    }

    /// The `GET_THERMAL` reply.
    pub const fn reply(&self) -> ThermalReply {
        ThermalReply {
            current_celsius: self.current,
            limit_celsius: self.limit,
            resume_celsius: self.resume_celsius(),
            throttled: self.throttled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_above_limit_and_recovery_with_hysteresis() {
        let mut guard = ThermalGuard::new(85, 5).unwrap();
        assert_eq!(guard.update(85), None);
        assert_eq!(guard.check(), Ok(()), "at the limit is still allowed");
        assert_eq!(
            guard.update(86),
            Some(ThermalCrossing::Exceeded {
                celsius: 86,
                limit: 85
            })
        );
        assert_eq!(guard.check(), Err(Error::new(EBUSY)));
        assert_eq!(guard.update(90), None, "one event per crossing");
        // Back under the limit but not yet at the resume point: still busy.
        assert_eq!(guard.update(84), None);
        assert_eq!(guard.check(), Err(Error::new(EBUSY)));
        assert_eq!(
            guard.update(80),
            Some(ThermalCrossing::Recovered {
                celsius: 80,
                resume: 80
            })
        );
        assert_eq!(guard.check(), Ok(()));
        assert!(!guard.reply().throttled);
    }

    #[test]
    fn zero_hysteresis_recovers_at_limit() {
        let mut guard = ThermalGuard::new(70, 0).unwrap();
        guard.update(71);
        assert!(guard.is_throttled());
        assert!(matches!(
            guard.update(70),
            Some(ThermalCrossing::Recovered { .. })
        ));
        assert_eq!(guard.check(), Ok(()));
    }

    #[test]
    fn lowering_the_limit_rejudges() {
        let mut guard = ThermalGuard::new(85, 5).unwrap();
        guard.update(60);
        assert_eq!(
            guard.set_limit(50),
            Ok(Some(ThermalCrossing::Exceeded {
                celsius: 60,
                limit: 50
            }))
        );
        assert_eq!(guard.check(), Err(Error::new(EBUSY)));
        assert!(matches!(
            guard.set_limit(90),
            Ok(Some(ThermalCrossing::Recovered { .. }))
        ));
        assert_eq!(guard.check(), Ok(()));
        let reply = guard.reply();
        assert_eq!((reply.limit_celsius, reply.resume_celsius), (90, 85));
    }

    #[test]
    fn without_a_reading_nothing_is_made_up() {
        let mut guard = ThermalGuard::new(85, 5).unwrap();
        assert_eq!(guard.reading(), None, "no reading before the first");
        assert_eq!(
            guard.check(),
            Ok(()),
            "reads allowed without a sensor by default"
        );
        guard.set_reads_without_sensor(false);
        assert_eq!(guard.check(), Err(Error::new(EBUSY)));
        assert_eq!(guard.set_limit(10), Ok(None), "nothing to judge");
        guard.set_limit(85).unwrap();
        guard.update(90);
        assert_eq!(guard.reading(), Some(90));
        // The sensor fails while hot: the refusal stays until a reading clears it.
        guard.set_reads_without_sensor(true);
        guard.mark_unavailable();
        assert_eq!(guard.reading(), None);
        assert_eq!(guard.check(), Err(Error::new(EBUSY)));
        assert!(matches!(
            guard.update(70),
            Some(ThermalCrossing::Recovered { .. })
        ));
        assert_eq!(guard.check(), Ok(()));
    }

    #[test]
    fn invalid_configuration_rejected() {
        assert_eq!(ThermalGuard::new(126, 5), Err(Error::new(EINVAL)));
        assert_eq!(ThermalGuard::new(-1, 5), Err(Error::new(EINVAL)));
        assert_eq!(ThermalGuard::new(85, -1), Err(Error::new(EINVAL)));
        assert_eq!(ThermalGuard::new(85, 31), Err(Error::new(EINVAL)));
        let mut guard = ThermalGuard::default();
        assert_eq!(guard.set_limit(200), Err(Error::new(EINVAL)));
        assert_eq!(guard.limit_celsius(), DEFAULT_THERMAL_LIMIT_CELSIUS);
    }
}
