//! `scan_chunk`: 256-byte slices of the device table, five devices at a time.

use core::mem::{offset_of, size_of};

use syscall::error::{EINVAL, Error, Result};

use super::device_info::DeviceInfo;
use super::le;
use super::token::DEVICE_COUNT;

/// Size of every chunk (scan and read) on the wire.
pub const CHUNK_SIZE: usize = 256;
/// Devices carried by one scan chunk.
pub const DEVICES_PER_SCAN_CHUNK: usize = 5;
/// Scan chunks needed for the full table: 108 devices → 22 chunks (the last
/// carries 3).
pub const SCAN_CHUNK_COUNT: usize = DEVICE_COUNT.div_ceil(DEVICES_PER_SCAN_CHUNK);

const _: () = assert!(SCAN_CHUNK_COUNT == 22);

/// `scan_chunk_header`: 32 bytes, packed, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `chunk_index` | u32 |
/// | 4 | `total_chunks` | u32 |
/// | 8 | `devices_in_chunk` | u32 (≤ 5) |
/// | 12 | `chunk_size` (= 32 + n×40) | u32 |
/// | 16 | `session_id` | u64 |
/// | 24 | reserved | 8 × u8 (zero) |
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanChunkHeader {
    /// Index of this chunk, `0..total_chunks`.
    pub chunk_index: u32,
    /// Chunks in the session.
    pub total_chunks: u32,
    /// Valid device records in this chunk.
    pub devices_in_chunk: u32,
    /// Meaningful bytes: header plus the valid records.
    pub chunk_size: u32,
    /// The scan session this chunk belongs to.
    pub session_id: u64,
    reserved: [u8; 8],
}

impl ScanChunkHeader {
    /// Encoded size in bytes.
    pub const SIZE: usize = 32;

    /// A header with its `chunk_size` derived from `devices_in_chunk`.
    pub fn new(
        chunk_index: u32,
        total_chunks: u32,
        devices_in_chunk: u32,
        session_id: u64,
    ) -> ScanChunkHeader {
        ScanChunkHeader {
            chunk_index,
            total_chunks,
            devices_in_chunk,
            chunk_size: Self::chunk_size_for(devices_in_chunk),
            session_id,
            reserved: [0; 8],
        }
    }

    /// `32 + n × 40`, saturating for absurd `n` (which decode rejects anyway).
    const fn chunk_size_for(devices: u32) -> u32 {
        (devices.saturating_mul(DeviceInfo::SIZE as u32)).saturating_add(Self::SIZE as u32)
    }

    /// Writes the 32-byte header into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &{ self.chunk_index }.to_le_bytes());
        le::put(out, 4, &{ self.total_chunks }.to_le_bytes());
        le::put(out, 8, &{ self.devices_in_chunk }.to_le_bytes());
        le::put(out, 12, &{ self.chunk_size }.to_le_bytes());
        le::put(out, 16, &{ self.session_id }.to_le_bytes());
        le::put(out, 24, &[0; 8]);
        Ok(Self::SIZE)
    }

    /// Decodes exactly 32 bytes. Checks the header's own consistency:
    /// `devices_in_chunk ≤ 5`, `chunk_size = 32 + n×40`,
    /// `chunk_index < total_chunks`. Reserved bytes are ignored.
    pub fn decode(bytes: &[u8]) -> Result<ScanChunkHeader> {
        le::exact(bytes, Self::SIZE)?;
        let header = ScanChunkHeader {
            chunk_index: le::u32_at(bytes, 0)?,
            total_chunks: le::u32_at(bytes, 4)?,
            devices_in_chunk: le::u32_at(bytes, 8)?,
            chunk_size: le::u32_at(bytes, 12)?,
            session_id: le::u64_at(bytes, 16)?,
            reserved: [0; 8],
        };
        let devices = header.devices_in_chunk;
        if devices as usize > DEVICES_PER_SCAN_CHUNK
            || { header.chunk_size } != Self::chunk_size_for(devices)
            || { header.chunk_index } >= { header.total_chunks }
        {
            return Err(Error::new(EINVAL));
        }
        Ok(header)
    }
}

