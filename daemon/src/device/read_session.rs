//! A read session: one device's data cut into 256-byte read chunks.

use syscall::error::{EINVAL, Error, Result};

use super::chunk_cursor::ChunkCursor;
use crate::wire::{
    READ_CHUNK_DATA, ReadChunk, ReadChunkHeader, SessionStart, SessionSummary, Token,
};

/// Largest device data a read session carries (64 KiB = 293 chunks).
///
/// Bounds the memory one open description can pin; the chunk index is a
/// `u16` on the wire, so the protocol itself could not go past 14 MiB.
pub const MAX_DEVICE_DATA: usize = 64 * 1024;

/// One client's read of one device: the data captured when the session
/// started, handed out 224 bytes per chunk.
///
/// The daemon captures the data (SMI read, MMIO window) at `READ_START`
/// after the table's access checks, so chunk fetches touch no hardware and
/// every chunk of a session comes from the same capture.
#[derive(Clone, Debug)]
pub struct ReadSession {
    id: u64,
    token: Token,
    data: Vec<u8>,
    cursor: ChunkCursor,
}

impl ReadSession {
    /// A session over `data` of device `token`; more than
    /// [`MAX_DEVICE_DATA`] bytes is `EINVAL`. Empty data gives 0 chunks.
    pub fn new(id: u64, token: Token, data: Vec<u8>) -> Result<ReadSession> {
        if data.len() > MAX_DEVICE_DATA {
            return Err(Error::new(EINVAL));
        }
        // ≤ 293 by the check above.
        let total = data.len().div_ceil(READ_CHUNK_DATA) as u32;
        Ok(ReadSession {
            id,
            token,
            data,
            cursor: ChunkCursor::new(total),
        })
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The device being read.
    pub fn token(&self) -> Token {
        self.token
    }

    /// Chunks in the session.
    pub fn total_chunks(&self) -> u32 {
        self.cursor.total()
    }

    /// The captured data (the `READ_DEVICE` reply is this, whole).
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The `READ_START` reply.
    pub fn start_reply(&self) -> SessionStart {
        SessionStart {
            session_id: self.id,
            total_chunks: self.total_chunks(),
            // ≤ 64 KiB.
            total_items: self.data.len() as u32,
        }
    }

    /// Chunk `index` (`READ_CHUNK`); `index ≥ total_chunks` is `EINVAL`.
    pub fn chunk(&mut self, index: u32) -> Result<ReadChunk> {
        let mut chunk = ReadChunk::default();
        let (header, data) = chunk_parts(self.id, self.token, &self.data, index)?;
        chunk.header = header;
        chunk
            .data
            .get_mut(..data.len())
            .ok_or(Error::new(EINVAL))?
            .copy_from_slice(data);
        self.cursor.mark(index);
        Ok(chunk)
    }

    /// Encodes chunk `index` straight into `out` (at least 256 bytes).
    pub fn write_chunk(&mut self, index: u32, out: &mut [u8]) -> Result<usize> {
        let (header, data) = chunk_parts(self.id, self.token, &self.data, index)?;
        let n = ReadChunk::encode_parts(&header, data, out)?;
        self.cursor.mark(index);
        Ok(n)
    }

    /// A read of the `device/<token>` file: as many whole chunks as fit in
    /// `out`, in order. Smaller than 256 bytes is `EINVAL`; after the last
    /// chunk, 0.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        let (id, token, data) = (self.id, self.token, &self.data);
        self.cursor.fill(out, |index, slot| {
            let (header, bytes) = chunk_parts(id, token, data, index)?;
            ReadChunk::encode_parts(&header, bytes, slot)
        })
    }

    /// Whether sequential reading reached the end.
    pub fn is_finished(&self) -> bool {
        self.cursor.is_finished()
    }

    /// The `READ_COMPLETE` reply (the caller then drops the session).
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            session_id: self.id,
            chunks_delivered: self.cursor.delivered_count(),
            total_chunks: self.total_chunks(),
        }
    }
}

/// Header and data slice of chunk `index`; past the end is `EINVAL`.
fn chunk_parts(id: u64, token: Token, data: &[u8], index: u32) -> Result<(ReadChunkHeader, &[u8])> {
    // ≤ 293: sessions hold at most MAX_DEVICE_DATA bytes.
    let total = data.len().div_ceil(READ_CHUNK_DATA) as u32;
    if index >= total {
        return Err(Error::new(EINVAL));
    }
    let start = index as usize * READ_CHUNK_DATA;
    let end = (start + READ_CHUNK_DATA).min(data.len());
    let bytes = data.get(start..end).ok_or(Error::new(EINVAL))?;
    let index = u16::try_from(index).map_err(|_| Error::new(EINVAL))?;
    // ≤ 224.
    let header = ReadChunkHeader::new(token.raw(), index, total, bytes.len() as u32, id);
    Ok((header, bytes))
}
