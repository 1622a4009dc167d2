//! `perf -- dsmil`: what chunking costs in scheme `dsmil`.
//!
//! * `chunk_handler_over_memcpy` — one 256-byte chunk read (READ_CHUNK by
//!   `call`, the reply encoded into the caller's 256-byte payload) dispatched
//!   as an `Sqe` into the scheme, over a plain 256-byte `memcpy` (the same
//!   bytes the handler delivers; the run fails if the reply is not a whole
//!   chunk).
//! * `bulk_scan_speedup_over_chunk_cycles` — a whole scan as `scan` open + one
//!   bulk read + close, against SCAN_START + 22 × SCAN_CHUNK + SCAN_COMPLETE as
//!   control write/read cycles, both through the mocked kernel.
//! * `call_over_write_read_cycle` — one READ_CHUNK as a `call` over the same
//!   chunk as a write + read, through the mocked kernel.

use std::hint::black_box;

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::wire::{CHUNK_SIZE, ControlRequest, Op, SessionStart};
use libredox::call;
use libredox::flag::{O_RDONLY, O_RDWR};
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::{Cred, Kernel, boot};
use syscall::CallFlags;

use super::{fail, must, ns_per_op, report};
use crate::sqe::SqeHarness;

/// Runs the suite.
pub fn run() {
    chunk_handler();
    through_the_kernel();
}

fn chunk_handler() {
    let sim = SimulatedDsmil::new(40);
    let hw = sim
        .hardware_timed_by(ManualClock::new())
        .clock(Box::new(ManualClock::new()));
    let mut h = SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), hw));
    let Ok(ctl) = h.open("control", syscall::flag::O_RDWR) else {
        fail("chunk_handler_over_memcpy: opening control");
    };
    let mut reply = [0u8; CHUNK_SIZE];
    let n = must("READ_START", h.call(ctl, &mut reply, &[9, 0x8001]));
    let start = must("READ_START reply", SessionStart::decode(&reply[..n]));
    // Equal work: the handler must deliver a whole chunk, the bytes memcpy moves.
    let n = must(
        "READ_CHUNK",
        h.call(ctl, &mut reply, &[10, 1, start.session_id]),
    );
    if n != CHUNK_SIZE {
        fail("chunk_handler_over_memcpy: READ_CHUNK delivered a partial chunk");
    }
    let src = [0x5Au8; CHUNK_SIZE];
    let mut dst = [0u8; CHUNK_SIZE];
    let mut handler = f64::INFINITY;
    let mut memcpy = f64::INFINITY;
    for _ in 0..5 {
        handler = handler.min(ns_per_op(3, 20_000, || {
            let r = h.call(ctl, &mut reply, &[10, 1, start.session_id]);
            black_box(must("READ_CHUNK", r));
        }));
        memcpy = memcpy.min(ns_per_op(3, 20_000, || {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        }));
    }
    report("chunk_handler_ns", handler);
    report("memcpy_256_ns", memcpy);
    report("chunk_handler_over_memcpy", handler / memcpy.max(0.001));
}

fn cycle(ctl: usize, req: &ControlRequest, reply: &mut [u8]) -> usize {
    must("control write", call::write(ctl, &req.to_bytes()));
    must("control read", call::read(ctl, reply))
}

fn through_the_kernel() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(40);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("perf", Cred::USER);
    let Ok(ctl) = call::open("/scheme/dsmil/control", O_RDWR, 0) else {
        fail("bulk_scan_speedup_over_chunk_cycles: opening control");
    };
    let mut bulk_buf = vec![0u8; 32 * CHUNK_SIZE];
    let mut reply = [0u8; CHUNK_SIZE];

    let bulk_scan = || {
        let fd = must("open scan", call::open("/scheme/dsmil/scan", O_RDONLY, 0));
        black_box(must("bulk scan read", call::read(fd, &mut bulk_buf)));
        must("close scan", call::close(fd));
    };
    let mut bulk_scan = bulk_scan;
    let mut cycles = || {
        let n = cycle(ctl, &ControlRequest::new(Op::ScanStart, 0, 0), &mut reply);
        let start = must(
            "SCAN_START reply",
            SessionStart::decode(&reply[..n.min(SessionStart::SIZE)]),
        );
        for c in 0..start.total_chunks {
            let req = ControlRequest::new(Op::ScanChunk, c, start.session_id);
            black_box(cycle(ctl, &req, &mut reply));
        }
        let req = ControlRequest::new(Op::ScanComplete, 0, start.session_id);
        black_box(cycle(ctl, &req, &mut reply));
    };
    let mut bulk = f64::INFINITY;
    let mut chunked = f64::INFINITY;
    for _ in 0..5 {
        bulk = bulk.min(ns_per_op(3, 40, &mut bulk_scan));
        chunked = chunked.min(ns_per_op(3, 40, &mut cycles));
    }
    report("bulk_scan_ns", bulk);
    report("chunk_cycle_scan_ns", chunked);
    report(
        "bulk_scan_speedup_over_chunk_cycles",
        chunked / bulk.max(0.001),
    );

    // One read chunk: by call vs by write + read, on a read session.
    let n = must(
        "READ_START",
        call::call_ro(ctl, &mut reply, CallFlags::empty(), &[9, 0x8001]),
    );
    let start = must(
        "READ_START reply",
        SessionStart::decode(&reply[..n.min(SessionStart::SIZE)]),
    );
    let chunk = ControlRequest::new(Op::ReadChunk, 1, start.session_id);
    let mut by_call = f64::INFINITY;
    let mut by_cycle = f64::INFINITY;
    for _ in 0..5 {
        by_call = by_call.min(ns_per_op(3, 1_000, || {
            black_box(must(
                "READ_CHUNK by call",
                call::call_ro(
                    ctl,
                    &mut reply,
                    CallFlags::empty(),
                    &[10, 1, start.session_id],
                ),
            ));
        }));
        by_cycle = by_cycle.min(ns_per_op(3, 1_000, || {
            black_box(cycle(ctl, &chunk, &mut reply));
        }));
    }
    report("chunk_by_call_ns", by_call);
    report("chunk_by_write_read_ns", by_cycle);
    report("call_over_write_read_cycle", by_call / by_cycle.max(0.001));
    let _ = call::close(ctl);
}
