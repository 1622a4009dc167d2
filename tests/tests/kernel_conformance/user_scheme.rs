//! redox-real.md §3: user-scheme delivery (kernel `src/scheme/user.rs`,
//! `src/syscall/fs.rs`, `src/context/file.rs`).
//!
//! Two kinds of daemon: the probe scheme (`dsmil_tests::probe`) for facts seen
//! through redox-scheme's decoded requests, and a *raw* scheme — a real
//! `redox_scheme::Socket` this test reads by hand — for the exact bytes of a `Sqe`
//! and for timing facts (a `close` that returns while nobody reads the socket).

use dsmil_tests::probe::{ProbeLog, Running};
use libredox::call;
use libredox::error::Error as LError;
use libredox::flag;
use redox_host::{Cred, Kernel};
use redox_scheme::scheme::{SchemeState, SchemeSync};
use redox_scheme::{Request, RequestKind, Response, SignalBehavior, Socket};
use syscall::CallFlags;
use syscall::error::{
    EAGAIN, EBADF, EBUSY, ECANCELED, EINTR, EINVAL, EIO, ENODEV, EOPNOTSUPP, EWOULDBLOCK, EXDEV,
    Result,
};
use syscall::schemev2::{Opcode, Sqe, SqeFlags};

fn err(errno: i32) -> LError {
    LError::new(errno)
}

/// The `Sqe` inside a request (`Request` is `repr(transparent)` over it).
fn sqe_of(req: &Request) -> Sqe {
    // SAFETY: repr(transparent) over `Sqe` in redox-scheme 0.12; `Sqe` is `Copy`.
    unsafe { std::ptr::read((req as *const Request).cast::<Sqe>()) }
}

fn open(path: &str) -> usize {
    call::open(path, flag::O_RDWR, 0).unwrap_or_else(|e| panic!("open {path}: {e:?}"))
}

fn fpath(fd: usize) -> String {
    let mut buf = [0u8; 256];
    let n = call::fpath(fd, &mut buf).expect("fpath");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// Answers only `scheme_root`: every other request gets redox-scheme's default.
struct Defaults;
impl SchemeSync for Defaults {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(0)
    }
}

/// A scheme registered as `name` whose socket the test reads itself (non-blocking).
struct Raw {
    socket: Socket,
}

impl Raw {
    fn register(name: &str) -> Raw {
        let socket = Socket::nonblock().expect("socket");
        redox_scheme::scheme::register_sync_scheme(&socket, name, &mut Defaults).expect("register");
        Raw { socket }
    }

    /// A file of this scheme with handle `number`, made without a request.
    fn file(&self, number: usize) -> usize {
        self.socket
            .create_this_scheme_fd(0, number, syscall::O_RDWR, 0)
            .expect("scheme fd")
    }

    /// Whether a request is queued, without blocking.
    fn poll(&self) -> Option<Request> {
        match self.socket.next_request(SignalBehavior::Restart) {
            Ok(r) => r,
            Err(e) if e.errno == EWOULDBLOCK || e.errno == EAGAIN => None,
            Err(e) => panic!("socket read: {e:?}"),
        }
    }

    /// The next request, waiting (yielding) until another thread's call arrives.
    fn next(&self) -> Request {
        loop {
            if let Some(r) = self.poll() {
                return r;
            }
            std::thread::yield_now();
        }
    }

    fn answer(&self, resp: Response) {
        assert_eq!(
            self.socket.write_response(resp, SignalBehavior::Restart),
            Ok(true)
        );
    }
}

// ---- fd passing ---------------------------------------------------------------

