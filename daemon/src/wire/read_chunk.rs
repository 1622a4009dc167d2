//! `read_chunk`: 256-byte slices of one device's data.

use core::mem::{offset_of, size_of};

use syscall::error::{EINVAL, Error, Result};

use super::le;
use super::scan_chunk::CHUNK_SIZE;

/// Data bytes carried by one read chunk.
pub const READ_CHUNK_DATA: usize = CHUNK_SIZE - ReadChunkHeader::SIZE;

const _: () = assert!(READ_CHUNK_DATA == 224);

/// `read_chunk_header`: 32 bytes, packed, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `token` | u16 |
/// | 2 | `chunk_index` | u16 |
/// | 4 | `total_chunks` | u32 |
/// | 8 | `data_offset` (= index × 224) | u32 |
/// | 12 | `chunk_size`: valid data bytes in this chunk (≤ 224) | u32 |
/// | 16 | `session_id` | u64 |
/// | 24 | reserved | 8 × u8 (zero) |
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadChunkHeader {
    /// The device being read.
    pub token: u16,
    /// Index of this chunk, `0..total_chunks`.
    pub chunk_index: u16,
    /// Chunks in the session.
    pub total_chunks: u32,
    /// Offset of this chunk's data in the device data.
    pub data_offset: u32,
    /// Valid data bytes in this chunk (the last chunk may be short).
    pub chunk_size: u32,
    /// The read session this chunk belongs to.
    pub session_id: u64,
    reserved: [u8; 8],
}

impl ReadChunkHeader {
    /// Encoded size in bytes.
    pub const SIZE: usize = 32;

    /// A header; `data_offset` is derived as `chunk_index × 224`.
    pub fn new(
        token: u16,
        chunk_index: u16,
        total_chunks: u32,
        chunk_size: u32,
        session_id: u64,
    ) -> ReadChunkHeader {
        ReadChunkHeader {
            token,
            chunk_index,
            total_chunks,
            data_offset: u32::from(chunk_index) * READ_CHUNK_DATA as u32,
            chunk_size,
            session_id,
            reserved: [0; 8],
        }
    }

    /// Writes the 32-byte header into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        le::put(out, 0, &{ self.token }.to_le_bytes());
        le::put(out, 2, &{ self.chunk_index }.to_le_bytes());
        le::put(out, 4, &{ self.total_chunks }.to_le_bytes());
        le::put(out, 8, &{ self.data_offset }.to_le_bytes());
        le::put(out, 12, &{ self.chunk_size }.to_le_bytes());
        le::put(out, 16, &{ self.session_id }.to_le_bytes());
        le::put(out, 24, &[0; 8]);
        Ok(Self::SIZE)
    }

    /// Decodes exactly 32 bytes. Checks `chunk_size ≤ 224`,
    /// `chunk_index < total_chunks` and `data_offset = index × 224`.
    pub fn decode(bytes: &[u8]) -> Result<ReadChunkHeader> {
        le::exact(bytes, Self::SIZE)?;
        let header = ReadChunkHeader {
            token: le::u16_at(bytes, 0)?,
            chunk_index: le::u16_at(bytes, 2)?,
            total_chunks: le::u32_at(bytes, 4)?,
            data_offset: le::u32_at(bytes, 8)?,
            chunk_size: le::u32_at(bytes, 12)?,
            session_id: le::u64_at(bytes, 16)?,
            reserved: [0; 8],
        };
        let index = header.chunk_index;
        if header.chunk_size as usize > READ_CHUNK_DATA
            || u32::from(index) >= { header.total_chunks }
            || { header.data_offset } != u32::from(index) * READ_CHUNK_DATA as u32
        {
            return Err(Error::new(EINVAL));
        }
        Ok(header)
    }
}

const _: () = assert!(size_of::<ReadChunkHeader>() == ReadChunkHeader::SIZE);
const _: () = assert!(offset_of!(ReadChunkHeader, token) == 0);
const _: () = assert!(offset_of!(ReadChunkHeader, chunk_index) == 2);
const _: () = assert!(offset_of!(ReadChunkHeader, total_chunks) == 4);
const _: () = assert!(offset_of!(ReadChunkHeader, data_offset) == 8);
const _: () = assert!(offset_of!(ReadChunkHeader, chunk_size) == 12);
const _: () = assert!(offset_of!(ReadChunkHeader, session_id) == 16);
const _: () = assert!(offset_of!(ReadChunkHeader, reserved) == 24);

/// `read_chunk`: header + 224 data bytes = 256. Data past `chunk_size` is
/// zero on the wire.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadChunk {
    /// The chunk header.
    pub header: ReadChunkHeader,
    /// Data; only the first `header.chunk_size` bytes are meaningful.
    pub data: [u8; READ_CHUNK_DATA],
}

impl Default for ReadChunk {
    fn default() -> ReadChunk {
        ReadChunk {
            header: ReadChunkHeader::default(),
            data: [0; READ_CHUNK_DATA],
        }
    }
}

