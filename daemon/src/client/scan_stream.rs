//! Decoding what `scan` and `device/<token>` return: a stream of whole 256-byte
//! chunks, checked for order and consistency (a client trusts nothing it reads).

use syscall::error::EINVAL;

use crate::wire::{CHUNK_SIZE, ReadChunk, ScanChunk, ScanChunkHeader, Token};

fn whole_chunks(bytes: &[u8]) -> Result<std::slice::ChunksExact<'_, u8>, i32> {
    if !bytes.len().is_multiple_of(CHUNK_SIZE) {
        return Err(EINVAL);
    }
    Ok(bytes.chunks_exact(CHUNK_SIZE))
}

fn same_stream(a: &ScanChunkHeader, b: &ScanChunkHeader) -> bool {
    // Copies: the headers are packed.
    let (sa, sb, ta, tb) = (a.session_id, b.session_id, a.total_chunks, b.total_chunks);
    sa == sb && ta == tb
}

/// Decodes the bytes of a scan session (e.g. `dsmilctl scan --raw` output):
/// chunks `0..total` of one session, in order, each with a consistent header.
/// Anything else — a partial chunk, a gap, a second session — is `EINVAL`.
pub fn decode_scan_stream(bytes: &[u8]) -> Result<Vec<ScanChunk>, i32> {
    let mut chunks: Vec<ScanChunk> = Vec::new();
    for (i, raw) in whole_chunks(bytes)?.enumerate() {
        let chunk = ScanChunk::decode(raw).map_err(|e| e.errno)?;
        let header = chunk.header;
        let index_ok = header.chunk_index as usize == i;
        let same_session = chunks
            .first()
            .is_none_or(|first| same_stream(&first.header, &header));
        if !index_ok || !same_session {
            return Err(EINVAL);
        }
        chunks.push(chunk);
    }
    // A complete stream ends with the last chunk (an empty one is an empty table).
    if let Some(last) = chunks.last()
        && { last.header.total_chunks } as usize != chunks.len()
    {
        return Err(EINVAL);
    }
    Ok(chunks)
}

/// Decodes the bytes of a device read session into the device's data: chunks
/// `0..total` of `token`, in order, one session; the concatenated valid data.
pub fn decode_read_stream(token: Token, bytes: &[u8]) -> Result<Vec<u8>, i32> {
    let mut data = Vec::new();
    let mut first: Option<ReadChunk> = None;
    let mut count = 0usize;
    for (i, raw) in whole_chunks(bytes)?.enumerate() {
        let chunk = ReadChunk::decode(raw).map_err(|e| e.errno)?;
        let header = chunk.header;
        let consistent = first.as_ref().is_none_or(|f| {
            let (a, b) = (f.header, header);
            let (sa, sb, ta, tb) = (a.session_id, b.session_id, a.total_chunks, b.total_chunks);
            sa == sb && ta == tb
        });
        if { header.token } != token.raw() || header.chunk_index as usize != i || !consistent {
            return Err(EINVAL);
        }
        data.extend_from_slice(chunk.valid_data());
        first.get_or_insert(chunk);
        count += 1;
    }
    if let Some(f) = first
        && { f.header.total_chunks } as usize != count
    {
        return Err(EINVAL);
    }
    Ok(data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{DeviceInfo, ReadChunkHeader};

    fn scan_bytes(total: u32, session: u64) -> Vec<u8> {
        let mut out = vec![0u8; total as usize * CHUNK_SIZE];
        for i in 0..total {
            let dev = DeviceInfo {
                device_id: 0x8000 + i as u16,
                ..DeviceInfo::default()
            };
            let chunk = ScanChunk::new(i, total, session, &[dev]).unwrap();
            chunk.encode(&mut out[i as usize * CHUNK_SIZE..]).unwrap();
        }
        out
    }

    #[test]
    fn scan_stream_in_order_decodes() {
        let chunks = decode_scan_stream(&scan_bytes(3, 7)).unwrap();
        assert_eq!(chunks.len(), 3);
        assert_eq!(chunks[2].valid_devices()[0].device_id, 0x8002);
        assert_eq!(decode_scan_stream(&[]).unwrap().len(), 0);
    }

    #[test]
    fn scan_stream_rejects_partial_gaps_and_mixed_sessions() {
        let good = scan_bytes(3, 7);
        assert_eq!(decode_scan_stream(&good[..good.len() - 1]), Err(EINVAL));
        // Missing the last chunk.
        assert_eq!(decode_scan_stream(&good[..2 * CHUNK_SIZE]), Err(EINVAL));
        // Chunks swapped.
        let mut swapped = good.clone();
        swapped[..CHUNK_SIZE].copy_from_slice(&good[CHUNK_SIZE..2 * CHUNK_SIZE]);
        swapped[CHUNK_SIZE..2 * CHUNK_SIZE].copy_from_slice(&good[..CHUNK_SIZE]);
        assert_eq!(decode_scan_stream(&swapped), Err(EINVAL));
        // A chunk of another session.
        let mut mixed = good.clone();
        mixed[CHUNK_SIZE..2 * CHUNK_SIZE]
            .copy_from_slice(&scan_bytes(3, 8)[CHUNK_SIZE..2 * CHUNK_SIZE]);
        assert_eq!(decode_scan_stream(&mixed), Err(EINVAL));
    }

    #[test]
    fn read_stream_concatenates_and_checks_token() {
        let token = Token::new(0x8004).unwrap();
        let mut out = vec![0u8; 2 * CHUNK_SIZE];
        let first = [0xAAu8; 224];
        let h0 = ReadChunkHeader::new(0x8004, 0, 2, 224, 5);
        ReadChunk::encode_parts(&h0, &first, &mut out[..CHUNK_SIZE]).unwrap();
        let h1 = ReadChunkHeader::new(0x8004, 1, 2, 10, 5);
        ReadChunk::encode_parts(&h1, &[0xBB; 10], &mut out[CHUNK_SIZE..]).unwrap();
        let data = decode_read_stream(token, &out).unwrap();
        assert_eq!(data.len(), 234);
        assert_eq!(data[223], 0xAA);
        assert_eq!(data[224], 0xBB);
        assert_eq!(
            decode_read_stream(Token::new(0x8005).unwrap(), &out),
            Err(EINVAL)
        );
        assert_eq!(decode_read_stream(token, &out[..CHUNK_SIZE]), Err(EINVAL));
    }
}