/// `src/syscall/fs.rs` `call_fdwrite`/`fdwrite_inner` + `src/scheme/user.rs`
/// `kfdwrite`: `SYS_CALL` with `FD` moves the fd out of the sender into a `Sendfd`
/// request carrying the caller's uid, and returns the count once the scheme took it.
#[test]
fn sendfd_moves_the_descriptor_into_the_scheme() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let target = open("/scheme/probe/box");
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let want = fpath(mem);
    let before = run.daemon.fd_count();
    assert_eq!(
        call::call_wo(target, &mem.to_ne_bytes(), CallFlags::FD, &[]),
        Ok(1)
    );
    assert_eq!(call::close(mem), Err(err(EBADF)), "moved out of the sender");
    run.barrier();
    let log = run.log();
    let (file, paths, arg, uid) = log.received.first().cloned().expect("Sendfd seen");
    assert_eq!(file, number_of(&log, "box"));
    assert_eq!(paths, vec![want]);
    assert_eq!(arg, 0, "SYS_CALL has no sendfd argument");
    assert_eq!(
        uid, 1000,
        "Sendfd is built by call_extended: uid/gid are real"
    );
    assert_eq!(
        run.daemon.fd_count(),
        before + 1,
        "now in the daemon's table"
    );
}

/// The file number the probe gave the first open of `path` (numbers start at 1).
fn number_of(log: &ProbeLog, path: &str) -> usize {
    log.opens
        .iter()
        .position(|o| o.0 == path)
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("{path} was never opened"))
}

/// `fdwrite_inner` in `src/syscall/fs.rs`: `FD_CLONE` sends the description and
/// keeps it in the sender's table.
#[test]
fn sendfd_with_fd_clone_keeps_the_senders_descriptor() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let target = open("/scheme/probe/box");
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let want = fpath(mem);
    let sent = call::call_wo(
        target,
        &mem.to_ne_bytes(),
        CallFlags::FD | CallFlags::FD_CLONE,
        &[],
    );
    assert_eq!(sent, Ok(1));
    assert_eq!(fpath(mem), want, "still the sender's");
    run.barrier();
    assert_eq!(run.log().received.len(), 1);
}

/// `fdwrite_inner`: `FD_EXCLUSIVE` with another reference alive is `EBUSY` — after
/// the fd already left the table, so the sender loses that fd (its dup survives).
#[test]
fn sendfd_exclusive_refuses_a_shared_description() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let target = open("/scheme/probe/box");
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let want = fpath(mem);
    let other = call::dup(mem, b"").expect("dup");
    let sent = call::call_wo(
        target,
        &mem.to_ne_bytes(),
        CallFlags::FD | CallFlags::FD_EXCLUSIVE,
        &[],
    );
    assert_eq!(sent, Err(err(EBUSY)));
    assert_eq!(
        call::close(mem),
        Err(err(EBADF)),
        "removed before the check"
    );
    assert_eq!(fpath(other), want);
    run.barrier();
    assert!(run.log().received.is_empty(), "the scheme never saw it");
}

/// `UserInner::respond` in `src/scheme/user.rs`: descriptions a scheme did not take
/// are closed when it answers (here with redox-scheme's `EOPNOTSUPP`), so the last
/// reference goes and the owning scheme gets its `CloseMsg`.
#[test]
fn refused_sendfd_closes_the_descriptions_sent() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let refuse = open("/scheme/probe/refuse");
    let victim = open("/scheme/probe/victim");
    let sent = call::call_wo(refuse, &victim.to_ne_bytes(), CallFlags::FD, &[]);
    assert_eq!(sent, Err(err(EOPNOTSUPP)));
    assert_eq!(call::close(victim), Err(err(EBADF)));
    run.barrier();
    let log = run.log();
    let victim_number = number_of(&log, "victim");
    assert!(
        log.closes.contains(&victim_number),
        "closed: {:?}",
        log.closes
    );
}

