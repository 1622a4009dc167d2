//! The `control` request: 16 bytes `{u32 op, u32 arg0, u64 arg1}`, and the
//! MILDEV operation numbers.

use core::mem::{offset_of, size_of};

use syscall::error::{EINVAL, Error, Result};

use super::le;

/// A control operation (MILDEV ioctl numbers 1–11).
///
/// The reply to each op is what a `read` of `control` returns after the
/// request was written, or what a `call` writes into its payload. Session
/// ops name their session in `arg1` (the id from the start reply); a
/// session id the open description does not own is `EINVAL`.
///
/// | op | arguments | reply |
/// |---|---|---|
/// | 1 `GetVersion` | — | [`VersionInfo`](super::VersionInfo), 16 bytes |
/// | 2 `GetStatus` | — | [`SystemStatus`](super::SystemStatus), 24 bytes |
/// | 3 `ScanDevices` | — | the whole table: 108 × [`DeviceInfo`](super::DeviceInfo) back to back (4320 bytes, ascending token order, see [`encode_device_list`](super::encode_device_list)) |
/// | 4 `ReadDevice` | `arg0` = token | the device's data bytes, whole (the concatenated `valid_data` of its read chunks) |
/// | 5 `GetThermal` | — | [`ThermalReply`](super::ThermalReply), 16 bytes (first 4 = °C) |
/// | 6 `ScanStart` | — | [`SessionStart`](super::SessionStart): session id, 22 chunks, 108 devices |
/// | 7 `ScanChunk` | `arg0` = chunk index, `arg1` = session id | one [`ScanChunk`](super::ScanChunk), 256 bytes; index ≥ total is `EINVAL` |
/// | 8 `ScanComplete` | `arg1` = session id | [`SessionSummary`](super::SessionSummary); the session is gone |
/// | 9 `ReadStart` | `arg0` = token | [`SessionStart`](super::SessionStart): session id, chunks, data bytes |
/// | 10 `ReadChunk` | `arg0` = chunk index, `arg1` = session id | one [`ReadChunk`](super::ReadChunk), 256 bytes; index ≥ total is `EINVAL` |
/// | 11 `ReadComplete` | `arg1` = session id | [`SessionSummary`](super::SessionSummary); the session is gone |
///
/// Chunk ops take an explicit index rather than "the next one" so a client
/// that lost a reply can ask again: the channel stays idempotent.
/// Unused arguments are ignored. Unknown op numbers are `EINVAL`.
/// `ReadDevice`/`ReadStart` on a quarantined token are `EACCES`, above the
/// thermal limit `EBUSY`, with an out-of-range token `EINVAL`.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// Protocol version and geometry.
    GetVersion = 1,
    /// System status.
    GetStatus = 2,
    /// The whole device table in one reply.
    ScanDevices = 3,
    /// One device's data in one reply.
    ReadDevice = 4,
    /// Platform temperature and limit.
    GetThermal = 5,
    /// Start a chunked scan session.
    ScanStart = 6,
    /// Fetch one scan chunk.
    ScanChunk = 7,
    /// End a scan session.
    ScanComplete = 8,
    /// Start a chunked read session of one device.
    ReadStart = 9,
    /// Fetch one read chunk.
    ReadChunk = 10,
    /// End a read session.
    ReadComplete = 11,
}

impl Op {
    /// Every op in numeric order (for per-op counters).
    pub const ALL: [Op; 11] = [
        Op::GetVersion,
        Op::GetStatus,
        Op::ScanDevices,
        Op::ReadDevice,
        Op::GetThermal,
        Op::ScanStart,
        Op::ScanChunk,
        Op::ScanComplete,
        Op::ReadStart,
        Op::ReadChunk,
        Op::ReadComplete,
    ];

    /// Decodes an op number; anything but 1–11 is `EINVAL`.
    pub fn from_raw(raw: u32) -> Result<Op> {
        raw.checked_sub(1)
            .and_then(|i| Op::ALL.get(i as usize).copied())
            .ok_or(Error::new(EINVAL))
    }

