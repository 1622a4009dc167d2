//! Fixed-size control replies: version, system status, thermal, and the
//! session start/complete acknowledgements.

use core::mem::{offset_of, size_of};

use syscall::error::Result;

use super::le;
use super::read_chunk::READ_CHUNK_DATA;
use super::scan_chunk::CHUNK_SIZE;
use super::token::{DEVICE_COUNT, FIRST_TOKEN, LAST_TOKEN, QUARANTINED_TOKENS};

/// `MILDEV_VERSION_CODE`: 1.0.0 as `major << 16 | minor << 8 | patch`.
pub const MILDEV_VERSION_CODE: u32 = 0x01_00_00;

/// The `GET_VERSION` reply: 16 bytes, natural alignment, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `version_code` ([`MILDEV_VERSION_CODE`]) | u32 |
/// | 4 | `device_count` (108) | u16 |
/// | 6 | `quarantined_count` (5) | u16 |
/// | 8 | `first_token` (0x8000) | u16 |
/// | 10 | `last_token` (0x806B) | u16 |
/// | 12 | `chunk_size` (256) | u16 |
/// | 14 | `read_chunk_data` (224) | u16 |
///
/// Besides the version it carries the geometry a client needs to size its
/// buffers, so clients do not hard-code it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// Protocol version, `major << 16 | minor << 8 | patch`.
    pub version_code: u32,
    /// Devices in the table.
    pub device_count: u16,
    /// Quarantined devices.
    pub quarantined_count: u16,
    /// First token.
    pub first_token: u16,
    /// Last token.
    pub last_token: u16,
    /// Size of every scan and read chunk.
    pub chunk_size: u16,
    /// Data bytes per read chunk.
    pub read_chunk_data: u16,
}

impl Default for VersionInfo {
    /// This daemon's version and geometry.
    fn default() -> VersionInfo {
        VersionInfo {
            version_code: MILDEV_VERSION_CODE,
            device_count: DEVICE_COUNT as u16,
            quarantined_count: QUARANTINED_TOKENS.len() as u16,
            first_token: FIRST_TOKEN,
            last_token: LAST_TOKEN,
            chunk_size: CHUNK_SIZE as u16,
            read_chunk_data: READ_CHUNK_DATA as u16,
        }
    }
}

impl VersionInfo {
    /// Encoded size in bytes.
    pub const SIZE: usize = 16;

    /// Major version (bits 23:16).
    pub const fn major(&self) -> u8 {
        (self.version_code >> 16) as u8
    }
    /// Minor version (bits 15:8).
    pub const fn minor(&self) -> u8 {
        (self.version_code >> 8) as u8
    }
    /// Patch level (bits 7:0).
    pub const fn patch(&self) -> u8 {
        self.version_code as u8
    }