/// `UserScheme::kfdread` + `UserInner::handle_movefd` in `src/scheme/user.rs`: a
/// `Recvfd` answered with `RespondWithMultipleFds` puts the descriptions the scheme
/// moved in into the caller's table and their numbers into the payload.
#[test]
fn recvfd_moves_descriptors_from_the_scheme_to_the_caller() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let target = open("/scheme/probe/box");
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let want = fpath(mem);
    call::call_wo(target, &mem.to_ne_bytes(), CallFlags::FD, &[]).expect("send");
    let mut odd = [0u8; 7];
    assert_eq!(
        call::call_ro(target, &mut odd, CallFlags::FD, &[]),
        Err(err(EINVAL)),
        "a payload of whole fd slots"
    );
    let mut slot = [0u8; size_of::<usize>()];
    assert_eq!(call::call_ro(target, &mut slot, CallFlags::FD, &[]), Ok(1));
    let back = usize::from_ne_bytes(slot);
    assert_eq!(fpath(back), want);
}

/// `UserInner::handle_parsed` (`ResponseWithFd`) in `src/scheme/user.rs`: an open or
/// dup answered with `RespondWithFd` moves that fd out of the daemon's table into
/// the caller's.
#[test]
fn respond_with_fd_moves_the_schemes_fd_to_the_caller() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("driver", Cred::USER);
    let target = open("/scheme/probe/box");
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let want = fpath(mem);
    call::call_wo(target, &mem.to_ne_bytes(), CallFlags::FD, &[]).expect("send");
    run.barrier();
    let held = run.daemon.fd_count();
    let back = call::dup(target, b"fd").expect("dup answered with an fd");
    assert_eq!(fpath(back), want);
    run.barrier();
    assert_eq!(
        run.daemon.fd_count(),
        held - 1,
        "it left the daemon's table"
    );
}

// ---- SYS_CALL -----------------------------------------------------------------

/// `call` in `src/syscall/fs.rs`: at most 3 metadata words are copied; the rest is
/// dropped without an error (`UserScheme::kcall` puts them in `args[3..6]`).
#[test]
fn call_metadata_is_cut_to_three_words() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("client", Cred::ROOT);
    let f = open("/scheme/probe/f");
    let mut payload = [0u8; 4];
    assert_eq!(
        call::call_rw(f, &mut payload, CallFlags::empty(), &[11, 12, 13, 14, 15]),
        Ok(0)
    );
    let log = run.log();
    let (args, _, _) = log.calls.last().copied().expect("call seen");
    assert_eq!(&args[3..], &[11, 12, 13]);
}

/// `UserScheme::kcall` in `src/scheme/user.rs` builds the Sqe itself, not through
/// `call_extended`: `args[5]` is metadata word 2, never `euid | egid << 32`, so
/// redox-scheme's `CallerCtx.uid/gid` on a call are whatever the caller put there.
#[test]
fn call_carries_metadata_where_other_requests_carry_uid() {
    let run = Running::start();
    let (me, _g) = run.kernel.enter("user", Cred::USER);
    let f = open("/scheme/probe/f");
    let mut payload = [0u8; 1];
    call::call_rw(f, &mut payload, CallFlags::empty(), &[7, 8, 0]).expect("call");
    let log = run.log();
    let (args, flags, caller) = log.calls.last().copied().expect("call seen");
    assert_eq!(
        args[5], 0,
        "a non-root caller whose word 2 reads as uid 0, gid 0"
    );
    assert_eq!(caller, me.pid as u64, "the pid is real");
    assert_eq!(flags, 0);
    assert_eq!(
        log.opens.last().map(|o| (o.2, o.3)),
        Some((1000, 1000)),
        "the open of the same file carried the real uid/gid"
    );
}