    /// The op number.
    pub const fn raw(self) -> u32 {
        self as u32
    }

    /// The MILDEV name, for `stats` and `log`.
    pub const fn name(self) -> &'static str {
        match self {
            Op::GetVersion => "GET_VERSION",
            Op::GetStatus => "GET_STATUS",
            Op::ScanDevices => "SCAN_DEVICES",
            Op::ReadDevice => "READ_DEVICE",
            Op::GetThermal => "GET_THERMAL",
            Op::ScanStart => "SCAN_START",
            Op::ScanChunk => "SCAN_CHUNK",
            Op::ScanComplete => "SCAN_COMPLETE",
            Op::ReadStart => "READ_START",
            Op::ReadChunk => "READ_CHUNK",
            Op::ReadComplete => "READ_COMPLETE",
        }
    }

    /// The reply size when it is fixed; `None` for `ScanDevices` and
    /// `ReadDevice`, whose replies depend on the table and the device.
    pub const fn fixed_reply_len(self) -> Option<usize> {
        match self {
            Op::GetVersion => Some(super::VersionInfo::SIZE),
            Op::GetStatus => Some(super::SystemStatus::SIZE),
            Op::GetThermal => Some(super::ThermalReply::SIZE),
            Op::ScanStart | Op::ReadStart => Some(super::SessionStart::SIZE),
            Op::ScanComplete | Op::ReadComplete => Some(super::SessionSummary::SIZE),
            Op::ScanChunk => Some(super::ScanChunk::SIZE),
            Op::ReadChunk => Some(super::ReadChunk::SIZE),
            Op::ScanDevices | Op::ReadDevice => None,
        }
    }
}

/// A control request: 16 bytes, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `op` | u32 ([`Op`]) |
/// | 4 | `arg0` | u32 |
/// | 8 | `arg1` | u64 |
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ControlRequest {
    /// The operation.
    pub op: Op,
    /// First argument (token or chunk index).
    pub arg0: u32,
    /// Second argument (session id).
    pub arg1: u64,
}

impl ControlRequest {
    /// Encoded size in bytes.
    pub const SIZE: usize = 16;

    /// A request.
    pub const fn new(op: Op, arg0: u32, arg1: u64) -> ControlRequest {
        ControlRequest { op, arg0, arg1 }
    }

    /// Writes the 16 bytes into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &self.op.raw().to_le_bytes());
        le::put(out, 4, &self.arg0.to_le_bytes());
        le::put(out, 8, &self.arg1.to_le_bytes());
        Ok(Self::SIZE)
    }

    /// The 16 request bytes.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut out = [0u8; Self::SIZE];
        // Cannot fail: the array is exactly SIZE bytes.
        let _ = self.encode(&mut out);
        out
    }

    /// Decodes a written request: exactly 16 bytes (short or long writes
    /// are `EINVAL`) with a known op (else `EINVAL`).
    pub fn decode(bytes: &[u8]) -> Result<ControlRequest> {
        le::exact(bytes, Self::SIZE)?;
        Ok(ControlRequest {
            op: Op::from_raw(le::u32_at(bytes, 0)?)?,
            arg0: le::u32_at(bytes, 4)?,
            arg1: le::u64_at(bytes, 8)?,
        })
    }

    /// Decodes a request carried by a `call`: `metadata[0]` = op,
    /// `metadata[1]` = arg0 (must fit in u32), `metadata[2]` = arg1; missing
    /// arguments are 0, extra metadata words are `EINVAL` (so a client that
    /// means something else by them finds out).
    pub fn from_metadata(metadata: &[u64]) -> Result<ControlRequest> {
        let word = |i: usize| metadata.get(i).copied().unwrap_or(0);
        if metadata.is_empty() || metadata.len() > 3 {
            return Err(Error::new(EINVAL));
        }
        let op = u32::try_from(word(0)).map_err(|_| Error::new(EINVAL))?;
        let arg0 = u32::try_from(word(1)).map_err(|_| Error::new(EINVAL))?;
        Ok(ControlRequest {
            op: Op::from_raw(op)?,
            arg0,
            arg1: word(2),
        })
    }
}

