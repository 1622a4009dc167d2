//! The chunk paths allocate nothing: READ_CHUNK and SCAN_CHUNK by `call`
//! (with a full-chunk payload and with a short one), by a `control`
//! write/read cycle, and a `device/<token>` read, each from its first chunk
//! on. A counting allocator armed on this thread only proves it, so this
//! binary holds these tests alone.

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::scheme::oplog::LOG_CAPACITY;
use dsmil::wire::{CHUNK_SIZE, ControlRequest, Op, SessionStart};
use dsmil_tests::counting_alloc::{Counting, allocations_in};
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::EINVAL;
use syscall::flag::{O_RDONLY, O_RDWR};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn harness() -> SqeHarness<DsmilScheme> {
    let sim = SimulatedDsmil::new(40);
    let hw = sim
        .hardware_timed_by(ManualClock::new())
        .clock(Box::new(ManualClock::new()));
    SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), hw))
}

fn start(h: &mut SqeHarness<DsmilScheme>, ctl: usize, metadata: &[u64]) -> SessionStart {
    let mut reply = [0u8; CHUNK_SIZE];
    let n = h.call(ctl, &mut reply, metadata).expect("session start");
    SessionStart::decode(&reply[..n]).expect("start reply")
}

/// More requests than the operation log holds, so its ring wraps inside the
/// counted window too.
const ROUNDS: usize = LOG_CAPACITY * 2;

#[test]
fn read_and_scan_chunks_by_call_allocate_nothing() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let read = start(&mut h, ctl, &[Op::ReadStart.raw().into(), 0x8001]);
    let scan = start(&mut h, ctl, &[Op::ScanStart.raw().into()]);
    let mut payload = [0u8; CHUNK_SIZE];
    let mut short = [0u8; CHUNK_SIZE - 1];
    let made = allocations_in(|| {
        for i in 0..ROUNDS {
            let index = (i as u64) % u64::from(read.total_chunks);
            let meta = [Op::ReadChunk.raw().into(), index, read.session_id];
            assert_eq!(h.call(ctl, &mut payload, &meta), Ok(CHUNK_SIZE));
            let index = (i as u64) % u64::from(scan.total_chunks);
            let meta = [Op::ScanChunk.raw().into(), index, scan.session_id];
            assert_eq!(h.call(ctl, &mut payload, &meta), Ok(CHUNK_SIZE));
            // A payload too small for the reply: refused, still without a heap.
            assert_eq!(h.call(ctl, &mut short, &meta), Err(EINVAL));
        }
    });
    assert_eq!(made, 0, "allocations on the call chunk path");
}

#[test]
fn chunks_by_control_cycle_and_device_read_allocate_nothing() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let read = start(&mut h, ctl, &[Op::ReadStart.raw().into(), 0x8001]);
    let mut reply = [0u8; CHUNK_SIZE];
    let dev = h.open("device/0x8001", O_RDONLY).expect("device");
    let made = allocations_in(|| {
        for i in 0..ROUNDS {
            let index = (i as u32) % read.total_chunks;
            let req = ControlRequest::new(Op::ReadChunk, index, read.session_id);
            assert_eq!(h.write(ctl, &req.to_bytes()), Ok(ControlRequest::SIZE));
            assert_eq!(h.read(ctl, &mut reply), Ok(CHUNK_SIZE));
        }
        // The device file: every chunk, then end of file.
        while h.read(dev, &mut reply).expect("device read") != 0 {}
    });
    assert_eq!(made, 0, "allocations on the write/read chunk path");
}
