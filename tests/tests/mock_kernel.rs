//! Tests of the mocked kernel itself: descriptions and close messages, events reaching
//! `redox_event` queues, interrupt vectors, memory, permissions, flag translation.

use std::sync::{Arc, Mutex};

use dsmil_tests::probe::{self, ProbeLog};
use event::{EventFlags, EventQueue};
use libredox::call::{self, MmapArgs};
use libredox::flag;
use redox_host::{Cred, Kernel};
use syscall::CallFlags;
use syscall::error::{EACCES, EBADF, EEXIST, EINTR, ENODEV, ENOENT};

struct Probe {
    kernel: Arc<Kernel>,
    log: Arc<Mutex<ProbeLog>>,
    thread: Option<std::thread::JoinHandle<syscall::Result<()>>>,
}

impl Probe {
    fn start() -> Probe {
        let kernel = Kernel::boot();
        let log = Arc::new(Mutex::new(ProbeLog::default()));
        let l = log.clone();
        let thread = kernel.spawn("probed", Cred::ROOT, move || probe::serve("probe", l));
        kernel.wait_for_scheme("probe");
        Probe {
            kernel,
            log,
            thread: Some(thread),
        }
    }

    fn log(&self) -> std::sync::MutexGuard<'_, ProbeLog> {
        self.log.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A request after `fd`'s messages: the socket is FIFO, so once it is answered the
    /// probe has handled everything sent before it. Returns the close count it saw.
    fn barrier(&self) -> u64 {
        let fd = call::open("/scheme/probe/barrier", flag::O_RDONLY, 0).expect("open barrier");
        let mut b = [0u8; 8];
        assert_eq!(call::read(fd, &mut b), Ok(8));
        call::close(fd).expect("close barrier");
        u64::from_le_bytes(b)
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.kernel.shutdown_scheme("probe");
        if let Some(t) = self.thread.take() {
            let r = t.join();
            if !std::thread::panicking() {
                assert!(matches!(r, Ok(Ok(()))), "probe daemon ended badly: {r:?}");
            }
        }
    }
}

#[test]
fn close_message_only_on_last_close_of_a_description() {
    let p = Probe::start();
    let (_me, _g) = p.kernel.enter("client", Cred::ROOT);
    let fd = call::open("/scheme/probe/file", flag::O_RDONLY, 0).expect("open");
    let dup = call::dup(fd, b"").expect("dup");
    let before = p.barrier();
    call::close(fd).expect("close first");
    assert_eq!(
        p.barrier(),
        before + 1,
        "only the barrier's own close arrived"
    );
    let number = p
        .log()
        .opens
        .iter()
        .position(|o| o.0 == "file")
        .map(|i| i + 1);
    assert!(!p.log().closes.contains(&number.expect("opened")));
    call::close(dup).expect("close dup");
    p.barrier();
    assert!(
        p.log().closes.contains(&number.expect("opened")),
        "last close sends CloseMsg"
    );
    assert_eq!(call::close(dup), Err(libredox::error::Error::new(EBADF)));
}

#[test]
fn fevent_readiness_reaches_a_redox_event_queue() {
    let p = Probe::start();
    let k = p.kernel.clone();
    let (_me, _g) = k.enter("listener", Cred::ROOT);
    let fd = call::open("/scheme/probe/bell", flag::O_RDWR, 0).expect("open bell");
    let queue = EventQueue::<usize>::new().expect("event queue");
    queue
        .subscribe(fd, 42, EventFlags::READ)
        .expect("subscribe");
    // Another process rings the bell; the scheme answers with post_fevent.
    let ringer = k.spawn("ringer", Cred::ROOT, || {
        let fd = call::open("/scheme/probe/bell", flag::O_RDWR, 0)?;
        call::write(fd, b"ring")?;
        call::close(fd)
    });
    let ev = queue.next_event().expect("event");
    assert_eq!(ev.user_data, 42);
    assert_eq!(ev.fd, fd);
    assert!(ev.flags.contains(EventFlags::READ));
    assert!(matches!(ringer.join(), Ok(Ok(()))));
    // Subscribing to a file that is already ready reports it at once.
    let q2 = EventQueue::<usize>::new().expect("event queue");
    q2.subscribe(fd, 7, EventFlags::READ)
        .expect("subscribe again");
    assert_eq!(q2.next_event().expect("event").user_data, 7);
}

