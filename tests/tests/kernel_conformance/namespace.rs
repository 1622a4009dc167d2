//! The null namespace a daemon enters with `setrens(0, 0)` (redox-real.md §7.2
//! step 8): kernel `src/syscall/process.rs` (`setrens`), `src/scheme/mod.rs`
//! (`SchemeList::new_null`: only `memory`, `thisproc` and `pipe` in it) and
//! `src/syscall/fs.rs` (`open`: a name the namespace lacks is ENODEV).

use libredox::call;
use libredox::error::Error;
use libredox::flag::{O_CLOEXEC, O_RDONLY, O_RDWR};
use redox_host::{Cred, Kernel};
use syscall::error::{ENODEV, EPERM};

fn errno<T>(r: libredox::error::Result<T>) -> Option<i32> {
    r.err().map(|e: Error| e.errno())
}

/// `src/syscall/fs.rs` `open` + `src/scheme/mod.rs` `new_null`: after
/// `setrens(0, 0)` a path outside `memory` fails with ENODEV, even for a scheme
/// the process could open a moment before.
#[test]
fn opens_by_path_outside_memory_fail_with_enodev() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("daemon", Cred::ROOT);
    let time = "/scheme/time/4";
    let before = call::open(time, O_RDONLY | O_CLOEXEC, 0).expect("time before setrens");
    call::setrens(0, 0).expect("entering the null namespace is always allowed");
    assert_eq!(
        errno(call::open(time, O_RDONLY | O_CLOEXEC, 0)),
        Some(ENODEV)
    );
    assert_eq!(
        errno(call::open("/scheme/irq", O_RDONLY | O_CLOEXEC, 0)),
        Some(ENODEV)
    );
    assert_eq!(
        errno(call::open(
            "/scheme/namespace/scheme-creation-cap",
            O_CLOEXEC,
            0
        )),
        Some(ENODEV),
        "no new scheme sockets either"
    );
    let mut ts = [0u8; 16];
    assert_eq!(call::read(before, &mut ts), Ok(16), "old descriptors work");
    call::close(before).expect("close");
}

/// `src/scheme/mod.rs` `new_null`: `memory` stays in the null namespace, and a
/// scheme root opened before still resolves `openat` (upstream `common::init`).
#[test]
fn memory_and_roots_opened_before_keep_working() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("daemon", Cred::ROOT);
    let root = call::open("/scheme/memory/scheme-root", O_RDWR | O_CLOEXEC, 0).expect("root");
    call::setrens(0, 0).expect("setrens");
    let page = call::openat(root, "zeroed@wb?phys_contiguous", O_RDWR | O_CLOEXEC, 0)
        .expect("openat on a root opened before");
    call::close(page).expect("close");
    let by_path = call::open("/scheme/memory/zeroed", O_RDWR | O_CLOEXEC, 0)
        .expect("memory is in the null namespace");
    call::close(by_path).expect("close");
    call::close(root).expect("close");
}

/// `src/syscall/process.rs` `setrens`: the null namespace cannot be left
/// (EPERM); entering it again, or -1 ("leave as is"), is fine.
#[test]
fn the_null_namespace_cannot_be_left() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("daemon", Cred::ROOT);
    call::setrens(0, 0).expect("setrens");
    assert_eq!(call::setrens(0, 0), Ok(0));
    assert_eq!(call::setrens(usize::MAX, usize::MAX), Ok(0));
    assert_eq!(errno(call::setrens(1, 1)), Some(EPERM));
    assert_eq!(errno(call::setrens(0, 1)), Some(EPERM));
    assert_eq!(
        errno(call::open("/scheme/time/4", O_RDONLY | O_CLOEXEC, 0)),
        Some(ENODEV),
        "still in the null namespace"
    );
}

/// The namespace is per process: another process is unaffected.
#[test]
fn setrens_is_per_process() {
    let k = Kernel::boot();
    let (_a, _ga) = k.enter("daemon", Cred::ROOT);
    call::setrens(0, 0).expect("setrens");
    let k2 = k.clone();
    let other = std::thread::spawn(move || {
        let (_b, _gb) = k2.enter("client", Cred::ROOT);
        call::open("/scheme/time/4", O_RDONLY | O_CLOEXEC, 0).map(call::close)
    });
    assert!(matches!(other.join().expect("join"), Ok(Ok(_))));
}
