//! What a `control` `call` leaves in the caller's payload: a fixed-size reply
//! encoded into a whole-chunk payload is byte-for-byte the write/read reply and
//! touches nothing past it; a payload too small for the reply is `EINVAL`
//! after the request ran (the chunk counts as delivered, as it always has); a
//! refused request leaves the payload as it was; a whole-table reply needs a
//! payload its size.

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::wire::{
    CHUNK_SIZE, ControlRequest, DEVICE_COUNT, DeviceInfo, Op, SessionStart, SessionSummary,
};
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::EINVAL;
use syscall::flag::O_RDWR;

const SENTINEL: u8 = 0xEE;

fn harness() -> SqeHarness<DsmilScheme> {
    let sim = SimulatedDsmil::new(40);
    let hw = sim
        .hardware_timed_by(ManualClock::new())
        .clock(Box::new(ManualClock::new()));
    SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), hw))
}

fn read_start(h: &mut SqeHarness<DsmilScheme>, ctl: usize) -> SessionStart {
    let mut reply = [0u8; CHUNK_SIZE];
    let n = h
        .call(ctl, &mut reply, &[Op::ReadStart.raw().into(), 0x8001])
        .expect("READ_START");
    SessionStart::decode(&reply[..n]).expect("start reply")
}

#[test]
fn a_chunk_by_call_is_the_cycle_reply_and_nothing_past_it() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let start = read_start(&mut h, ctl);
    let mut big = vec![SENTINEL; 4 * CHUNK_SIZE];
    let meta = [Op::ReadChunk.raw().into(), 1, start.session_id];
    assert_eq!(h.call(ctl, &mut big, &meta), Ok(CHUNK_SIZE));
    assert!(big[CHUNK_SIZE..].iter().all(|b| *b == SENTINEL));

    let req = ControlRequest::new(Op::ReadChunk, 1, start.session_id);
    assert_eq!(h.write(ctl, &req.to_bytes()), Ok(ControlRequest::SIZE));
    let mut cycle = [0u8; CHUNK_SIZE];
    assert_eq!(h.read(ctl, &mut cycle), Ok(CHUNK_SIZE));
    assert_eq!(&big[..CHUNK_SIZE], &cycle[..]);
}

#[test]
fn a_short_payload_is_einval_after_the_chunk_was_served() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let start = read_start(&mut h, ctl);
    let mut short = [SENTINEL; CHUNK_SIZE - 1];
    let meta = [Op::ReadChunk.raw().into(), 2, start.session_id];
    assert_eq!(h.call(ctl, &mut short, &meta), Err(EINVAL));
    assert!(short.iter().all(|b| *b == SENTINEL));

    let mut reply = [0u8; CHUNK_SIZE];
    let done = [Op::ReadComplete.raw().into(), 0, start.session_id];
    let n = h.call(ctl, &mut reply, &done).expect("READ_COMPLETE");
    let summary = SessionSummary::decode(&reply[..n]).expect("summary");
    assert_eq!(summary.chunks_delivered, 1);
    assert_eq!(summary.total_chunks, start.total_chunks);
}

#[test]
fn a_refused_request_leaves_the_payload_alone() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let start = read_start(&mut h, ctl);
    let mut payload = [SENTINEL; CHUNK_SIZE];
    let wrong_session = [Op::ReadChunk.raw().into(), 0, start.session_id + 1];
    assert_eq!(h.call(ctl, &mut payload, &wrong_session), Err(EINVAL));
    let past_end = [
        Op::ReadChunk.raw().into(),
        u64::from(start.total_chunks),
        start.session_id,
    ];
    assert_eq!(h.call(ctl, &mut payload, &past_end), Err(EINVAL));
    assert!(payload.iter().all(|b| *b == SENTINEL));
}

#[test]
fn the_whole_table_needs_a_payload_its_size() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let table = DEVICE_COUNT * DeviceInfo::SIZE;
    let meta = [Op::ScanDevices.raw().into()];
    let mut one_chunk = [0u8; CHUNK_SIZE];
    assert_eq!(h.call(ctl, &mut one_chunk, &meta), Err(EINVAL));
    let mut big = vec![0u8; table + CHUNK_SIZE];
    assert_eq!(h.call(ctl, &mut big, &meta), Ok(table));
    let first = DeviceInfo::decode(&big[..DeviceInfo::SIZE]).expect("record");
    assert_eq!({ first.device_id }, 0x8000);
}