#[test]
fn scheme_sees_redox_flags_and_caller_credentials() {
    let p = Probe::start();
    let (me, _g) = p.kernel.enter("user-client", Cred::USER);
    let fd = call::open(
        "/scheme/probe/flags",
        flag::O_RDWR | flag::O_CREAT | flag::O_NONBLOCK | flag::O_CLOEXEC,
        0o640,
    )
    .expect("open");
    call::fcntl(fd, syscall::F_SETFL, flag::O_APPEND as usize).expect("setfl");
    p.barrier();
    let log = p.log();
    let (path, flags, uid, gid, pid) = log
        .opens
        .iter()
        .find(|o| o.0 == "flags")
        .cloned()
        .expect("seen");
    assert_eq!(path, "flags");
    let want = syscall::O_RDWR | syscall::O_CREAT | syscall::O_NONBLOCK;
    assert_eq!(
        flags & want,
        want,
        "Redox values reach the scheme: {flags:#x}"
    );
    assert_eq!(flags & 0xFFFF, 0o640, "mode in the low bits");
    assert_eq!((uid, gid, pid), (1000, 1000, me.pid));
    assert!(
        log.fcntls.iter().any(|&(_, f)| f & syscall::O_APPEND != 0),
        "F_SETFL forwarded"
    );
    // F_GETFL goes to the probe too: let it log (it takes this lock) meanwhile.
    drop(log);
    assert_eq!(
        call::fcntl(fd, syscall::F_GETFL, 0).map(|f| f as i32 & flag::O_APPEND),
        Ok(flag::O_APPEND)
    );
}

#[test]
fn unknown_scheme_and_null_namespace() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("c", Cred::ROOT);
    assert_eq!(
        call::open("/scheme/nope/x", flag::O_RDONLY, 0),
        Err(libredox::error::Error::new(ENOENT))
    );
    let t = call::open("/scheme/time/4", flag::O_RDONLY, 0).expect("time");
    call::setrens(0, 0).expect("setrens");
    assert_eq!(
        call::open("/scheme/time/4", flag::O_RDONLY, 0),
        Err(libredox::error::Error::new(ENODEV)),
        "no new opens in the null namespace"
    );
    let mut ts = [0u8; 16];
    assert_eq!(
        call::read(t, &mut ts),
        Ok(16),
        "open descriptors keep working"
    );
}

#[test]
fn vectors_are_exclusive_and_never_returned_on_close() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("driver", Cred::ROOT);
    let create = flag::O_RDWR | flag::O_CREAT;
    let a = call::open("/scheme/irq/cpu-01/18", create, 0).expect("reserve");
    assert_eq!(
        call::open("/scheme/irq/cpu-01/18", create, 0),
        Err(libredox::error::Error::new(EEXIST))
    );
    assert!(k.irq().is_reserved(1, 18));
    call::close(a).expect("close");
    assert!(
        k.irq().is_reserved(1, 18),
        "the x86 kernel never releases it"
    );
    assert_eq!(
        call::open("/scheme/irq/cpu-01/18", create, 0),
        Err(libredox::error::Error::new(EEXIST)),
        "reopening after close"
    );
    let again = call::open("/scheme/irq/cpu-01/19", create, 0).expect("another");

    // Delivery: a count and an event, acknowledged by writing the count back.
    let queue = EventQueue::<usize>::new().expect("queue");
    queue
        .subscribe(again, 5, EventFlags::READ)
        .expect("subscribe");
    assert!(k.irq().raise(1, 19));
    assert_eq!(queue.next_event().expect("irq event").user_data, 5);
    let mut count = [0u8; 8];
    assert_eq!(call::read(again, &mut count), Ok(8));
    assert_eq!(u64::from_le_bytes(count), 1);
    assert_eq!(call::write(again, &count), Ok(8), "ack");
    assert_eq!(call::read(again, &mut count), Ok(0), "nothing pending");
}

#[test]
fn non_root_cannot_take_vectors_or_translate() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("user", Cred::USER);
    let denied = Err(libredox::error::Error::new(EACCES));
    assert_eq!(
        call::open("/scheme/irq/cpu-00/3", flag::O_RDWR | flag::O_CREAT, 0),
        denied
    );
    assert_eq!(
        call::open("/scheme/memory/translation", flag::O_RDONLY, 0),
        denied
    );
    assert_eq!(
        call::open("/scheme/memory/physical@wb", flag::O_RDWR, 0),
        denied
    );
}