const _: () = assert!(size_of::<ScanChunkHeader>() == ScanChunkHeader::SIZE);
const _: () = assert!(offset_of!(ScanChunkHeader, chunk_index) == 0);
const _: () = assert!(offset_of!(ScanChunkHeader, total_chunks) == 4);
const _: () = assert!(offset_of!(ScanChunkHeader, devices_in_chunk) == 8);
const _: () = assert!(offset_of!(ScanChunkHeader, chunk_size) == 12);
const _: () = assert!(offset_of!(ScanChunkHeader, session_id) == 16);
const _: () = assert!(offset_of!(ScanChunkHeader, reserved) == 24);

/// `scan_chunk`: header + 5 device records + 24 bytes of zero padding = 256.
///
/// Device record `i` is at offset `32 + 40 × i`; records past
/// `devices_in_chunk` are zero on the wire. Encoded field by field, so the Rust
/// struct's own layout does not matter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ScanChunk {
    /// The chunk header.
    pub header: ScanChunkHeader,
    /// Device records; only the first `header.devices_in_chunk` are valid.
    pub devices: [DeviceInfo; DEVICES_PER_SCAN_CHUNK],
    padding: [u8; 24],
}

impl ScanChunk {
    /// Encoded size in bytes.
    pub const SIZE: usize = CHUNK_SIZE;
    const DEVICES: usize = ScanChunkHeader::SIZE;

    /// Builds chunk `chunk_index` of `total_chunks` carrying `devices`
    /// (at most 5, else `EINVAL`).
    pub fn new(
        chunk_index: u32,
        total_chunks: u32,
        session_id: u64,
        devices: &[DeviceInfo],
    ) -> Result<ScanChunk> {
        if devices.len() > DEVICES_PER_SCAN_CHUNK {
            return Err(Error::new(EINVAL));
        }
        let mut records = [DeviceInfo::default(); DEVICES_PER_SCAN_CHUNK];
        for (slot, device) in records.iter_mut().zip(devices) {
            *slot = *device;
        }
        Ok(ScanChunk {
            // ≤ 5 by the check above.
            header: ScanChunkHeader::new(
                chunk_index,
                total_chunks,
                devices.len() as u32,
                session_id,
            ),
            devices: records,
            padding: [0; 24],
        })
    }

    /// The valid device records.
    pub fn valid_devices(&self) -> &[DeviceInfo] {
        let n = (self.header.devices_in_chunk as usize).min(DEVICES_PER_SCAN_CHUNK);
        self.devices.get(..n).unwrap_or(&[])
    }

    /// Writes the 256-byte chunk into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        Self::encode_parts(&self.header, self.valid_devices(), out)
    }

    /// Encodes a chunk straight from a header and its records, without
    /// building a `ScanChunk` first (the scheme's hot path).
    pub fn encode_parts(
        header: &ScanChunkHeader,
        devices: &[DeviceInfo],
        out: &mut [u8],
    ) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        if devices.len() > DEVICES_PER_SCAN_CHUNK
            || devices.len() != header.devices_in_chunk as usize
        {
            return Err(Error::new(EINVAL));
        }
        let (head, body) = out.split_at_mut(ScanChunkHeader::SIZE);
        header.encode(head)?;
        let body = body
            .get_mut(..Self::SIZE - Self::DEVICES)
            .ok_or(Error::new(EINVAL))?;
        body.fill(0);
        for (device, slot) in devices.iter().zip(body.chunks_exact_mut(DeviceInfo::SIZE)) {
            device.encode(slot)?;
        }
        Ok(Self::SIZE)
    }

    /// Decodes exactly 256 bytes: a consistent header and its valid records;
    /// slots past `devices_in_chunk` decode as defaults whatever they hold.
    pub fn decode(bytes: &[u8]) -> Result<ScanChunk> {
        le::exact(bytes, Self::SIZE)?;
        let header = ScanChunkHeader::decode(
            bytes
                .get(..ScanChunkHeader::SIZE)
                .ok_or(Error::new(EINVAL))?,
        )?;
        let mut devices = [DeviceInfo::default(); DEVICES_PER_SCAN_CHUNK];
        let records = bytes.get(Self::DEVICES..).ok_or(Error::new(EINVAL))?;
        for (slot, raw) in devices
            .iter_mut()
            .zip(records.chunks_exact(DeviceInfo::SIZE))
            .take(header.devices_in_chunk as usize)
        {
            *slot = DeviceInfo::decode(raw)?;
        }
        Ok(ScanChunk {
            header,
            devices,
            padding: [0; 24],
        })
    }
}

