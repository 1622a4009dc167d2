//! A scan session: the device table cut into 256-byte scan chunks.

use syscall::error::{EINVAL, Error, Result};

use super::chunk_cursor::ChunkCursor;
use crate::wire::{
    DEVICE_COUNT, DEVICES_PER_SCAN_CHUNK, DeviceInfo, ScanChunk, ScanChunkHeader, SessionStart,
    SessionSummary,
};

/// One client's scan: a snapshot of the table taken when the session
/// started, handed out five devices per chunk.
///
/// The snapshot is what makes concurrent scans consistent: every chunk of a
/// session comes from the same instant, whatever changes meanwhile, and
/// any number of sessions can run side by side without seeing each other.
/// Memory per session is bounded (at most 108 records, 4320 bytes).
#[derive(Clone, Debug)]
pub struct ScanSession {
    id: u64,
    devices: Vec<DeviceInfo>,
    cursor: ChunkCursor,
}

impl ScanSession {
    /// A session over `devices` (ascending token order, at most 108, else
    /// `EINVAL`). 108 devices give 22 chunks; 0 devices give 0 chunks.
    pub fn new(id: u64, devices: Vec<DeviceInfo>) -> Result<ScanSession> {
        if devices.len() > DEVICE_COUNT {
            return Err(Error::new(EINVAL));
        }
        // ≤ 22 by the check above.
        let total = devices.len().div_ceil(DEVICES_PER_SCAN_CHUNK) as u32;
        Ok(ScanSession {
            id,
            devices,
            cursor: ChunkCursor::new(total),
        })
    }

    /// The session id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Chunks in the session.
    pub fn total_chunks(&self) -> u32 {
        self.cursor.total()
    }

    /// The snapshot (the `SCAN_DEVICES` reply is this, whole).
    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// The `SCAN_START` reply.
    pub fn start_reply(&self) -> SessionStart {
        SessionStart {
            session_id: self.id,
            total_chunks: self.total_chunks(),
            // ≤ 108.
            total_items: self.devices.len() as u32,
        }
    }

    fn parts(&self, index: u32) -> Result<(ScanChunkHeader, &[DeviceInfo])> {
        chunk_parts(self.id, &self.devices, index)
    }

    /// Chunk `index` (`SCAN_CHUNK`); `index ≥ total_chunks` is `EINVAL`.
    pub fn chunk(&mut self, index: u32) -> Result<ScanChunk> {
        let (header, devices) = self.parts(index)?;
        let chunk = ScanChunk::new(index, header.total_chunks, self.id, devices)?;
        self.cursor.mark(index);
        Ok(chunk)
    }

    /// Encodes chunk `index` straight into `out` (at least 256 bytes), as
    /// [`chunk`](Self::chunk) without the intermediate value.
    pub fn write_chunk(&mut self, index: u32, out: &mut [u8]) -> Result<usize> {
        let (header, devices) = self.parts(index)?;
        let n = ScanChunk::encode_parts(&header, devices, out)?;
        self.cursor.mark(index);
        Ok(n)
    }

    /// The next chunk in order, `None` after the last.
    pub fn next_chunk(&mut self) -> Option<ScanChunk> {
        let index = self.cursor.take_next()?;
        let (header, devices) = self.parts(index).ok()?;
        ScanChunk::new(index, header.total_chunks, self.id, devices).ok()
    }

    /// A read of the `scan` file: as many whole chunks as fit in `out`, in
    /// order. Smaller than 256 bytes is `EINVAL`; after the last chunk, 0.
    pub fn read(&mut self, out: &mut [u8]) -> Result<usize> {
        let (id, devices) = (self.id, &self.devices);
        self.cursor.fill(out, |index, slot| {
            let (header, records) = chunk_parts(id, devices, index)?;
            ScanChunk::encode_parts(&header, records, slot)
        })
    }

    /// Whether sequential reading reached the end.
    pub fn is_finished(&self) -> bool {
        self.cursor.is_finished()
    }

    /// The `SCAN_COMPLETE` reply (the caller then drops the session).
    pub fn summary(&self) -> SessionSummary {
        SessionSummary {
            session_id: self.id,
            chunks_delivered: self.cursor.delivered_count(),
            total_chunks: self.total_chunks(),
        }
    }
}

/// Header and records of chunk `index` of `devices`; past the end is `EINVAL`.
fn chunk_parts(
    id: u64,
    devices: &[DeviceInfo],
    index: u32,
) -> Result<(ScanChunkHeader, &[DeviceInfo])> {
    // ≤ 22: sessions hold at most 108 devices.
    let total = devices.len().div_ceil(DEVICES_PER_SCAN_CHUNK) as u32;
    if index >= total {
        return Err(Error::new(EINVAL));
    }
    let start = index as usize * DEVICES_PER_SCAN_CHUNK;
    let end = (start + DEVICES_PER_SCAN_CHUNK).min(devices.len());
    let records = devices.get(start..end).ok_or(Error::new(EINVAL))?;
    // ≤ 5.
    let header = ScanChunkHeader::new(index, total, records.len() as u32, id);
    Ok((header, records))
}
