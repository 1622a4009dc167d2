//! `mildev_device_info`: one device as clients see it (40 bytes).

use syscall::error::{EINVAL, Error, Result};

use super::le;

/// A device's state on the wire (`u32`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceState {
    /// Not known yet (being brought up).
    #[default]
    Unknown = 0,
    /// Present but not brought up, or taken down.
    Offline = 1,
    /// Brought up and answering.
    Safe = 2,
    /// A quarantined token: never written, reads refused.
    Quarantined = 3,
    /// Failed to answer, or locked out after a fault.
    Error = 4,
    /// The platform is above its thermal limit: reads are refused (`EBUSY`).
    ThermalLimit = 5,
}

impl DeviceState {
    /// Decodes a wire value; unknown values are `EINVAL`.
    pub fn from_raw(raw: u32) -> Result<DeviceState> {
        Ok(match raw {
            0 => DeviceState::Unknown,
            1 => DeviceState::Offline,
            2 => DeviceState::Safe,
            3 => DeviceState::Quarantined,
            4 => DeviceState::Error,
            5 => DeviceState::ThermalLimit,
            _ => return Err(Error::new(EINVAL)),
        })
    }

    /// The MILDEV name, as shown in text files.
    pub const fn name(self) -> &'static str {
        match self {
            DeviceState::Unknown => "UNKNOWN",
            DeviceState::Offline => "OFFLINE",
            DeviceState::Safe => "SAFE",
            DeviceState::Quarantined => "QUARANTINED",
            DeviceState::Error => "ERROR",
            DeviceState::ThermalLimit => "THERMAL_LIMIT",
        }
    }
}

/// What a client may do with a device (`u32`).
#[repr(u32)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DeviceAccess {
    /// No access (quarantined devices).
    #[default]
    None = 0,
    /// Readable.
    Read = 1,
    /// Reserved by the MILDEV ABI; never produced by dsmild.
    Reserved = 2,
}

impl DeviceAccess {
    /// Decodes a wire value; unknown values are `EINVAL`.
    pub fn from_raw(raw: u32) -> Result<DeviceAccess> {
        Ok(match raw {
            0 => DeviceAccess::None,
            1 => DeviceAccess::Read,
            2 => DeviceAccess::Reserved,
            _ => return Err(Error::new(EINVAL)),
        })
    }
}

/// `mildev_device_info`: 40 bytes, natural C alignment, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `device_id` (the token) | u16 (+2 pad) |
/// | 4 | `state` | u32 [`DeviceState`] |
/// | 8 | `access` | u32 [`DeviceAccess`] |
/// | 12 | `is_quarantined` | u8 (0/1, +3 pad) |
/// | 16 | `last_response` | u32 (+4 pad) |
/// | 24 | `timestamp` (ms) | u64 |
/// | 32 | `thermal_celsius` | i32 (+4 tail pad) |
///
/// Padding is written as zero and ignored when decoding. The table is the wire
/// layout (the C struct's on x86_64); the Rust struct is never sent as memory, so
/// its own layout — a u64 is 4-aligned on i586 — does not matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceInfo {
    /// The device's token (`0x8000..=0x806B`).
    pub device_id: u16,
    /// Live state, or `Quarantined` for quarantined tokens.
    pub state: DeviceState,
    /// `Read` for every device except quarantined ones (`None`).
    pub access: DeviceAccess,
    /// Whether the token is quarantined.
    pub is_quarantined: bool,
    /// The last value the firmware returned for this token (0 if never read).
    pub last_response: u32,
    /// When `last_response` was taken, in milliseconds of the daemon's
    /// monotonic clock (0 if never).
    pub timestamp: u64,
    /// Platform temperature when the record was produced, °C.
    pub thermal_celsius: i32,
}

impl DeviceInfo {
    /// Encoded size in bytes.
    pub const SIZE: usize = 40;

    const DEVICE_ID: usize = 0;
    const STATE: usize = 4;
    const ACCESS: usize = 8;
    const IS_QUARANTINED: usize = 12;
    const LAST_RESPONSE: usize = 16;
    const TIMESTAMP: usize = 24;
    const THERMAL: usize = 32;