    /// Writes the 16 bytes into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &self.version_code.to_le_bytes());
        le::put(out, 4, &self.device_count.to_le_bytes());
        le::put(out, 6, &self.quarantined_count.to_le_bytes());
        le::put(out, 8, &self.first_token.to_le_bytes());
        le::put(out, 10, &self.last_token.to_le_bytes());
        le::put(out, 12, &self.chunk_size.to_le_bytes());
        le::put(out, 14, &self.read_chunk_data.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Decodes exactly 16 bytes.
    pub fn decode(bytes: &[u8]) -> Result<VersionInfo> {
        le::exact(bytes, Self::SIZE)?;
        Ok(VersionInfo {
            version_code: le::u32_at(bytes, 0)?,
            device_count: le::u16_at(bytes, 4)?,
            quarantined_count: le::u16_at(bytes, 6)?,
            first_token: le::u16_at(bytes, 8)?,
            last_token: le::u16_at(bytes, 10)?,
            chunk_size: le::u16_at(bytes, 12)?,
            read_chunk_data: le::u16_at(bytes, 14)?,
        })
    }
}

const _: () = assert!(size_of::<VersionInfo>() == VersionInfo::SIZE);
const _: () = assert!(offset_of!(VersionInfo, version_code) == 0);
const _: () = assert!(offset_of!(VersionInfo, device_count) == 4);
const _: () = assert!(offset_of!(VersionInfo, quarantined_count) == 6);
const _: () = assert!(offset_of!(VersionInfo, first_token) == 8);
const _: () = assert!(offset_of!(VersionInfo, last_token) == 10);
const _: () = assert!(offset_of!(VersionInfo, chunk_size) == 12);
const _: () = assert!(offset_of!(VersionInfo, read_chunk_data) == 14);

/// `current_temp_celsius` of a [`SystemStatus`] when no sensor reading exists
/// (`i32::MIN`: no real temperature).
pub const NO_TEMPERATURE_READING: i32 = i32::MIN;

/// `mildev_system_status`, the `GET_STATUS` reply: 24 bytes, natural C
/// alignment, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `kernel_module_loaded` | u8 (0/1) |
/// | 1 | `thermal_safe` | u8 (0/1, +2 pad) |
/// | 4 | `current_temp_celsius` | i32 |
/// | 8 | `safe_device_count` | u32 |
/// | 12 | `quarantined_count` | u32 |
/// | 16 | `last_scan_timestamp` (ms) | u64 |
///
/// Without a thermal sensor reading `thermal_safe` is 0 and
/// `current_temp_celsius` is [`NO_TEMPERATURE_READING`].
///
/// Older DSMIL documents give 28 bytes; the field list above packs to 24
/// with natural alignment, and that is the size dsmild uses.
/// `kernel_module_loaded` means "the driver is bound" (always 1 when dsmild
/// answers); it keeps the MILDEV name for client compatibility.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SystemStatus {
    /// The driver is bound.
    pub kernel_module_loaded: bool,
    /// Below the thermal limit: device reads are allowed.
    pub thermal_safe: bool,
    /// Platform temperature, °C.
    pub current_temp_celsius: i32,
    /// Devices reporting `SAFE`.
    pub safe_device_count: u32,
    /// Quarantined devices.
    pub quarantined_count: u32,
    /// When the last scan session started, ms of the daemon's monotonic clock
    /// (0 if none).
    pub last_scan_timestamp: u64,
}

impl SystemStatus {
    /// Encoded size in bytes.
    pub const SIZE: usize = 24;

    /// Writes the 24 bytes into the front of `out` (padding zeroed).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(
            out,
            0,
            &[
                u8::from(self.kernel_module_loaded),
                u8::from(self.thermal_safe),
                0,
                0,
            ],
        );
        le::put(out, 4, &self.current_temp_celsius.to_le_bytes());
        le::put(out, 8, &self.safe_device_count.to_le_bytes());
        le::put(out, 12, &self.quarantined_count.to_le_bytes());
        le::put(out, 16, &self.last_scan_timestamp.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// Decodes exactly 24 bytes; flag bytes other than 0/1 are `EINVAL`.
    pub fn decode(bytes: &[u8]) -> Result<SystemStatus> {
        le::exact(bytes, Self::SIZE)?;
        Ok(SystemStatus {
            kernel_module_loaded: le::bool_at(bytes, 0)?,
            thermal_safe: le::bool_at(bytes, 1)?,
            current_temp_celsius: le::i32_at(bytes, 4)?,
            safe_device_count: le::u32_at(bytes, 8)?,
            quarantined_count: le::u32_at(bytes, 12)?,
            last_scan_timestamp: le::u64_at(bytes, 16)?,
        })
    }
}

const _: () = assert!(size_of::<SystemStatus>() == SystemStatus::SIZE);
const _: () = assert!(offset_of!(SystemStatus, kernel_module_loaded) == 0);
const _: () = assert!(offset_of!(SystemStatus, thermal_safe) == 1);
const _: () = assert!(offset_of!(SystemStatus, current_temp_celsius) == 4);
const _: () = assert!(offset_of!(SystemStatus, safe_device_count) == 8);
const _: () = assert!(offset_of!(SystemStatus, quarantined_count) == 12);
const _: () = assert!(offset_of!(SystemStatus, last_scan_timestamp) == 16);

