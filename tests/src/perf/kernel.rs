//! `perf -- kernel`: the cost of the mocked kernel's scheme IPC.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use dsmil::scheme::DsmilScheme;
use libredox::call;
use libredox::flag::O_RDWR;
use redox_host::{Cred, Kernel, boot};
use redox_scheme::scheme::SchemeSync;
use syscall::CallFlags;

use super::{fail, must, ns_per_op, report};
use crate::sqe::SqeHarness;

const GET_VERSION: u64 = 1;

/// Runs the suite.
pub fn run() {
    sqe_dispatch();
    roundtrip();
    roundtrip_blocking_loop();
}

fn sqe_dispatch() {
    let mut h = SqeHarness::new(DsmilScheme::new(
        dsmil::Config::default(),
        dsmil::Hardware::minimal(40),
    ));
    let Ok(ctl) = h.open("control", syscall::flag::O_RDWR) else {
        fail("sqe_dispatch_over_direct_call: opening control");
    };
    let ctx = h.ctx();
    let mut buf = [0u8; 64];
    let mut direct = 0.0;
    let mut sqe = 0.0;
    // Interleave the two so drifting machine load hits both alike.
    for _ in 0..5 {
        direct += ns_per_op(3, 20_000, || {
            black_box(must(
                "direct call",
                h.scheme.call(ctl, &mut buf, &[GET_VERSION], &ctx),
            ));
        });
        sqe += ns_per_op(3, 20_000, || {
            black_box(must("sqe call", h.call(ctl, &mut buf, &[GET_VERSION])));
        });
    }
    report("direct_call_ns", direct / 5.0);
    report("sqe_dispatch_ns", sqe / 5.0);
    report("sqe_dispatch_over_direct_call", sqe / direct);
}

/// The host's floor for one handoff and back between two threads.
fn spin_pingpong_ns(iters: usize) -> f64 {
    let flag = Arc::new(AtomicU32::new(0));
    let peer = flag.clone();
    let t = std::thread::spawn(move || {
        for _ in 0..iters {
            while peer.load(Ordering::Acquire) != 1 {
                std::hint::spin_loop();
            }
            peer.store(0, Ordering::Release);
        }
    });
    let ns = ns_per_op(1, iters, || {
        flag.store(1, Ordering::Release);
        while flag.load(Ordering::Acquire) != 0 {
            std::hint::spin_loop();
        }
    });
    let _ = t.join();
    ns
}

fn roundtrip() {
    let kernel = Kernel::boot();
    let daemon = boot::dsmild(
        &kernel,
        dsmil::Config::default(),
        dsmil::Hardware::minimal(40),
    );
    let (_p, _g) = kernel.enter("perf-client", Cred::USER);
    let Ok(ctl) = call::open("/scheme/dsmil/control", O_RDWR, 0) else {
        fail("roundtrip_over_spin_pingpong: opening control");
    };
    let mut buf = [0u8; 64];
    let mut rt = f64::INFINITY;
    let mut pp = f64::INFINITY;
    for _ in 0..5 {
        rt = rt.min(ns_per_op(1, 20_000, || {
            black_box(must(
                "call",
                call::call_ro(ctl, &mut buf, CallFlags::empty(), &[GET_VERSION]),
            ));
        }));
        pp = pp.min(spin_pingpong_ns(20_000));
    }
    let _ = call::close(ctl);
    drop(daemon);
    report("roundtrip_ns", rt);
    report("spin_pingpong_ns", pp);
    report("roundtrip_over_spin_pingpong", rt / pp);
}

/// The same round trip against a blocking-loop daemon (no event queue), to show what
/// the event-queue path adds.
fn roundtrip_blocking_loop() {
    use std::sync::Mutex;
    let kernel = Kernel::boot();
    let log = Arc::new(Mutex::new(crate::probe::ProbeLog::default()));
    let l = log.clone();
    let t = kernel.spawn("probed", Cred::ROOT, move || {
        crate::probe::serve("probe", l)
    });
    kernel.wait_for_scheme("probe");
    let (_p, _g) = kernel.enter("perf-client", Cred::USER);
    let fd = call::open("/scheme/probe/x", O_RDWR, 0).expect("open");
    let mut buf = [0u8; 8];
    let mut rt = f64::INFINITY;
    for _ in 0..5 {
        rt = rt.min(ns_per_op(1, 20_000, || {
            black_box(must("read", call::read(fd, &mut buf)));
        }));
    }
    kernel.shutdown_scheme("probe");
    let _ = t.join();
    report("roundtrip_blocking_loop_ns", rt);
}