/// redox-real.md §3 (two fds): the Sqe gets `MULTIPLE_IDS`, `args[5]` names the
/// second file, and only 2 metadata words fit; more than 2 fds is `EINVAL`, fds of
/// different schemes `EXDEV`.
#[test]
fn two_fd_call_names_the_second_file_in_args5() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("client", Cred::ROOT);
    let a = open("/scheme/probe/a");
    let b = open("/scheme/probe/b");
    let fds = [a, b];
    let mut payload = [0u8; 2];
    assert_eq!(
        call::call_rw(&fds[..], &mut payload, CallFlags::empty(), &[21, 22, 23]),
        Ok(0)
    );
    let (args, flags, _) = run.log().calls.last().copied().expect("call seen");
    assert_eq!(flags, SqeFlags::MULTIPLE_IDS.bits());
    assert_eq!(args[0] as usize, number_of(&run.log(), "a"));
    assert_eq!(args[5] as usize, number_of(&run.log(), "b"));
    assert_eq!(&args[3..5], &[21, 22], "word 3 is dropped");
    let three = [a, b, a];
    assert_eq!(
        call::call_rw(&three[..], &mut payload, CallFlags::empty(), &[]),
        Err(err(EINVAL))
    );
    let mem = call::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let mixed = [a, mem];
    assert_eq!(
        call::call_rw(&mixed[..], &mut payload, CallFlags::empty(), &[]),
        Err(err(EXDEV))
    );
}

// ---- CloseMsg, Cancel, a dead scheme ------------------------------------------

/// `UserScheme::close` in `src/scheme/user.rs` and `src/context/file.rs`: only the
/// last reference's close sends `CloseMsg` — tag 0, caller 0, no flags,
/// `args[0]` = the number — and `close()` returns without waiting for the daemon
/// (this thread is the daemon and is not reading while it closes).
#[test]
fn close_msg_has_tag_0_caller_0_and_close_does_not_wait() {
    let k = Kernel::boot();
    let (_me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(5);
    let twin = call::dup(f, b"").expect("empty dup");
    assert_eq!(call::close(f), Ok(()));
    assert!(raw.poll().is_none(), "a reference remains: no message");
    assert_eq!(call::close(twin), Ok(()), "returned with nobody reading");
    let req = raw.poll().expect("CloseMsg queued");
    let sqe = sqe_of(&req);
    assert_eq!(sqe.opcode, Opcode::CloseMsg as u8);
    assert_eq!((sqe.tag, sqe.caller, sqe.sqe_flags.bits()), (0, 0, 0));
    assert_eq!(sqe.args, [5, 0, 0, 0, 0, 0]);
    assert!(matches!(req.kind(), RequestKind::OnClose { id: 5 }));
}

/// `UserInner::call_extended_inner` + `respond` in `src/scheme/user.rs`: a signal
/// queues a one-way `Cancel` with the request's tag and no arguments; the caller
/// keeps waiting, and the scheme's `ECANCELED` reaches it as `EINTR`.
#[test]
fn cancel_is_a_oneway_sqe_with_the_same_tag_and_ecanceled_becomes_eintr() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(3);
    let reader = k.spawn_in(&me, move || {
        let mut b = [0u8; 8];
        call::read(f, &mut b)
    });
    let read = sqe_of(&raw.next());
    assert_eq!(read.opcode, Opcode::Read as u8);
    assert_eq!(k.interrupt(me.pid), 1);
    let cancel = sqe_of(&raw.next());
    assert_eq!(cancel.opcode, Opcode::Cancel as u8);
    assert_eq!(cancel.tag, read.tag, "names the request it cancels");
    assert_eq!(cancel.sqe_flags.bits(), SqeFlags::ONEWAY.bits());
    assert_eq!((cancel.args, cancel.caller), ([0; 6], 0));
    assert!(
        !reader.is_finished(),
        "the caller still waits for the answer"
    );
    assert_eq!(k.blocked_callers("raw", Some(me.pid)), 1);
    raw.answer(Response::err(ECANCELED, tag_of(read)));
    assert_eq!(reader.join().ok(), Some(Err(err(EINTR))));
}

/// `UserInner::respond`: an `EINTR` answer to a request nobody cancelled is `EIO`
/// (a stray EINTR would run the caller's signal trampoline for no signal).
#[test]
fn a_stray_eintr_from_the_scheme_becomes_eio() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(3);
    let reader = k.spawn_in(&me, move || {
        let mut b = [0u8; 8];
        call::read(f, &mut b)
    });
    let read = sqe_of(&raw.next());
    raw.answer(Response::err(EINTR, tag_of(read)));
    assert_eq!(reader.join().ok(), Some(Err(err(EIO))));
}