/// The `GET_THERMAL` reply: 16 bytes, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `current_celsius` | i32 |
/// | 4 | `limit_celsius` | i32 |
/// | 8 | `resume_celsius` | i32 |
/// | 12 | `throttled` | u8 (0/1, +3 pad) |
///
/// The first four bytes are the MILDEV `GET_THERMAL` answer (°C as `i32`),
/// so a client that reads only 4 bytes gets what it always got.
/// Reads are refused while `current > limit`; once refused they resume when
/// `current ≤ resume` (`limit − hysteresis`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ThermalReply {
    /// Platform temperature, °C.
    pub current_celsius: i32,
    /// Reads are refused above this, °C.
    pub limit_celsius: i32,
    /// Refused reads resume at or below this, °C.
    pub resume_celsius: i32,
    /// Reads are currently refused (`EBUSY`).
    pub throttled: bool,
}

impl ThermalReply {
    /// Encoded size in bytes.
    pub const SIZE: usize = 16;

    /// Writes the 16 bytes into the front of `out` (padding zeroed).
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &self.current_celsius.to_le_bytes());
        le::put(out, 4, &self.limit_celsius.to_le_bytes());
        le::put(out, 8, &self.resume_celsius.to_le_bytes());
        le::put(out, 12, &[u8::from(self.throttled), 0, 0, 0]);
        Ok(Self::SIZE)
    }

    /// Decodes exactly 16 bytes; a flag other than 0/1 is `EINVAL`.
    pub fn decode(bytes: &[u8]) -> Result<ThermalReply> {
        le::exact(bytes, Self::SIZE)?;
        Ok(ThermalReply {
            current_celsius: le::i32_at(bytes, 0)?,
            limit_celsius: le::i32_at(bytes, 4)?,
            resume_celsius: le::i32_at(bytes, 8)?,
            throttled: le::bool_at(bytes, 12)?,
        })
    }
}

const _: () = assert!(size_of::<ThermalReply>() == ThermalReply::SIZE);
const _: () = assert!(offset_of!(ThermalReply, current_celsius) == 0);
const _: () = assert!(offset_of!(ThermalReply, limit_celsius) == 4);
const _: () = assert!(offset_of!(ThermalReply, resume_celsius) == 8);
const _: () = assert!(offset_of!(ThermalReply, throttled) == 12);

/// The `SCAN_START` / `READ_START` reply: 16 bytes, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `session_id` | u64 |
/// | 8 | `total_chunks` | u32 |
/// | 12 | `total_items`: devices (scan) or data bytes (read) | u32 |
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionStart {
    /// The new session; pass it back in `arg1` of the chunk/complete ops.
    pub session_id: u64,
    /// Chunks the session will deliver.
    pub total_chunks: u32,
    /// Devices in a scan, data bytes in a read.
    pub total_items: u32,
}

/// The `SCAN_COMPLETE` / `READ_COMPLETE` reply: 16 bytes, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `session_id` | u64 |
/// | 8 | `chunks_delivered`: distinct chunks handed out | u32 |
/// | 12 | `total_chunks` | u32 |
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionSummary {
    /// The session that ended.
    pub session_id: u64,
    /// Distinct chunks the client fetched.
    pub chunks_delivered: u32,
    /// Chunks the session had.
    pub total_chunks: u32,
}

// Both acknowledgements share one layout: u64 then two u32.
macro_rules! session_reply_codec {
    ($ty:ident, $a:ident, $b:ident) => {
        impl $ty {
            /// Encoded size in bytes.
            pub const SIZE: usize = 16;

            /// Writes the 16 bytes into the front of `out`.
            pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
                le::room(out, Self::SIZE)?;
                le::put(out, 0, &self.session_id.to_le_bytes());
                le::put(out, 8, &self.$a.to_le_bytes());
                le::put(out, 12, &self.$b.to_le_bytes());
                Ok(Self::SIZE)
            }

            /// Decodes exactly 16 bytes.
            pub fn decode(bytes: &[u8]) -> Result<$ty> {
                le::exact(bytes, Self::SIZE)?;
                Ok($ty {
                    session_id: le::u64_at(bytes, 0)?,
                    $a: le::u32_at(bytes, 8)?,
                    $b: le::u32_at(bytes, 12)?,
                })
            }
        }

        const _: () = assert!(size_of::<$ty>() == $ty::SIZE);
        const _: () = assert!(offset_of!($ty, session_id) == 0);
        const _: () = assert!(offset_of!($ty, $a) == 8);
        const _: () = assert!(offset_of!($ty, $b) == 12);
    };
}

