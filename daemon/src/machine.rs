//! The DSMIL machine as the scheme sees it: the device table and its policy on
//! one side, the hardware (firmware token path, register blocks, thermal sensor)
//! on the other. Every access goes through here, so the policy (quarantine first,
//! then thermal, then device state) is applied before anything reaches firmware,
//! and every firmware failure drives the device state machine.

use std::time::Duration;

use syscall::error::{EINVAL, Error, Result};

use crate::device::{BringUp, DEFAULT_THERMAL_HYSTERESIS_CELSIUS, DeviceTable, ThermalCrossing};
use crate::device::{
    LifecycleState, MAX_THERMAL_LIMIT_CELSIUS, MIN_THERMAL_LIMIT_CELSIUS, ThermalGuard,
};
use crate::hardware::Hardware;
use crate::platform::{DEVICE_BLOCK_LEN, SmiError};
use crate::wire::{DeviceInfo, EventKind, Token};

/// Something the `events` file should report (the scheme stamps and queues it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Notice {
    /// What happened.
    pub kind: EventKind,
    /// The device (0 if none).
    pub token: u16,
    /// First argument (see [`EventKind`]).
    pub arg0: i32,
    /// Second argument (see [`EventKind`]).
    pub arg1: i32,
}

/// Firmware outcomes since start, for `stats` and `health`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmiTotals {
    /// Token operations sent to firmware.
    pub operations: u64,
    /// Of those, failed (any error).
    pub failures: u64,
    /// Of the failures, hung or over budget (`ETIMEDOUT`).
    pub timeouts: u64,
    /// Requests refused before firmware (quarantine).
    pub refused: u64,
}

/// `health`: a score out of 100 from four measurable parts.
///
/// ```text
/// score = 50·R + 20·S + 20·T + 10·H   (rounded)
/// R = operational devices / non-quarantined devices (103)
/// S = 1 − failed / total firmware operations          (1 with none yet)
/// T = clamp((limit − temperature) / 20 °C, 0, 1)      (0 while throttled)
/// H = 1 − min(hung or over-budget SMIs, 10) / 10
/// ```
///
/// 90 and above is `ok`, 50 and above `degraded`, below that `failing`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Health {
    /// The score, 0–100.
    pub score: u32,
    /// Devices Ready or Active.
    pub operational: usize,
    /// Devices that can be operational (all but the quarantined ones).
    pub eligible: usize,
    /// Firmware totals.
    pub smi: SmiTotals,
    /// Temperature, °C; `None` when no sensor reading is available.
    pub temperature: Option<i32>,
    /// Thermal limit, °C.
    pub limit: i32,
    /// Reads refused for heat.
    pub throttled: bool,
}

/// Thermal margin (°C) that counts as full marks in [`Health`].
pub const HEALTH_THERMAL_MARGIN: i32 = 20;
/// Hung SMIs at which the hang part of [`Health`] is zero.
pub const HEALTH_HANG_CAP: u64 = 10;

impl Health {
    /// `ok`, `degraded` or `failing`.
    pub fn grade(&self) -> &'static str {
        match self.score {
            90.. => "ok",
            50..=89 => "degraded",
            _ => "failing",
        }
    }

    fn compute(
        operational: usize,
        eligible: usize,
        smi: SmiTotals,
        temperature: Option<i32>,
        limit: i32,
        throttled: bool,
    ) -> Health {
        let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 1.0 };
        let r = ratio(operational as f64, eligible as f64);
        let s = 1.0 - ratio(smi.failures as f64, smi.operations as f64).min(1.0);
        let s = if smi.operations == 0 { 1.0 } else { s };
        // No reading earns no thermal marks: the margin is unknown.
        let t = match (throttled, temperature) {
            (false, Some(temperature)) => {
                (f64::from(limit - temperature) / f64::from(HEALTH_THERMAL_MARGIN)).clamp(0.0, 1.0)
            }
            _ => 0.0,
        };
        let h = 1.0 - smi.timeouts.min(HEALTH_HANG_CAP) as f64 / HEALTH_HANG_CAP as f64;
        let score = (50.0 * r + 20.0 * s + 20.0 * t + 10.0 * h).round() as u32;
        Health {
            score: score.min(100),
            operational,
            eligible,
            smi,
            temperature,
            limit,
            throttled,
        }
    }
}