/// `src/scheme/user.rs`: once the socket is gone new requests fail with `ENODEV`,
/// while a caller already in flight is never failed or woken (no code walks the
/// pending states). The mock lets a test observe that without hanging:
/// `Kernel::blocked_callers` shows the caller still blocked, and `Kernel::sigkill`
/// — SIGKILL, the only way out on Redox — releases it with `EINTR`.
#[test]
fn a_dead_scheme_fails_new_callers_with_enodev_and_leaves_old_ones_hung() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(3);
    let later = raw.file(4);
    let reader = k.spawn_in(&me, move || {
        let mut b = [0u8; 8];
        call::read(f, &mut b)
    });
    let _taken = raw.next();
    drop(raw); // the daemon closes its socket
    let mut b = [0u8; 8];
    assert_eq!(call::read(later, &mut b), Err(err(ENODEV)));
    assert!(!reader.is_finished(), "in-flight caller not woken");
    assert_eq!(k.blocked_callers("raw", Some(me.pid)), 1);
    assert_eq!(k.sigkill("raw", me.pid), 1);
    assert_eq!(reader.join().ok(), Some(Err(err(EINTR))));
}

// ---- fcntl and dup --------------------------------------------------------------

/// `fcntl` in `src/syscall/fs.rs`: every command but `F_GETFD`/`F_SETFD` (and the
/// kernel's own `F_DUPFD`) goes to the scheme first, and redox-scheme's default
/// `fcntl` is `EOPNOTSUPP` — so even `F_GETFL` fails on a scheme without one.
#[test]
fn fcntl_goes_to_the_scheme_first_and_the_default_refuses() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(9);
    assert_eq!(
        call::fcntl(f, syscall::F_SETFD, flag::O_CLOEXEC as usize),
        Ok(0)
    );
    assert_eq!(
        call::fcntl(f, syscall::F_GETFD, 0).map(|v| v != 0),
        Ok(true)
    );
    assert!(raw.poll().is_none(), "F_GETFD/F_SETFD stay in the kernel");
    let getter = k.spawn_in(&me, move || call::fcntl(f, syscall::F_GETFL, 0));
    let req = raw.next();
    let sqe = sqe_of(&req);
    assert_eq!(sqe.opcode, Opcode::Fcntl as u8);
    assert_eq!(&sqe.args[..2], &[9, syscall::F_GETFL as u64]);
    assert_eq!(sqe.args[5], 0, "root: uid 0 | gid 0 << 32");
    let RequestKind::Call(call) = req.kind() else {
        panic!("fcntl is a call request");
    };
    raw.answer(call.handle_sync(&mut Defaults, &mut SchemeState::new()));
    assert_eq!(getter.join().ok(), Some(Err(err(EOPNOTSUPP))));
}

/// `duplicate_file` in `src/syscall/fs.rs` + `UserScheme::kdup`: an empty dup shares
/// the description and sends nothing; a named dup is an `Opcode::Dup` request with
/// the caller's uid/gid, and the new description starts at offset 0.
#[test]
fn dup_with_a_name_reaches_the_scheme_and_an_empty_one_does_not() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let f = raw.file(4);
    let twin = call::dup(f, b"").expect("empty dup");
    assert!(raw.poll().is_none(), "no request for an empty dup");
    assert_eq!(call::close(twin), Ok(()));
    let named = k.spawn_in(&me, move || call::dup(f, b"sub"));
    let req = raw.next();
    let sqe = sqe_of(&req);
    assert_eq!(sqe.opcode, Opcode::Dup as u8);
    assert_eq!(sqe.args[0], 4);
    // SAFETY: the caller is blocked, so the name it passed is still mapped.
    let name =
        unsafe { std::slice::from_raw_parts(sqe.args[1] as *const u8, sqe.args[2] as usize) };
    assert_eq!(name, b"sub");
    assert_eq!(sqe.caller, me.pid as u64);
    let RequestKind::Call(call) = req.kind() else {
        panic!("dup is a call request");
    };
    raw.answer(Response::ok(8, call));
    let new = named
        .join()
        .ok()
        .and_then(|r| r.ok())
        .expect("dup answered");
    assert_ne!(new, f);
}

