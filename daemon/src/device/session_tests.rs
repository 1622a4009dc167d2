//! Scan and read sessions over the real table geometry.

use syscall::error::{EINVAL, Error};

use super::*;
use crate::wire::{
    CHUNK_SIZE, DeviceState, QUARANTINED_TOKENS, READ_CHUNK_DATA, ReadChunk, SCAN_CHUNK_COUNT,
    ScanChunk, Token,
};

fn booted_table() -> DeviceTable {
    let mut table = DeviceTable::default();
    table.bring_up(10, |t| Ok(u32::from(t.raw())));
    table
}

fn scan(id: u64) -> ScanSession {
    ScanSession::new(id, booted_table().snapshot()).unwrap()
}

#[test]
fn scan_of_108_devices_is_22_chunks_of_5_then_3() {
    let mut session = scan(7);
    assert_eq!(session.total_chunks(), 22);
    assert_eq!(SCAN_CHUNK_COUNT, 22);
    let start = session.start_reply();
    assert_eq!(
        (start.session_id, start.total_chunks, start.total_items),
        (7, 22, 108)
    );

    let mut seen = Vec::new();
    for index in 0..22 {
        let chunk = session.chunk(index).unwrap();
        let header = chunk.header;
        let expected = if index == 21 { 3 } else { 5 };
        assert_eq!({ header.chunk_index }, index);
        assert_eq!({ header.total_chunks }, 22);
        assert_eq!({ header.devices_in_chunk }, expected);
        assert_eq!({ header.chunk_size }, 32 + 40 * expected);
        assert_eq!({ header.session_id }, 7);
        seen.extend(chunk.valid_devices().iter().copied());
    }
    let tokens: Vec<u16> = seen.iter().map(|d| d.device_id).collect();
    let all: Vec<u16> = Token::all().map(Token::raw).collect();
    assert_eq!(tokens, all, "every token once, ascending");
    let quarantined: Vec<u16> = seen
        .iter()
        .filter(|d| d.is_quarantined && d.state == DeviceState::Quarantined)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(quarantined, QUARANTINED_TOKENS);
    assert!(
        seen.iter()
            .filter(|d| !d.is_quarantined)
            .all(|d| d.state == DeviceState::Safe)
    );
}

#[test]
fn scan_chunk_after_the_end_is_einval() {
    let mut session = scan(1);
    assert_eq!(session.chunk(22).map(|_| ()), Err(Error::new(EINVAL)));
    assert_eq!(session.chunk(u32::MAX).map(|_| ()), Err(Error::new(EINVAL)));
    let mut out = [0u8; 256];
    assert_eq!(session.write_chunk(22, &mut out), Err(Error::new(EINVAL)));
    assert_eq!(session.summary().chunks_delivered, 0);
}

#[test]
fn sequential_chunks_then_none() {
    let mut session = scan(2);
    for index in 0..22 {
        assert_eq!(
            session.next_chunk().map(|c| { c.header.chunk_index }),
            Some(index)
        );
    }
    assert!(session.is_finished());
    assert_eq!(session.next_chunk(), None);
    assert_eq!(session.summary().chunks_delivered, 22);
}

#[test]
fn scan_file_reads_whole_chunks_and_zero_at_end() {
    let mut reference = scan(3);
    let mut session = scan(3);
    assert_eq!(session.read(&mut [0u8; 255]), Err(Error::new(EINVAL)));

    // 1000 bytes hold 3 whole chunks: 7 reads of 3, then one of 1.
    let mut buf = vec![0u8; 1000];
    let mut stream = Vec::new();
    loop {
        let n = session.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert_eq!(n % CHUNK_SIZE, 0);
        assert!(n <= 3 * CHUNK_SIZE);
        stream.extend_from_slice(&buf[..n]);
    }
    assert_eq!(stream.len(), 22 * CHUNK_SIZE);
    assert_eq!(session.read(&mut buf), Ok(0), "stays at end");
    for (index, raw) in stream.chunks_exact(CHUNK_SIZE).enumerate() {
        let expected = reference.chunk(index as u32).unwrap();
        assert_eq!(ScanChunk::decode(raw), Ok(expected));
        let mut direct = [0u8; 256];
        reference.write_chunk(index as u32, &mut direct).unwrap();
        assert_eq!(raw, direct.as_slice());
    }

    // One big buffer takes everything in one read.
    let mut whole = scan(4);
    let mut big = vec![0u8; 22 * CHUNK_SIZE + 100];
    assert_eq!(whole.read(&mut big), Ok(22 * CHUNK_SIZE));
    assert_eq!(whole.read(&mut big), Ok(0));
}