/// The table, the hardware, and what happened since the scheme last asked.
pub struct Machine {
    hardware: Hardware,
    table: DeviceTable,
    smi: SmiTotals,
    notices: Vec<Notice>,
    sensor_errors: u64,
}

/// Most notices held between two drains (bounded memory; the scheme drains
/// after every request, so this is only reached by a runaway bring-up).
const MAX_NOTICES: usize = 1024;

impl Machine {
    /// The machine over `hardware`, reads refused above `thermal_limit` °C
    /// (clamped to 0–125). Devices start offline; call
    /// [`bring_up`](Self::bring_up).
    pub fn new(hardware: Hardware, thermal_limit: i32) -> Machine {
        let limit = thermal_limit.clamp(MIN_THERMAL_LIMIT_CELSIUS, MAX_THERMAL_LIMIT_CELSIUS);
        let guard =
            ThermalGuard::new(limit, DEFAULT_THERMAL_HYSTERESIS_CELSIUS).unwrap_or_default();
        let mut machine = Machine {
            hardware,
            table: DeviceTable::new(guard),
            smi: SmiTotals::default(),
            notices: Vec::new(),
            sensor_errors: 0,
        };
        machine.refresh_thermal();
        machine
    }

    /// Time on the scheme's clock.
    pub fn now(&self) -> Duration {
        self.hardware.clock.now()
    }

    /// Milliseconds on the scheme's clock (timestamps).
    pub fn now_ms(&self) -> u64 {
        u64::try_from(self.now().as_millis()).unwrap_or(u64::MAX)
    }

    /// The device table.
    pub fn table(&self) -> &DeviceTable {
        &self.table
    }

    /// The MMIO window, if one is configured.
    pub fn mmio(&mut self) -> Option<&mut (dyn crate::platform::MmioAccess + Send + 'static)> {
        self.hardware.mmio.as_deref_mut()
    }

    /// Whether a firmware path exists.
    pub fn has_firmware(&self) -> bool {
        self.hardware.firmware.is_some()
    }

    /// Firmware totals.
    pub fn smi_totals(&self) -> SmiTotals {
        self.smi
    }

    /// Sensor reads that failed.
    pub fn sensor_errors(&self) -> u64 {
        self.sensor_errors
    }

    /// Notices since the last call.
    pub fn take_notices(&mut self) -> Vec<Notice> {
        std::mem::take(&mut self.notices)
    }

    /// Whether notices are waiting.
    pub fn has_notices(&self) -> bool {
        !self.notices.is_empty()
    }

    fn notice(&mut self, kind: EventKind, token: u16, arg0: i32, arg1: i32) {
        if self.notices.len() < MAX_NOTICES {
            self.notices.push(Notice {
                kind,
                token,
                arg0,
                arg1,
            });
        }
    }

    fn crossing(&mut self, crossing: Option<ThermalCrossing>) {
        match crossing {
            Some(ThermalCrossing::Exceeded { celsius, limit }) => {
                self.notice(EventKind::ThermalExceeded, 0, celsius, limit);
            }
            Some(ThermalCrossing::Recovered { celsius, resume }) => {
                self.notice(EventKind::ThermalRecovered, 0, celsius, resume);
            }
            None => {}
        }
    }

