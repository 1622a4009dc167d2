//! The human-readable files: `key: value` lines (or a table for `devices`),
//! rendered at each read, as procfs files are: a handle holds only its position,
//! so an open file costs the same whatever its size. A read from offset 0 starts
//! a fresh look (and re-reads the thermal sensor for the files that show it); a
//! reader that wants one consistent copy reads with a buffer as large as the file
//! (`devices`, the largest, is about 10 KB).

use std::fmt::Write;

use crate::device::{DeviceTable, ThermalGuard};
use crate::machine::{HEALTH_HANG_CAP, HEALTH_THERMAL_MARGIN, Health};
use crate::wire::{DEVICE_COUNT, QUARANTINED_TOKENS, Token, VersionInfo};

/// What the status file reports.
pub struct StatusView {
    /// Current temperature (°C); `None` without a sensor reading.
    pub temperature: Option<i32>,
    /// The configured limit (°C).
    pub thermal_limit: i32,
    /// Reads refused for heat.
    pub throttled: bool,
    /// Open handles of all clients.
    pub open_handles: usize,
    /// Live sessions of all clients.
    pub sessions: usize,
    /// The session limit.
    pub session_limit: u32,
    /// Devices Ready or Active.
    pub operational: usize,
    /// Whether a firmware path exists.
    pub firmware: bool,
    /// The health score.
    pub health: u32,
}

/// `version`.
pub fn version() -> String {
    let v = VersionInfo::default();
    let mut s = String::new();
    let _ = writeln!(s, "version: {}.{}.{}", v.major(), v.minor(), v.patch());
    let _ = writeln!(s, "version_code: {:#08x}", v.version_code);
    let _ = writeln!(s, "daemon: dsmild {}", env!("CARGO_PKG_VERSION"));
    let _ = writeln!(s, "devices: {}", v.device_count);
    let _ = writeln!(s, "tokens: {:#06x}-{:#06x}", v.first_token, v.last_token);
    let _ = writeln!(s, "quarantined: {}", v.quarantined_count);
    let _ = writeln!(s, "chunk_size: {}", v.chunk_size);
    s
}

/// `status`.
pub fn status(view: &StatusView) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "state: running");
    let _ = writeln!(
        s,
        "firmware: {}",
        if view.firmware { "smi" } else { "none" }
    );
    match view.temperature {
        Some(t) => {
            let _ = writeln!(s, "temperature_celsius: {t}");
            let _ = writeln!(s, "thermal_safe: {}", !view.throttled);
        }
        None => {
            let _ = writeln!(s, "temperature_celsius: unavailable");
            let _ = writeln!(s, "thermal_safe: unavailable");
        }
    }
    let _ = writeln!(s, "thermal_limit_celsius: {}", view.thermal_limit);
    let _ = writeln!(s, "devices: {DEVICE_COUNT}");
    let _ = writeln!(s, "devices_operational: {}", view.operational);
    let _ = writeln!(s, "quarantined_devices: {}", QUARANTINED_TOKENS.len());
    let _ = writeln!(s, "open_handles: {}", view.open_handles);
    let _ = writeln!(s, "sessions: {}", view.sessions);
    let _ = writeln!(s, "session_limit: {}", view.session_limit);
    let _ = writeln!(s, "health: {}", view.health);
    s
}

/// `thermal`.
pub fn thermal(guard: &ThermalGuard) -> String {
    let mut s = String::new();
    match guard.reading() {
        Some(t) => {
            let _ = writeln!(s, "temperature_celsius: {t}");
        }
        None => {
            let _ = writeln!(s, "temperature_celsius: unavailable");
            let allowed = if guard.reads_without_sensor() {
                "allowed"
            } else {
                "refused"
            };
            let _ = writeln!(s, "reads_without_sensor: {allowed}");
        }
    }
    let _ = writeln!(s, "limit_celsius: {}", guard.limit_celsius());
    let _ = writeln!(s, "resume_celsius: {}", guard.resume_celsius());
    let _ = writeln!(s, "hysteresis_celsius: {}", guard.hysteresis_celsius());
    let _ = writeln!(s, "throttled: {}", guard.is_throttled());
    s
}

/// `health`: the score, its grade, the formula and each measured part.
pub fn health(h: &Health) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "health: {}", h.score);
    let _ = writeln!(s, "grade: {}", h.grade());
    let _ = writeln!(
        s,
        "formula: 50*devices + 20*smi_success + 20*thermal_margin + 10*hang_free"
    );
    let _ = writeln!(s, "devices_operational: {}/{}", h.operational, h.eligible);
    let _ = writeln!(
        s,
        "smi_operations: {} failed: {} timed_out: {}",
        h.smi.operations, h.smi.failures, h.smi.timeouts
    );
    match h.temperature {
        Some(t) => {
            let _ = writeln!(
                s,
                "thermal: {t} of limit {} (full marks at {} below, 0 while throttled: {})",
                h.limit, HEALTH_THERMAL_MARGIN, h.throttled
            );
        }
        None => {
            let _ = writeln!(s, "thermal: unavailable (no sensor reading: 0 marks)");
        }
    }
    let _ = writeln!(
        s,
        "hang_free: 1 - min(timed_out, {HEALTH_HANG_CAP})/{HEALTH_HANG_CAP}"
    );
    s
}

/// `devices`: one line per device, ascending token order.
pub fn devices(table: &DeviceTable) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "token   group state         lifecycle     access quarantined last_response timestamp_ms"
    );
    for token in Token::all() {
        let info = table.info(token);
        let _ = writeln!(
            s,
            "{token}  {:>5} {:<13} {:<13} {:<6} {:<11} {:#010x}    {}",
            token.group(),
            info.state.name(),
            table.state(token).name(),
            if info.is_quarantined { "none" } else { "read" },
            if info.is_quarantined {
                "QUARANTINED"
            } else {
                "no"
            },
            { info.last_response },
            { info.timestamp },
        );
    }
    s
}