const _: () = assert!(size_of::<ControlRequest>() == ControlRequest::SIZE);
const _: () = assert!(offset_of!(ControlRequest, op) == 0);
const _: () = assert!(offset_of!(ControlRequest, arg0) == 4);
const _: () = assert!(offset_of!(ControlRequest, arg1) == 8);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn op_numbers_are_mildev() {
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(op.raw(), i as u32 + 1);
            assert_eq!(Op::from_raw(op.raw()), Ok(*op));
        }
        assert_eq!(Op::GetVersion.raw(), 1);
        assert_eq!(Op::ReadStart.raw(), 9);
        assert_eq!(Op::ReadComplete.raw(), 11);
        for bad in [0, 12, 0x8000_0001, u32::MAX] {
            assert_eq!(Op::from_raw(bad), Err(Error::new(EINVAL)));
        }
    }

    #[test]
    fn request_layout() {
        let req = ControlRequest::new(Op::ReadChunk, 0x0102_0304, 0x1122_3344_5566_7788);
        let bytes = req.to_bytes();
        assert_eq!(&bytes[0..4], &[10, 0, 0, 0]);
        assert_eq!(&bytes[4..8], &[4, 3, 2, 1]);
        assert_eq!(&bytes[8..16], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(ControlRequest::decode(&bytes), Ok(req));
    }

    #[test]
    fn malformed_requests_rejected() {
        let bytes = ControlRequest::new(Op::GetVersion, 0, 0).to_bytes();
        assert_eq!(
            ControlRequest::decode(&bytes[..15]),
            Err(Error::new(EINVAL))
        );
        assert_eq!(ControlRequest::decode(&[0u8; 17]), Err(Error::new(EINVAL)));
        assert_eq!(ControlRequest::decode(&[]), Err(Error::new(EINVAL)));
        let mut unknown = bytes;
        unknown[0] = 12;
        assert_eq!(ControlRequest::decode(&unknown), Err(Error::new(EINVAL)));
        let mut high = bytes;
        high[3] = 1;
        assert_eq!(ControlRequest::decode(&high), Err(Error::new(EINVAL)));
    }

    #[test]
    fn call_metadata() {
        assert_eq!(
            ControlRequest::from_metadata(&[9, 0x8001]),
            Ok(ControlRequest::new(Op::ReadStart, 0x8001, 0))
        );
        assert_eq!(
            ControlRequest::from_metadata(&[7, 3, 42]),
            Ok(ControlRequest::new(Op::ScanChunk, 3, 42))
        );
        assert_eq!(ControlRequest::from_metadata(&[]), Err(Error::new(EINVAL)));
        assert_eq!(
            ControlRequest::from_metadata(&[1, 0, 0, 0]),
            Err(Error::new(EINVAL))
        );
        assert_eq!(
            ControlRequest::from_metadata(&[1 << 32 | 1]),
            Err(Error::new(EINVAL))
        );
        assert_eq!(
            ControlRequest::from_metadata(&[4, 1 << 32]),
            Err(Error::new(EINVAL))
        );
        assert_eq!(
            ControlRequest::from_metadata(&[99]),
            Err(Error::new(EINVAL))
        );
    }

    #[test]
    fn fixed_reply_sizes() {
        assert_eq!(Op::GetVersion.fixed_reply_len(), Some(16));
        assert_eq!(Op::GetStatus.fixed_reply_len(), Some(24));
        assert_eq!(Op::ScanChunk.fixed_reply_len(), Some(256));
        assert_eq!(Op::ReadChunk.fixed_reply_len(), Some(256));
        assert_eq!(Op::ScanDevices.fixed_reply_len(), None);
    }
}
