//! `dsmilctl --json`: each answer as a `serde` view serialized by `serde_json`,
//! one compact object per line, fields in the order the views declare them.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::render::access_name;
use crate::wire::{DeviceInfo, EventRecord, SystemStatus, ThermalReply, Token, VersionInfo};

/// `value` as one line of JSON. A view holds only strings, numbers and booleans,
/// so serializing cannot fail; if it ever did, the error is the output rather
/// than a panic.
pub fn to_line<T: Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| format!("{{\"error\":{:?}}}", e.to_string()))
}

/// One device.
#[derive(Serialize)]
pub struct Device {
    token: String,
    state: &'static str,
    access: &'static str,
    quarantined: bool,
    last_response: u32,
    timestamp_ms: u64,
    thermal_celsius: i32,
}

impl From<&DeviceInfo> for Device {
    fn from(d: &DeviceInfo) -> Self {
        Device {
            token: format!("{:#06x}", d.device_id),
            state: d.state.name(),
            access: access_name(d.access),
            quarantined: d.is_quarantined,
            last_response: d.last_response,
            timestamp_ms: d.timestamp,
            thermal_celsius: d.thermal_celsius,
        }
    }
}

/// A scan: counts and every device.
#[derive(Serialize)]
pub struct Scan {
    count: usize,
    quarantined: usize,
    devices: Vec<Device>,
}

impl Scan {
    /// The view of `devices`.
    pub fn new(devices: &[DeviceInfo]) -> Scan {
        Scan {
            count: devices.len(),
            quarantined: devices.iter().filter(|d| d.is_quarantined).count(),
            devices: devices.iter().map(Device::from).collect(),
        }
    }
}

/// `GET_STATUS` and `GET_THERMAL` together.
#[derive(Serialize)]
pub struct Status {
    driver_bound: bool,
    thermal_safe: bool,
    temperature_celsius: i32,
    thermal_limit_celsius: i32,
    thermal_resume_celsius: i32,
    throttled: bool,
    safe_devices: u32,
    quarantined_devices: u32,
    last_scan_ms: u64,
}

impl Status {
    /// The view of both replies.
    pub fn new(st: &SystemStatus, th: &ThermalReply) -> Status {
        Status {
            driver_bound: st.kernel_module_loaded,
            thermal_safe: st.thermal_safe,
            temperature_celsius: st.current_temp_celsius,
            thermal_limit_celsius: th.limit_celsius,
            thermal_resume_celsius: th.resume_celsius,
            throttled: th.throttled,
            safe_devices: st.safe_device_count,
            quarantined_devices: st.quarantined_count,
            last_scan_ms: st.last_scan_timestamp,
        }
    }
}

/// `GET_VERSION`.
#[derive(Serialize)]
pub struct Version {
    protocol: String,
    devices: u16,
    quarantined: u16,
    first_token: String,
    last_token: String,
    chunk_size: u16,
}

impl From<&VersionInfo> for Version {
    fn from(v: &VersionInfo) -> Self {
        Version {
            protocol: format!("{}.{}.{}", v.major(), v.minor(), v.patch()),
            devices: v.device_count,
            quarantined: v.quarantined_count,
            first_token: format!("{:#06x}", v.first_token),
            last_token: format!("{:#06x}", v.last_token),
            chunk_size: v.chunk_size,
        }
    }
}

/// One event record.
#[derive(Serialize)]
pub struct Event {
    sequence: u64,
    timestamp_ms: u64,
    kind: &'static str,
    token: String,
    arg0: i32,
    arg1: i32,
    lost: u32,
}

impl From<&EventRecord> for Event {
    fn from(r: &EventRecord) -> Self {
        Event {
            sequence: r.sequence,
            timestamp_ms: r.timestamp_ms,
            kind: r.kind.name(),
            token: format!("{:#06x}", r.token),
            arg0: r.arg0,
            arg1: r.arg1,
            lost: r.lost,
        }
    }
}

/// A device's data.
#[derive(Serialize)]
pub struct DeviceData {
    token: String,
    length: usize,
    data_hex: String,
}

impl DeviceData {
    /// The view of `token`'s `data`.
    pub fn new(token: Token, data: &[u8]) -> DeviceData {
        DeviceData {
            token: token.to_string(),
            length: data.len(),
            data_hex: super::render::hex(data),
        }
    }
}

/// The answer to `set`.
#[derive(Serialize)]
pub struct Set {
    token: String,
    value: u32,
    ok: bool,
}

impl Set {
    /// `token` was set to `value`.
    pub fn new(token: Token, value: u32) -> Set {
        Set {
            token: token.to_string(),
            value,
            ok: true,
        }
    }
}

/// A text file's `key: value` lines as an object of strings, in file order;
/// lines without a key are kept under `"lines"`.
pub struct KeyValues<'a> {
    pairs: Vec<(&'a str, &'a str)>,
    other: Vec<&'a str>,
}

impl<'a> KeyValues<'a> {
    /// The view of `text`.
    pub fn new(text: &'a str) -> KeyValues<'a> {
        let mut pairs = Vec::new();
        let mut other = Vec::new();
        for line in text.lines() {
            match line.split_once(':') {
                Some((k, v)) if !k.trim().is_empty() => pairs.push((k.trim(), v.trim())),
                _ if line.trim().is_empty() => {}
                _ => other.push(line),
            }
        }
        KeyValues { pairs, other }
    }
}

impl Serialize for KeyValues<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let extra = usize::from(!self.other.is_empty());
        let mut map = serializer.serialize_map(Some(self.pairs.len() + extra))?;
        for (k, v) in &self.pairs {
            map.serialize_entry(k, v)?;
        }
        if !self.other.is_empty() {
            map.serialize_entry("lines", &self.other)?;
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_by_serde_json() {
        let kv = KeyValues::new("a: x\"y\\z\u{1}\nno key here\n\nb: °C\n");
        assert_eq!(
            to_line(&kv),
            r#"{"a":"x\"y\\z\u0001","b":"°C","lines":["no key here"]}"#
        );
        assert_eq!(to_line(&KeyValues::new("")), "{}");
    }
}
