//! How `dsmilctl` shows each answer: a readable table, or JSON.

use std::fmt::Write;

use super::json::{self, to_line};
use crate::wire::{
    DeviceAccess, DeviceInfo, EventKind, EventRecord, SystemStatus, ThermalReply, VersionInfo,
};

/// The name of an access value.
pub fn access_name(access: DeviceAccess) -> &'static str {
    match access {
        DeviceAccess::None => "NONE",
        DeviceAccess::Read => "READ",
        DeviceAccess::Reserved => "RESERVED",
    }
}

/// The scan as a table, one device per line, then a summary line.
pub fn scan_table(devices: &[DeviceInfo]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<8} {:<13} {:<6} {:<11} {:<13} {:>12} {:>6}",
        "TOKEN", "STATE", "ACCESS", "QUARANTINED", "LAST_RESPONSE", "TIMESTAMP_MS", "TEMP_C"
    );
    for d in devices {
        let _ = writeln!(
            s,
            "{:<8} {:<13} {:<6} {:<11} {:<13} {:>12} {:>6}",
            format!("{:#06x}", d.device_id),
            d.state.name(),
            access_name(d.access),
            if d.is_quarantined { "yes" } else { "-" },
            format!("{:#010x}", d.last_response),
            d.timestamp,
            d.thermal_celsius
        );
    }
    let quarantined: Vec<String> = devices
        .iter()
        .filter(|d| d.is_quarantined)
        .map(|d| format!("{:#06x}", d.device_id))
        .collect();
    let _ = writeln!(
        s,
        "{} devices, {} quarantined ({})",
        devices.len(),
        quarantined.len(),
        quarantined.join(" ")
    );
    s
}

/// One device as a JSON object.
pub fn device_json(d: &DeviceInfo) -> String {
    to_line(&json::Device::from(d))
}

/// The scan as JSON: `{"count", "quarantined", "devices": [...]}`.
pub fn scan_json(devices: &[DeviceInfo]) -> String {
    to_line(&json::Scan::new(devices))
}

/// Status and thermal replies as `key: value` lines.
pub fn status_table(st: &SystemStatus, th: &ThermalReply) -> String {
    let mut s = String::new();
    let rows: [(&str, String); 9] = [
        ("driver_bound", st.kernel_module_loaded.to_string()),
        ("thermal_safe", st.thermal_safe.to_string()),
        ("temperature_celsius", st.current_temp_celsius.to_string()),
        ("thermal_limit_celsius", th.limit_celsius.to_string()),
        ("thermal_resume_celsius", th.resume_celsius.to_string()),
        ("throttled", th.throttled.to_string()),
        ("safe_devices", st.safe_device_count.to_string()),
        ("quarantined_devices", st.quarantined_count.to_string()),
        ("last_scan_ms", st.last_scan_timestamp.to_string()),
    ];
    for (k, v) in rows {
        let _ = writeln!(s, "{k:<24}{v}");
    }
    s
}

/// Status and thermal replies as one JSON object.
pub fn status_json(st: &SystemStatus, th: &ThermalReply) -> String {
    to_line(&json::Status::new(st, th))
}

/// The version reply as `key: value` lines.
pub fn version_table(v: &VersionInfo) -> String {
    format!(
        "protocol     {}.{}.{}\ndevices      {}\nquarantined  {}\ntokens       {:#06x}-{:#06x}\nchunk_size   {}\n",
        v.major(),
        v.minor(),
        v.patch(),
        v.device_count,
        v.quarantined_count,
        v.first_token,
        v.last_token,
        v.chunk_size
    )
}

/// The version reply as JSON.
pub fn version_json(v: &VersionInfo) -> String {
    to_line(&json::Version::from(v))
}

/// `key: value` text (the scheme's text files) as a JSON object of strings;
/// lines without `": "` are kept under `"lines"`.
pub fn key_values_json(text: &str) -> String {
    to_line(&json::KeyValues::new(text))
}

/// Device data as a hex dump: offset, 16 bytes, ASCII.
pub fn hex_dump(data: &[u8]) -> String {
    let mut s = String::new();
    for (i, line) in data.chunks(16).enumerate() {
        let _ = write!(s, "{:08x}  ", i * 16);
        for j in 0..16 {
            match line.get(j) {
                Some(b) => {
                    let _ = write!(s, "{b:02x} ");
                }
                None => s.push_str("   "),
            }
        }
        s.push(' ');
        s.extend(line.iter().map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                b as char
            } else {
                '.'
            }
        }));
        s.push('\n');
    }
    s
}

/// Bytes as lowercase hex.
pub fn hex(data: &[u8]) -> String {
    data.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What an event's two arguments mean, by kind.
fn event_args(r: &EventRecord) -> String {
    let (a, b) = (r.arg0, r.arg1);
    match r.kind {
        EventKind::StateChange => format!("state {a} -> {b}"),
        EventKind::ThermalExceeded => format!("{a} °C > limit {b} °C"),
        EventKind::ThermalRecovered => format!("{a} °C <= resume {b} °C"),
        EventKind::RefusedAccess => {
            format!("errno {a} ({}) to uid {b}", super::super::errno_name(a))
        }
    }
}

/// One event as a readable line.
pub fn event_line(r: &EventRecord) -> String {
    let mut s = format!(
        "#{:<6} {:>10} ms  {:<17}",
        r.sequence,
        r.timestamp_ms,
        r.kind.name()
    );
    if r.token != 0 {
        let _ = write!(s, " {:#06x}", r.token);
    }
    let _ = write!(s, "  {}", event_args(r));
    if r.lost != 0 {
        let _ = write!(s, "  ({} lost before this one)", r.lost);
    }
    s
}

/// One event as a JSON object.
pub fn event_json(r: &EventRecord) -> String {
    to_line(&json::Event::from(r))
}