// Header, five records, 24 bytes of padding: exactly one chunk.
const _: () = assert!(ScanChunk::DEVICES == ScanChunkHeader::SIZE);
const _: () =
    assert!(ScanChunk::DEVICES + DEVICES_PER_SCAN_CHUNK * DeviceInfo::SIZE + 24 == ScanChunk::SIZE);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::device_info::{DeviceAccess, DeviceState};

    fn device(token: u16) -> DeviceInfo {
        DeviceInfo {
            device_id: token,
            state: DeviceState::Safe,
            access: DeviceAccess::Read,
            is_quarantined: false,
            last_response: u32::from(token) * 3,
            timestamp: 77,
            thermal_celsius: 41,
        }
    }

    #[test]
    fn header_layout() {
        let header = ScanChunkHeader::new(3, 22, 5, 0x1122_3344_5566_7788);
        let mut out = [0xEEu8; 32];
        assert_eq!(header.encode(&mut out), Ok(32));
        assert_eq!(&out[0..4], &3u32.to_le_bytes());
        assert_eq!(&out[4..8], &22u32.to_le_bytes());
        assert_eq!(&out[8..12], &5u32.to_le_bytes());
        assert_eq!(&out[12..16], &232u32.to_le_bytes());
        assert_eq!(&out[16..24], &0x1122_3344_5566_7788u64.to_le_bytes());
        assert_eq!(&out[24..32], &[0u8; 8]);
        assert_eq!(ScanChunkHeader::decode(&out), Ok(header));
    }

    #[test]
    fn header_consistency_checked() {
        let mut out = [0u8; 32];
        ScanChunkHeader::new(21, 22, 3, 9).encode(&mut out).unwrap();
        assert_eq!(out[12..16], 152u32.to_le_bytes());
        let mut six = out;
        six[8] = 6;
        six[12..16].copy_from_slice(&272u32.to_le_bytes());
        assert_eq!(ScanChunkHeader::decode(&six), Err(Error::new(EINVAL)));
        let mut wrong_size = out;
        wrong_size[12] = 0;
        assert_eq!(
            ScanChunkHeader::decode(&wrong_size),
            Err(Error::new(EINVAL))
        );
        let mut past_end = out;
        past_end[0] = 22;
        assert_eq!(ScanChunkHeader::decode(&past_end), Err(Error::new(EINVAL)));
    }

    #[test]
    fn chunk_layout() {
        let devices: Vec<DeviceInfo> = (0x8069..=0x806B).map(device).collect();
        let chunk = ScanChunk::new(21, 22, 5, &devices).unwrap();
        let mut out = [0xEEu8; 256];
        assert_eq!(chunk.encode(&mut out), Ok(256));
        for (i, d) in devices.iter().enumerate() {
            let at = 32 + 40 * i;
            assert_eq!(DeviceInfo::decode(&out[at..at + 40]), Ok(*d));
        }
        // Unused slots 3 and 4 and the 24-byte tail are zero.
        assert!(out[152..256].iter().all(|&b| b == 0));
        let decoded = ScanChunk::decode(&out).unwrap();
        assert_eq!(decoded, chunk);
        assert_eq!(decoded.valid_devices(), devices.as_slice());
    }

    #[test]
    fn chunk_rejects_bad_input() {
        let six: Vec<DeviceInfo> = (0x8000..0x8006).map(device).collect();
        assert_eq!(ScanChunk::new(0, 1, 1, &six), Err(Error::new(EINVAL)));
        let chunk = ScanChunk::new(0, 1, 1, &six[..5]).unwrap();
        assert_eq!(chunk.encode(&mut [0u8; 255]), Err(Error::new(EINVAL)));
        let mut out = [0u8; 256];
        chunk.encode(&mut out).unwrap();
        assert_eq!(ScanChunk::decode(&out[..255]), Err(Error::new(EINVAL)));
        // A header that claims 4 records but a caller passing 5.
        let header = ScanChunkHeader::new(0, 1, 4, 1);
        assert_eq!(
            ScanChunk::encode_parts(&header, &six[..5], &mut out),
            Err(Error::new(EINVAL))
        );
    }
}