#[test]
fn summary_counts_distinct_chunks() {
    let mut session = scan(5);
    session.chunk(3).unwrap();
    session.chunk(3).unwrap();
    session.chunk(21).unwrap();
    let summary = session.summary();
    assert_eq!(
        (
            summary.session_id,
            summary.chunks_delivered,
            summary.total_chunks
        ),
        (5, 2, 22)
    );
}

#[test]
fn scan_snapshot_is_frozen_and_bounded() {
    let mut table = booted_table();
    let mut session = ScanSession::new(9, table.snapshot()).unwrap();
    table.thermal_mut().update(120);
    let first = session.chunk(0).unwrap();
    assert_eq!(first.devices[0].state, DeviceState::Safe, "taken at start");
    let mut too_many = table.snapshot();
    too_many.push(too_many[0]);
    assert_eq!(
        ScanSession::new(1, too_many).map(|_| ()),
        Err(Error::new(EINVAL))
    );
    let mut empty = ScanSession::new(1, Vec::new()).unwrap();
    assert_eq!(empty.total_chunks(), 0);
    assert_eq!(empty.read(&mut [0u8; 256]), Ok(0));
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

#[test]
fn read_session_chunks_the_data() {
    let token = Token::new(0x8042).unwrap();
    let data = pattern(500);
    let mut session = ReadSession::new(11, token, data.clone()).unwrap();
    assert_eq!(session.total_chunks(), 3);
    let start = session.start_reply();
    assert_eq!(
        (start.session_id, start.total_chunks, start.total_items),
        (11, 3, 500)
    );
    let mut rebuilt = Vec::new();
    for (index, expected_len) in [(0u32, 224u32), (1, 224), (2, 52)] {
        let chunk = session.chunk(index).unwrap();
        let h = chunk.header;
        assert_eq!({ h.token }, 0x8042);
        assert_eq!({ h.chunk_index }, index as u16);
        assert_eq!({ h.total_chunks }, 3);
        assert_eq!({ h.data_offset }, index * 224);
        assert_eq!({ h.chunk_size }, expected_len);
        assert_eq!({ h.session_id }, 11);
        rebuilt.extend_from_slice(chunk.valid_data());
    }
    assert_eq!(rebuilt, data);
    assert_eq!(session.chunk(3).map(|_| ()), Err(Error::new(EINVAL)));
    assert_eq!(session.summary().chunks_delivered, 3);
}

#[test]
fn device_file_reads() {
    let token = Token::new(0x8001).unwrap();
    let data = pattern(3 * READ_CHUNK_DATA);
    let mut session = ReadSession::new(12, token, data.clone()).unwrap();
    assert_eq!(session.read(&mut [0u8; 100]), Err(Error::new(EINVAL)));
    let mut buf = [0u8; 300]; // one whole chunk fits
    let mut rebuilt = Vec::new();
    for _ in 0..3 {
        assert_eq!(session.read(&mut buf), Ok(256));
        let chunk = ReadChunk::decode(&buf[..256]).unwrap();
        rebuilt.extend_from_slice(chunk.valid_data());
    }
    assert_eq!(session.read(&mut buf), Ok(0));
    assert!(session.is_finished());
    assert_eq!(rebuilt, data);
}

#[test]
fn read_session_bounds() {
    let token = Token::FIRST;
    assert_eq!(
        ReadSession::new(1, token, vec![0; MAX_DEVICE_DATA + 1]).map(|_| ()),
        Err(Error::new(EINVAL))
    );
    let mut max = ReadSession::new(1, token, vec![1; MAX_DEVICE_DATA]).unwrap();
    let last = max.total_chunks() - 1;
    assert_eq!(max.total_chunks(), 293);
    assert_eq!(
        { max.chunk(last).unwrap().header.chunk_size },
        (MAX_DEVICE_DATA % 224) as u32
    );
    let mut empty = ReadSession::new(2, token, Vec::new()).unwrap();
    assert_eq!(empty.total_chunks(), 0);
    assert_eq!(empty.read(&mut [0u8; 256]), Ok(0));
    assert_eq!(empty.chunk(0).map(|_| ()), Err(Error::new(EINVAL)));
}

#[test]
fn session_ids_are_unique_across_kinds() {
    let mut ids = SessionIds::new();
    let table = booted_table();
    let a = ScanSession::new(ids.allocate().unwrap(), table.snapshot()).unwrap();
    let b = ReadSession::new(ids.allocate().unwrap(), Token::FIRST, vec![1]).unwrap();
    let c = ScanSession::new(ids.allocate().unwrap(), table.snapshot()).unwrap();
    assert_ne!(a.id(), b.id());
    assert_ne!(b.id(), c.id());
    assert_ne!(a.id(), c.id());
}
