//! One hostile user holding everything its bounds allow costs dsmild no more
//! memory than the README's limits table says (measured by a counting
//! allocator around the scheme, so this binary holds this one test only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::scheme::clients::{MAX_HANDLE_BYTES, MAX_SESSION_BYTES};
use dsmil::wire::{ControlRequest, Op};
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::EMFILE;
use syscall::flag::{O_RDONLY, O_RDWR};

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator and only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout as asked.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

#[test]
fn a_user_holding_everything_stays_under_the_documented_bound() {
    let sim = SimulatedDsmil::new(45);
    let clock = ManualClock::new();
    let hw = sim.hardware().clock(Box::new(clock.clone()));
    let config = dsmil::Config {
        // A bucket big enough that every read session below gets its SMI.
        smi_per_second: 10_000,
        ..dsmil::Config::default()
    };
    let (handles_cap, sessions_cap) = (
        config.handles_per_uid as usize,
        config.sessions_per_uid as usize,
    );
    let mut h = SqeHarness::new(DsmilScheme::new(config, hw));
    // Warm up the scheme's shared structures (log ring, stats) as root.
    for _ in 0..100 {
        let fd = h.open("devices", O_RDONLY).expect("devices");
        let mut buf = [0u8; 64];
        let _ = h.read(fd, &mut buf);
        h.close(fd);
    }
    let before = live();

    h.as_user(1000, 1000);
    let mut held = Vec::new();
    // Sessions first, each its most expensive kind: scans (the whole table)
    // and reads (value, record, register block).
    let mut sessions = 0;
    loop {
        let path = if sessions % 2 == 0 {
            "scan"
        } else {
            "device/0x8001"
        };
        match h.open(path, O_RDONLY) {
            Ok(fd) => {
                held.push(fd);
                sessions += 1;
            }
            Err(e) => {
                assert_eq!(e, EMFILE, "the session bound answers EMFILE");
                break;
            }
        }
    }
    assert_eq!(sessions, sessions_cap);
    // Then handles, each the most expensive one a handle can be: a control
    // channel pinning a whole-table reply, or an events reader.
    let whole = ControlRequest::new(Op::ScanDevices, 0, 0).to_bytes();
    loop {
        let control = held.len() % 2 == 0;
        let opened = if control {
            h.open("control", O_RDWR)
        } else {
            h.open("events", O_RDONLY)
        };
        match opened {
            Ok(fd) => {
                if control {
                    h.write(fd, &whole).expect("whole table");
                }
                held.push(fd);
            }
            Err(e) => {
                assert_eq!(e, EMFILE, "the handle bound answers EMFILE");
                break;
            }
        }
    }
    assert_eq!(held.len(), handles_cap);
    // Fill every reader's queue: refused accesses are events.
    for _ in 0..dsmil::scheme::events::EVENT_QUEUE_DEPTH {
        let _ = h.open("device/0x8009", O_RDONLY);
    }
    let grown = live() - before;
    let bound = (handles_cap * MAX_HANDLE_BYTES + sessions_cap * MAX_SESSION_BYTES) as isize;
    eprintln!(
        "one user: {grown} bytes for {handles_cap} handles and {sessions_cap} sessions (bound {bound})"
    );
    assert!(grown > 0, "the measure sees the handles");
    assert!(grown <= bound, "{grown} bytes > documented {bound}");

    for fd in held {
        h.close(fd);
    }
    let after = live() - before;
    assert!(
        after <= 64 * 1024,
        "closing gives it back (left {after} bytes)"
    );
}