    /// Writes the 40-byte record into the front of `out` (`EINVAL` if shorter)
    /// and returns the number of bytes written.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        out[..Self::SIZE].fill(0);
        le::put(out, Self::DEVICE_ID, &self.device_id.to_le_bytes());
        le::put(out, Self::STATE, &(self.state as u32).to_le_bytes());
        le::put(out, Self::ACCESS, &(self.access as u32).to_le_bytes());
        le::put(out, Self::IS_QUARANTINED, &[u8::from(self.is_quarantined)]);
        le::put(out, Self::LAST_RESPONSE, &self.last_response.to_le_bytes());
        le::put(out, Self::TIMESTAMP, &self.timestamp.to_le_bytes());
        le::put(out, Self::THERMAL, &self.thermal_celsius.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Decodes exactly 40 bytes; unknown state/access values or a
    /// quarantine byte other than 0/1 are `EINVAL`.
    pub fn decode(bytes: &[u8]) -> Result<DeviceInfo> {
        le::exact(bytes, Self::SIZE)?;
        Ok(DeviceInfo {
            device_id: le::u16_at(bytes, Self::DEVICE_ID)?,
            state: DeviceState::from_raw(le::u32_at(bytes, Self::STATE)?)?,
            access: DeviceAccess::from_raw(le::u32_at(bytes, Self::ACCESS)?)?,
            is_quarantined: le::bool_at(bytes, Self::IS_QUARANTINED)?,
            last_response: le::u32_at(bytes, Self::LAST_RESPONSE)?,
            timestamp: le::u64_at(bytes, Self::TIMESTAMP)?,
            thermal_celsius: le::i32_at(bytes, Self::THERMAL)?,
        })
    }
}

// The documented offsets: in order, no field overlapping the next, all inside SIZE.
const _: () = assert!(DeviceInfo::DEVICE_ID + 2 <= DeviceInfo::STATE);
const _: () = assert!(DeviceInfo::STATE + 4 <= DeviceInfo::ACCESS);
const _: () = assert!(DeviceInfo::ACCESS + 4 <= DeviceInfo::IS_QUARANTINED);
const _: () = assert!(DeviceInfo::IS_QUARANTINED < DeviceInfo::LAST_RESPONSE);
const _: () = assert!(DeviceInfo::LAST_RESPONSE + 4 <= DeviceInfo::TIMESTAMP);
const _: () = assert!(DeviceInfo::TIMESTAMP + 8 <= DeviceInfo::THERMAL);
const _: () = assert!(DeviceInfo::THERMAL + 4 <= DeviceInfo::SIZE);
const _: () = assert!(DeviceInfo::SIZE == 40);

/// Encodes a device list (the `SCAN_DEVICES` response): the records back to
/// back, 40 bytes each, in the given (ascending token) order. `EINVAL` if
/// `out` cannot hold them all; returns the bytes written.
pub fn encode_device_list(devices: &[DeviceInfo], out: &mut [u8]) -> Result<usize> {
    let total = devices
        .len()
        .checked_mul(DeviceInfo::SIZE)
        .ok_or(Error::new(EINVAL))?;
    le::room(out, total)?;
    for (device, slot) in devices.iter().zip(out.chunks_exact_mut(DeviceInfo::SIZE)) {
        device.encode(slot)?;
    }
    Ok(total)
}

/// Decodes a device list; a length that is not a multiple of 40 is `EINVAL`.
pub fn decode_device_list(bytes: &[u8]) -> Result<Vec<DeviceInfo>> {
    if !bytes.len().is_multiple_of(DeviceInfo::SIZE) {
        return Err(Error::new(EINVAL));
    }
    bytes
        .chunks_exact(DeviceInfo::SIZE)
        .map(DeviceInfo::decode)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DeviceInfo {
        DeviceInfo {
            device_id: 0x8029,
            state: DeviceState::Quarantined,
            access: DeviceAccess::None,
            is_quarantined: true,
            last_response: 0xA1B2_C3D4,
            timestamp: 0x0102_0304_0506_0708,
            thermal_celsius: -5,
        }
    }

    #[test]
    fn byte_layout_matches_mildev() {
        let mut out = [0xEEu8; 40];
        assert_eq!(sample().encode(&mut out), Ok(40));
        let mut expected = [0u8; 40];
        expected[0..2].copy_from_slice(&[0x29, 0x80]);
        expected[4..8].copy_from_slice(&[3, 0, 0, 0]);
        expected[8..12].copy_from_slice(&[0, 0, 0, 0]);
        expected[12] = 1;
        expected[16..20].copy_from_slice(&[0xD4, 0xC3, 0xB2, 0xA1]);
        expected[24..32].copy_from_slice(&[8, 7, 6, 5, 4, 3, 2, 1]);
        expected[32..36].copy_from_slice(&(-5i32).to_le_bytes());
        assert_eq!(out, expected);
    }

    #[test]
    fn round_trip_and_exact_length() {
        let mut out = [0u8; 40];
        sample().encode(&mut out).unwrap();
        assert_eq!(DeviceInfo::decode(&out), Ok(sample()));
        assert_eq!(DeviceInfo::decode(&out[..39]), Err(Error::new(EINVAL)));
        let mut long = [0u8; 41];
        long[..40].copy_from_slice(&out);
        assert_eq!(DeviceInfo::decode(&long), Err(Error::new(EINVAL)));
        assert_eq!(sample().encode(&mut [0u8; 39]), Err(Error::new(EINVAL)));
    }

    #[test]
    fn invalid_enum_values_rejected() {
        let mut out = [0u8; 40];
        sample().encode(&mut out).unwrap();
        let mut bad_state = out;
        bad_state[4] = 6;
        assert_eq!(DeviceInfo::decode(&bad_state), Err(Error::new(EINVAL)));
        let mut bad_access = out;
        bad_access[8] = 3;
        assert_eq!(DeviceInfo::decode(&bad_access), Err(Error::new(EINVAL)));
        let mut bad_bool = out;
        bad_bool[12] = 2;
        assert_eq!(DeviceInfo::decode(&bad_bool), Err(Error::new(EINVAL)));
    }

    #[test]
    fn device_list() {
        let list = vec![sample(), DeviceInfo::default(), sample()];
        let mut out = vec![0u8; 120];
        assert_eq!(encode_device_list(&list, &mut out), Ok(120));
        assert_eq!(decode_device_list(&out), Ok(list.clone()));
        assert_eq!(
            encode_device_list(&list, &mut out[..119]),
            Err(Error::new(EINVAL))
        );
        assert_eq!(decode_device_list(&out[..80]).map(|l| l.len()), Ok(2));
        assert_eq!(decode_device_list(&out[..81]), Err(Error::new(EINVAL)));
    }
}