    /// Reads the sensor into the guard. Without a sensor, or when the read
    /// fails, the guard has no temperature (never the stale or a made-up one).
    pub fn refresh_thermal(&mut self) {
        let reading = self.hardware.thermal.as_mut().map(|s| s.read_celsius());
        match reading {
            Some(Ok(celsius)) => {
                let crossing = self.table.thermal_mut().update(celsius);
                self.crossing(crossing);
            }
            Some(Err(_)) => {
                self.sensor_errors += 1;
                self.table.thermal_mut().mark_unavailable();
            }
            None => self.table.thermal_mut().mark_unavailable(),
        }
    }

    /// Whether device reads are allowed while no temperature is available.
    pub fn set_reads_without_sensor(&mut self, allowed: bool) {
        self.table.thermal_mut().set_reads_without_sensor(allowed);
    }

    /// Changes the thermal limit (0–125 °C, else `EINVAL`).
    pub fn set_thermal_limit(&mut self, limit: i32) -> Result<()> {
        let crossing = self.table.thermal_mut().set_limit(limit)?;
        self.crossing(crossing);
        Ok(())
    }

    /// Brings every offline or failed device up through firmware, group by
    /// group (a probe is an SMI read of the token). Without firmware nothing
    /// happens. Every state change becomes a notice.
    pub fn bring_up(&mut self) -> BringUp {
        let Some(firmware) = self.hardware.firmware.as_mut() else {
            return BringUp::default();
        };
        let before: Vec<LifecycleState> = Token::all().map(|t| self.table.state(t)).collect();
        let now_ms = u64::try_from(self.hardware.clock.now().as_millis()).unwrap_or(u64::MAX);
        let smi = &mut self.smi;
        let report = self.table.bring_up(now_ms, |token| {
            let outcome = firmware.read_token(token);
            count(smi, &outcome);
            outcome.map_err(Error::from)
        });
        for (token, from) in Token::all().zip(before) {
            let to = self.table.state(token);
            if to != from {
                self.notice(
                    EventKind::StateChange,
                    token.raw(),
                    from.number(),
                    to.number(),
                );
            }
        }
        report
    }

    /// Records a refusal for the `events` file.
    pub fn refused(&mut self, token: Option<Token>, errno: i32, uid: u32) {
        self.notice(
            EventKind::RefusedAccess,
            token.map_or(0, Token::raw),
            errno,
            i32::try_from(uid).unwrap_or(i32::MAX),
        );
    }

    /// The policy for a read of `token` (quarantine `EACCES`, thermal `EBUSY`,
    /// state); a quarantine refusal is reported as an event.
    pub fn check_read(&mut self, token: Token, uid: u32) -> Result<()> {
        let verdict = self.table.check_read(token);
        if token.is_quarantined() {
            self.smi.refused += 1;
            self.refused(Some(token), syscall::error::EACCES, uid);
        }
        verdict
    }

    fn firmware_failed(&mut self, token: Token, error: SmiError) -> Error {
        if error.reached_firmware()
            && let Some(change) = self.table.record_failure(token)
        {
            self.notice(
                EventKind::StateChange,
                token.raw(),
                change.from.number(),
                change.to.number(),
            );
        }
        Error::from(error)
    }

    /// Captures `token`'s data for a read session, after the read policy:
    ///
    /// | offset | bytes | what |
    /// |---|---|---|
    /// | 0 | 4 | the token value, u32 LE (an SMI read) |
    /// | 4 | 40 | the device's [`DeviceInfo`] record |
    /// | 44 | 700 | the device's register block, when the memory window exists |
    ///
    /// A firmware failure marks the device `Error` (reads then `EIO` until
    /// housekeeping brings it back) and returns the failure's errno
    /// (`ETIMEDOUT` for a hung SMI).
    pub fn capture(&mut self, token: Token, uid: u32) -> Result<Vec<u8>> {
        self.refresh_thermal();
        self.check_read(token, uid)?;
        let value = self.read_token(token)?;
        let now_ms = self.now_ms();
        self.table.record_response(token, value, now_ms);
        let mut data = Vec::with_capacity(4 + DeviceInfo::SIZE + DEVICE_BLOCK_LEN);
        data.extend_from_slice(&value.to_le_bytes());
        let mut record = [0u8; DeviceInfo::SIZE];
        self.table.info(token).encode(&mut record)?;
        data.extend_from_slice(&record);
        if let Some(memory) = self.hardware.device_memory.as_mut() {
            let mut block = [0u8; DEVICE_BLOCK_LEN];
            memory.read_block(token, &mut block)?;
            data.extend_from_slice(&block);
        }
        Ok(data)
    }