session_reply_codec!(SessionStart, total_chunks, total_items);
session_reply_codec!(SessionSummary, chunks_delivered, total_chunks);

#[cfg(test)]
mod tests {
    use super::*;
    use syscall::error::{EINVAL, Error};

    #[test]
    fn version_layout() {
        let v = VersionInfo::default();
        assert_eq!((v.major(), v.minor(), v.patch()), (1, 0, 0));
        let mut out = [0xEEu8; 16];
        assert_eq!(v.encode(&mut out), Ok(16));
        assert_eq!(
            out,
            [
                0x00, 0x00, 0x01, 0x00, 108, 0, 5, 0, 0x00, 0x80, 0x6B, 0x80, 0x00, 0x01, 224, 0
            ]
        );
        assert_eq!(VersionInfo::decode(&out), Ok(v));
        assert_eq!(VersionInfo::decode(&out[..15]), Err(Error::new(EINVAL)));
    }

    #[test]
    fn status_layout() {
        let s = SystemStatus {
            kernel_module_loaded: true,
            thermal_safe: false,
            current_temp_celsius: -2,
            safe_device_count: 103,
            quarantined_count: 5,
            last_scan_timestamp: 0x0102_0304_0506_0708,
        };
        let mut out = [0xEEu8; 24];
        assert_eq!(s.encode(&mut out), Ok(24));
        assert_eq!(&out[0..4], &[1, 0, 0, 0]);
        assert_eq!(&out[4..8], &(-2i32).to_le_bytes());
        assert_eq!(&out[8..12], &103u32.to_le_bytes());
        assert_eq!(&out[12..16], &5u32.to_le_bytes());
        assert_eq!(&out[16..24], &[8, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(SystemStatus::decode(&out), Ok(s));
        let mut bad = out;
        bad[1] = 7;
        assert_eq!(SystemStatus::decode(&bad), Err(Error::new(EINVAL)));
        assert_eq!(s.encode(&mut [0u8; 23]), Err(Error::new(EINVAL)));
    }

    #[test]
    fn thermal_layout() {
        let t = ThermalReply {
            current_celsius: 91,
            limit_celsius: 85,
            resume_celsius: 80,
            throttled: true,
        };
        let mut out = [0xEEu8; 16];
        assert_eq!(t.encode(&mut out), Ok(16));
        assert_eq!(&out[0..4], &91i32.to_le_bytes());
        assert_eq!(&out[4..8], &85i32.to_le_bytes());
        assert_eq!(&out[8..12], &80i32.to_le_bytes());
        assert_eq!(&out[12..16], &[1, 0, 0, 0]);
        assert_eq!(ThermalReply::decode(&out), Ok(t));
        let mut bad = out;
        bad[12] = 2;
        assert_eq!(ThermalReply::decode(&bad), Err(Error::new(EINVAL)));
    }

    #[test]
    fn session_reply_layouts() {
        let start = SessionStart {
            session_id: 0x1122_3344_5566_7788,
            total_chunks: 22,
            total_items: 108,
        };
        let mut out = [0u8; 16];
        assert_eq!(start.encode(&mut out), Ok(16));
        assert_eq!(&out[0..8], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&out[8..12], &22u32.to_le_bytes());
        assert_eq!(&out[12..16], &108u32.to_le_bytes());
        assert_eq!(SessionStart::decode(&out), Ok(start));

        let summary = SessionSummary {
            session_id: 9,
            chunks_delivered: 21,
            total_chunks: 22,
        };
        assert_eq!(summary.encode(&mut out), Ok(16));
        assert_eq!(&out[8..12], &21u32.to_le_bytes());
        assert_eq!(&out[12..16], &22u32.to_le_bytes());
        assert_eq!(SessionSummary::decode(&out), Ok(summary));
        assert_eq!(SessionSummary::decode(&[0u8; 17]), Err(Error::new(EINVAL)));
    }
}