/// The tag of a request, for answering it by hand.
fn tag_of(sqe: Sqe) -> redox_scheme::Tag {
    // SAFETY: `Request` is `repr(transparent)` over `Sqe`.
    let req: Request = unsafe { std::mem::transmute::<Sqe, Request>(sqe) };
    let RequestKind::Call(call) = req.kind() else {
        panic!("not a call request");
    };
    redox_scheme::scheme::IntoTag::into_tag(call)
}

/// redox-real.md §3: relibc's getdents is a standard fs call, so a user scheme gets
/// `Opcode::StdFsCall` — kind `Getdents`, the opaque offset and the header size in
/// `args[3..6]`, no credentials — never `Opcode::Getdents`
/// (`UserScheme::getdents` in `src/scheme/user.rs` is unreachable).
#[test]
fn getdents_reaches_a_user_scheme_as_a_std_fs_call() {
    let k = Kernel::boot();
    let (me, _g) = k.enter("rawd", Cred::ROOT);
    let raw = Raw::register("raw");
    let dir = raw.file(2);
    let lister = k.spawn_in(&me, move || {
        let mut buf = [0u8; 256];
        call::getdents(dir, &mut buf, 7)
    });
    let req = raw.next();
    let sqe = sqe_of(&req);
    assert_eq!(sqe.opcode, Opcode::StdFsCall as u8);
    assert_eq!(sqe.args[0], 2);
    assert_eq!(sqe.args[2], 256);
    assert_eq!(
        &sqe.args[3..],
        &[
            syscall::flag::StdFsCallKind::Getdents as u64,
            7,
            size_of::<syscall::dirent::DirentHeader>() as u64
        ]
    );
    let RequestKind::Call(call) = req.kind() else {
        panic!("getdents is a call request");
    };
    // redox-scheme turns it back into `getdents`; the default is ENOTDIR.
    raw.answer(call.handle_sync(&mut Defaults, &mut SchemeState::new()));
    assert_eq!(lister.join().ok(), Some(Err(err(syscall::error::ENOTDIR))));
}

/// `UserInner::copy_and_capture_tail` in `src/scheme/user.rs`: an open's path is
/// copied into a one-page buffer; a longer path is `EINVAL` and never reaches the
/// scheme.
#[test]
fn a_path_longer_than_a_page_never_reaches_the_scheme() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("client", Cred::ROOT);
    let long = format!("/scheme/probe/{}", "x".repeat(4097));
    assert_eq!(call::open(&long, flag::O_RDONLY, 0), Err(err(EINVAL)));
    let page = format!("/scheme/probe/{}", "y".repeat(4096));
    let fd = call::open(&page, flag::O_RDONLY, 0).expect("a page fits");
    run.barrier();
    assert_eq!(
        run.log().opens.len(),
        2,
        "the page-long open and the barrier"
    );
    let _ = call::close(fd);
}

/// `call_normal` in `src/syscall/fs.rs`: `CallFlags::CONSUME` takes the fd out of
/// the caller's table before the call, so the call is its last use and the scheme
/// gets the `CloseMsg` right after answering.
#[test]
fn a_consuming_call_closes_the_fd() {
    let run = Running::start();
    let (_me, _g) = run.kernel.enter("client", Cred::ROOT);
    let f = open("/scheme/probe/once");
    let mut payload = [0u8; 1];
    assert_eq!(
        call::call_rw(f, &mut payload, CallFlags::CONSUME, &[]),
        Ok(0)
    );
    assert_eq!(call::close(f), Err(err(EBADF)));
    run.barrier();
    let log = run.log();
    assert!(log.closes.contains(&number_of(&log, "once")));
}
