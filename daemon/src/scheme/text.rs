//! The human-readable files: `key: value` lines, rendered when the file is opened so
//! a reader that reads in pieces sees one consistent snapshot.

use std::fmt::Write;

use crate::wire::{DEVICE_COUNT, QUARANTINED_TOKENS, VersionInfo};

/// What the status file reports.
pub struct StatusView {
    /// Current temperature (°C), or the sensor's errno.
    pub temperature: Result<i32, i32>,
    /// The configured limit (°C).
    pub thermal_limit: i32,
    /// Open handles of all clients.
    pub open_handles: usize,
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
    match view.temperature {
        Ok(t) => {
            let _ = writeln!(s, "temperature_celsius: {t}");
            let _ = writeln!(s, "thermal_safe: {}", t <= view.thermal_limit);
        }
        Err(errno) => {
            let _ = writeln!(s, "temperature_celsius: unavailable (errno {errno})");
            let _ = writeln!(s, "thermal_safe: false");
        }
    }
    let _ = writeln!(s, "thermal_limit_celsius: {}", view.thermal_limit);
    let _ = writeln!(s, "devices: {DEVICE_COUNT}");
    let _ = writeln!(s, "quarantined_devices: {}", QUARANTINED_TOKENS.len());
    let _ = writeln!(s, "open_handles: {}", view.open_handles);
    s
}
