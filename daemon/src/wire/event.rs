//! `events` records: one fixed-size record per read of `/scheme/dsmil/events`.

use core::mem::{offset_of, size_of};

use syscall::error::{EINVAL, Error, Result};

use super::le;

/// What happened.
///
/// | value | kind | `token` | `arg0` | `arg1` |
/// |---|---|---|---|---|
/// | 1 | `StateChange` | the device | state before | state after (life-cycle numbers below) |
/// | 2 | `ThermalExceeded` | 0 | °C | limit °C |
/// | 3 | `ThermalRecovered` | 0 | °C | resume point °C |
/// | 4 | `RefusedAccess` | the device (0 if none) | errno given | uid of the caller |
///
/// Life-cycle numbers: 0 offline, 1 initializing, 2 ready, 3 active,
/// 4 error, 5 locked.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EventKind {
    /// A device moved through its life cycle.
    StateChange = 1,
    /// The temperature rose above the limit: device reads are `EBUSY`.
    ThermalExceeded = 2,
    /// The temperature fell to the resume point: reads are allowed again.
    ThermalRecovered = 3,
    /// An access was refused (quarantine, permission).
    RefusedAccess = 4,
}

impl EventKind {
    /// Decodes a kind number; unknown is `EINVAL`.
    pub fn from_raw(raw: u32) -> Result<EventKind> {
        match raw {
            1 => Ok(EventKind::StateChange),
            2 => Ok(EventKind::ThermalExceeded),
            3 => Ok(EventKind::ThermalRecovered),
            4 => Ok(EventKind::RefusedAccess),
            _ => Err(Error::new(EINVAL)),
        }
    }

    /// Lower-case name for text output.
    pub const fn name(self) -> &'static str {
        match self {
            EventKind::StateChange => "state_change",
            EventKind::ThermalExceeded => "thermal_exceeded",
            EventKind::ThermalRecovered => "thermal_recovered",
            EventKind::RefusedAccess => "refused_access",
        }
    }
}

/// One `events` record: 40 bytes, natural alignment, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `kind` ([`EventKind`]) | u32 |
/// | 4 | `token` (0 if none) | u16 |
/// | 6 | reserved (0) | u16 |
/// | 8 | `sequence`: daemon-wide, starts at 1, never reused | u64 |
/// | 16 | `timestamp_ms` (daemon monotonic clock) | u64 |
/// | 24 | `arg0` | i32 |
/// | 28 | `arg1` | i32 |
/// | 32 | `lost`: records this reader lost to overflow just before this one | u32 |
/// | 36 | reserved (0) | u32 |
///
/// Every reader (open description of `events`) has its own bounded queue;
/// when it is full the oldest record is dropped and counted in the `lost`
/// of the next record the reader gets, so a slow reader learns it missed
/// something and a gap in `sequence` says how much.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventRecord {
    /// What happened.
    pub kind: EventKind,
    /// The device concerned (0 if none).
    pub token: u16,
    reserved0: u16,
    /// Daemon-wide sequence number.
    pub sequence: u64,
    /// When, ms of the daemon's monotonic clock.
    pub timestamp_ms: u64,
    /// First argument (see [`EventKind`]).
    pub arg0: i32,
    /// Second argument (see [`EventKind`]).
    pub arg1: i32,
    /// Records lost by this reader just before this one.
    pub lost: u32,
    reserved1: u32,
}

const _: () = assert!(size_of::<EventRecord>() == EventRecord::SIZE);
const _: () = assert!(offset_of!(EventRecord, kind) == 0);
const _: () = assert!(offset_of!(EventRecord, token) == 4);
const _: () = assert!(offset_of!(EventRecord, sequence) == 8);
const _: () = assert!(offset_of!(EventRecord, timestamp_ms) == 16);
const _: () = assert!(offset_of!(EventRecord, arg0) == 24);
const _: () = assert!(offset_of!(EventRecord, arg1) == 28);
const _: () = assert!(offset_of!(EventRecord, lost) == 32);

impl EventRecord {
    /// Encoded size in bytes.
    pub const SIZE: usize = 40;

    /// A record (`lost` 0).
    pub const fn new(
        kind: EventKind,
        token: u16,
        sequence: u64,
        timestamp_ms: u64,
        arg0: i32,
        arg1: i32,
    ) -> EventRecord {
        EventRecord {
            kind,
            token,
            reserved0: 0,
            sequence,
            timestamp_ms,
            arg0,
            arg1,
            lost: 0,
            reserved1: 0,
        }
    }

    /// Writes the 40 bytes into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &(self.kind as u32).to_le_bytes());
        le::put(out, 4, &self.token.to_le_bytes());
        le::put(out, 6, &[0, 0]);
        le::put(out, 8, &self.sequence.to_le_bytes());
        le::put(out, 16, &self.timestamp_ms.to_le_bytes());
        le::put(out, 24, &self.arg0.to_le_bytes());
        le::put(out, 28, &self.arg1.to_le_bytes());
        le::put(out, 32, &self.lost.to_le_bytes());
        le::put(out, 36, &[0, 0, 0, 0]);
        Ok(Self::SIZE)
    }

    /// Decodes exactly 40 bytes; an unknown kind is `EINVAL`.
    pub fn decode(bytes: &[u8]) -> Result<EventRecord> {
        le::exact(bytes, Self::SIZE)?;
        let mut record = EventRecord::new(
            EventKind::from_raw(le::u32_at(bytes, 0)?)?,
            le::u16_at(bytes, 4)?,
            le::u64_at(bytes, 8)?,
            le::u64_at(bytes, 16)?,
            le::i32_at(bytes, 24)?,
            le::i32_at(bytes, 28)?,
        );
        record.lost = le::u32_at(bytes, 32)?;
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_and_round_trip() {
        let mut r = EventRecord::new(EventKind::ThermalExceeded, 0, 7, 0x0102, 91, 85);
        r.lost = 3;
        let mut out = [0xEEu8; 40];
        assert_eq!(r.encode(&mut out), Ok(40));
        assert_eq!(&out[0..4], &[2, 0, 0, 0]);
        assert_eq!(&out[4..8], &[0, 0, 0, 0]);
        assert_eq!(&out[8..16], &7u64.to_le_bytes());
        assert_eq!(&out[16..24], &0x0102u64.to_le_bytes());
        assert_eq!(&out[24..28], &91i32.to_le_bytes());
        assert_eq!(&out[28..32], &85i32.to_le_bytes());
        assert_eq!(&out[32..36], &3u32.to_le_bytes());
        assert_eq!(&out[36..40], &[0, 0, 0, 0]);
        assert_eq!(EventRecord::decode(&out), Ok(r));
        let mut bad = out;
        bad[0] = 9;
        assert_eq!(EventRecord::decode(&bad), Err(Error::new(EINVAL)));
        assert_eq!(EventRecord::decode(&out[..39]), Err(Error::new(EINVAL)));
        assert_eq!(r.encode(&mut [0u8; 39]), Err(Error::new(EINVAL)));
    }
}