impl ReadChunk {
    /// Encoded size in bytes.
    pub const SIZE: usize = CHUNK_SIZE;

    /// The valid data bytes.
    pub fn valid_data(&self) -> &[u8] {
        let n = (self.header.chunk_size as usize).min(READ_CHUNK_DATA);
        self.data.get(..n).unwrap_or(&[])
    }

    /// Writes the 256-byte chunk into the front of `out`.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize> {
        Self::encode_parts(&self.header, self.valid_data(), out)
    }

    /// Encodes a chunk straight from a header and its data slice
    /// (`data.len()` must equal `header.chunk_size`, at most 224).
    pub fn encode_parts(header: &ReadChunkHeader, data: &[u8], out: &mut [u8]) -> Result<usize> {
        le::room(out, Self::SIZE)?;
        if data.len() > READ_CHUNK_DATA || data.len() != header.chunk_size as usize {
            return Err(Error::new(EINVAL));
        }
        let (head, body) = out.split_at_mut(ReadChunkHeader::SIZE);
        header.encode(head)?;
        let body = body.get_mut(..READ_CHUNK_DATA).ok_or(Error::new(EINVAL))?;
        let (valid, rest) = body.split_at_mut(data.len());
        valid.copy_from_slice(data);
        rest.fill(0);
        Ok(Self::SIZE)
    }

    /// Decodes exactly 256 bytes with a consistent header.
    pub fn decode(bytes: &[u8]) -> Result<ReadChunk> {
        le::exact(bytes, Self::SIZE)?;
        let header = ReadChunkHeader::decode(
            bytes
                .get(..ReadChunkHeader::SIZE)
                .ok_or(Error::new(EINVAL))?,
        )?;
        let mut data = [0u8; READ_CHUNK_DATA];
        let n = header.chunk_size as usize;
        let src = bytes
            .get(ReadChunkHeader::SIZE..ReadChunkHeader::SIZE + n)
            .ok_or(Error::new(EINVAL))?;
        data.get_mut(..n)
            .ok_or(Error::new(EINVAL))?
            .copy_from_slice(src);
        Ok(ReadChunk { header, data })
    }
}

const _: () = assert!(size_of::<ReadChunk>() == ReadChunk::SIZE);
const _: () = assert!(offset_of!(ReadChunk, data) == ReadChunkHeader::SIZE);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_layout() {
        let header = ReadChunkHeader::new(0x8042, 2, 5, 224, 0xAABB_CCDD_0011_2233);
        let mut out = [0xEEu8; 32];
        assert_eq!(header.encode(&mut out), Ok(32));
        assert_eq!(&out[0..2], &0x8042u16.to_le_bytes());
        assert_eq!(&out[2..4], &2u16.to_le_bytes());
        assert_eq!(&out[4..8], &5u32.to_le_bytes());
        assert_eq!(&out[8..12], &448u32.to_le_bytes());
        assert_eq!(&out[12..16], &224u32.to_le_bytes());
        assert_eq!(&out[16..24], &0xAABB_CCDD_0011_2233u64.to_le_bytes());
        assert_eq!(&out[24..32], &[0u8; 8]);
        assert_eq!(ReadChunkHeader::decode(&out), Ok(header));
    }

    #[test]
    fn header_consistency_checked() {
        let mut out = [0u8; 32];
        ReadChunkHeader::new(0x8000, 1, 2, 10, 1)
            .encode(&mut out)
            .unwrap();
        let mut too_big = out;
        too_big[12..16].copy_from_slice(&225u32.to_le_bytes());
        assert_eq!(ReadChunkHeader::decode(&too_big), Err(Error::new(EINVAL)));
        let mut past_end = out;
        past_end[2] = 2;
        assert_eq!(ReadChunkHeader::decode(&past_end), Err(Error::new(EINVAL)));
        let mut bad_offset = out;
        bad_offset[8] = 0;
        assert_eq!(
            ReadChunkHeader::decode(&bad_offset),
            Err(Error::new(EINVAL))
        );
    }

    #[test]
    fn chunk_layout_and_short_last_chunk() {
        let data: Vec<u8> = (1..=10).collect();
        let header = ReadChunkHeader::new(0x8001, 1, 2, 10, 7);
        let mut out = [0xEEu8; 256];
        assert_eq!(ReadChunk::encode_parts(&header, &data, &mut out), Ok(256));
        assert_eq!(&out[32..42], data.as_slice());
        assert!(out[42..].iter().all(|&b| b == 0));
        let chunk = ReadChunk::decode(&out).unwrap();
        assert_eq!(chunk.valid_data(), data.as_slice());
        let mut again = [0u8; 256];
        chunk.encode(&mut again).unwrap();
        assert_eq!(again, out);
        assert_eq!(ReadChunk::decode(&out[..255]), Err(Error::new(EINVAL)));
        assert_eq!(
            ReadChunk::encode_parts(&header, &data[..9], &mut out),
            Err(Error::new(EINVAL))
        );
        assert_eq!(chunk.encode(&mut [0u8; 200]), Err(Error::new(EINVAL)));
    }
}