fn alloc(len: usize, path: &str) -> (usize, *mut u8) {
    let fd = call::open(path, flag::O_CLOEXEC, 0).expect("open zeroed");
    // SAFETY: a fresh mapping of the memory scheme.
    let virt = unsafe {
        call::mmap(MmapArgs {
            addr: std::ptr::null_mut(),
            length: len,
            prot: flag::PROT_READ | flag::PROT_WRITE,
            flags: flag::MAP_PRIVATE,
            fd,
            offset: 0,
        })
    }
    .expect("mmap");
    call::close(fd).expect("close: the mapping outlives the fd");
    (virt as usize, virt.cast())
}

fn translate(tr: usize, virt: usize) -> usize {
    let mut b = virt.to_ne_bytes();
    call::call_ro(tr, &mut b, CallFlags::empty(), &[]).expect("translate");
    usize::from_ne_bytes(b)
}

#[test]
fn memory_is_contiguous_zeroed_and_translatable() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("driver", Cred::ROOT);
    let tr = call::open("/scheme/memory/translation", flag::O_CLOEXEC, 0).expect("translation");
    let len = 5 * 4096;
    let (virt, ptr) = alloc(len, "/scheme/memory/zeroed@wb?phys_contiguous");
    let phys = translate(tr, virt);
    for page in 0..5 {
        assert_eq!(
            translate(tr, virt + page * 4096 + 12),
            phys + page * 4096 + 12,
            "contiguous"
        );
    }
    // SAFETY: `len` bytes mapped at `ptr`.
    let bytes = unsafe { std::slice::from_raw_parts_mut(ptr, len) };
    assert!(bytes.iter().all(|&b| b == 0), "zeroed");
    bytes.fill(0x5A);
    let mut seen = vec![0u8; 16];
    assert!(
        k.phys().read(phys as u64, &mut seen),
        "the device view is the same memory"
    );
    assert!(seen.iter().all(|&b| b == 0x5A));
    // SAFETY: unmapping what was mapped.
    unsafe { call::munmap(virt as *mut (), len) }.expect("munmap");
    let (virt2, ptr2) = alloc(len, "/scheme/memory/zeroed@wb?phys_contiguous");
    // SAFETY: fresh mapping.
    let again = unsafe { std::slice::from_raw_parts(ptr2, len) };
    assert!(
        again.iter().all(|&b| b == 0),
        "reused memory is zeroed again"
    );
    // The kernel has no below-4 GiB flag: an unknown flag is ENOENT.
    assert_eq!(
        call::open(
            "/scheme/memory/zeroed@wb?phys_contiguous&below4g",
            flag::O_CLOEXEC,
            0
        ),
        Err(libredox::error::Error::new(ENOENT))
    );
    assert!(virt2 != 0);
}

#[test]
fn interrupting_a_blocked_caller_sends_cancel_and_returns_eintr() {
    let p = Probe::start();
    let k = p.kernel.clone();
    let client = k.process("reader", Cred::ROOT);
    let blocked = k.spawn_in(&client, || {
        let fd = call::open("/scheme/probe/hang", flag::O_RDONLY, 0)?;
        let mut b = [0u8; 8];
        call::read(fd, &mut b)
    });
    // The probe holds the read; wait until it has it (a condition, not a timed sleep).
    while p.log().parked == 0 {
        std::thread::yield_now();
    }
    assert_eq!(k.interrupt(client.pid), 1, "one call in flight to cancel");
    assert_eq!(
        blocked.join().ok(),
        Some(Err(libredox::error::Error::new(EINTR)))
    );
    assert_eq!(
        p.log().cancelled,
        1,
        "the scheme saw the Cancel for that request"
    );
    let (_me, _g) = k.enter("other", Cred::ROOT);
    assert_eq!(k.interrupt(client.pid), 0, "nothing left in flight");
    p.barrier();
}

#[test]
fn io_port_privilege_is_granted_per_thread_without_a_uid_check() {
    // kernel src/scheme/proc.rs: Iopl marks context::current(), the calling
    // thread; holding one's own thread handle is the capability.
    let k = Kernel::boot();
    let (me, _g) = k.enter("dsmild", Cred::USER);
    assert!(!me.has_io_privilege());
    dsmil::platform::acquire_port_io_rights().expect("Iopl on one's own thread");
    assert!(me.has_io_privilege(), "the Iopl verb reached the kernel");
    // Another thread of the same process has no grant of its own.
    let other = k.spawn_in(&me, {
        let me = me.clone();
        move || me.has_io_privilege()
    });
    assert_eq!(
        other.join().ok(),
        Some(false),
        "not inherited by other threads"
    );
}