    fn read_token(&mut self, token: Token) -> Result<u32> {
        let firmware = self
            .hardware
            .firmware
            .as_mut()
            .ok_or(Error::new(syscall::error::ENODEV))?;
        let outcome = firmware.read_token(token);
        count(&mut self.smi, &outcome);
        outcome.map_err(|e| self.firmware_failed(token, e))
    }

    /// Sets `token` to `value` through firmware, after the write policy
    /// (quarantine `EACCES` first — nothing reaches firmware — then thermal,
    /// then state).
    pub fn write_token(&mut self, token: Token, value: u32, uid: u32) -> Result<()> {
        self.refresh_thermal();
        let verdict = self.table.check_write(token);
        if token.is_quarantined() {
            self.smi.refused += 1;
            self.refused(Some(token), syscall::error::EACCES, uid);
        }
        verdict?;
        let firmware = self
            .hardware
            .firmware
            .as_mut()
            .ok_or(Error::new(syscall::error::ENODEV))?;
        let outcome = firmware.write_token(token, value);
        count(&mut self.smi, &outcome);
        match outcome {
            Ok(()) => {
                let now_ms = self.now_ms();
                self.table.record_response(token, value, now_ms);
                Ok(())
            }
            Err(e) => Err(self.firmware_failed(token, e)),
        }
    }

    /// The health score and its parts.
    pub fn health(&self) -> Health {
        let eligible = Token::all().filter(|t| !t.is_quarantined()).count();
        let operational = Token::all()
            .filter(|t| !t.is_quarantined() && self.table.state(*t).is_operational())
            .count();
        let guard = self.table.thermal();
        Health::compute(
            operational,
            eligible,
            self.smi,
            guard.reading(),
            guard.limit_celsius(),
            guard.is_throttled(),
        )
    }

    /// Validates a raw token from a request (`EINVAL` out of range).
    pub fn token(raw: u32) -> Result<Token> {
        Token::from_u32(raw).map_err(|_| Error::new(EINVAL))
    }
}

fn count<T>(smi: &mut SmiTotals, outcome: &core::result::Result<T, SmiError>) {
    match outcome {
        Ok(_) => smi.operations += 1,
        Err(SmiError::Quarantined) => smi.refused += 1,
        // Stopped before any SMI: not a firmware operation.
        Err(e) if !e.reached_firmware() => {}
        Err(e) => {
            smi.operations += 1;
            smi.failures += 1;
            if e.errno() == syscall::error::ETIMEDOUT {
                smi.timeouts += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_formula_parts() {
        let perfect = Health::compute(103, 103, SmiTotals::default(), Some(45), 85, false);
        assert_eq!(perfect.score, 100);
        assert_eq!(perfect.grade(), "ok");
        // Half the devices, no thermal margin, half the SMIs failed, 10 hangs.
        let smi = SmiTotals {
            operations: 20,
            failures: 10,
            timeouts: 10,
            refused: 0,
        };
        let bad = Health::compute(50, 100, smi, Some(85), 85, false);
        assert_eq!(bad.score, 25 + 10);
        assert_eq!(bad.grade(), "failing");
        let hot = Health::compute(103, 103, SmiTotals::default(), Some(90), 85, true);
        assert_eq!(hot.score, 80);
        assert_eq!(hot.grade(), "degraded");
        let blind = Health::compute(103, 103, SmiTotals::default(), None, 85, false);
        assert_eq!(blind.score, 80, "no reading, no thermal marks");
    }
}
