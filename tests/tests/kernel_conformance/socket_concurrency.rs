//! redox-real.md §3 under concurrency: one scheme socket, many callers (kernel
//! `src/scheme/user.rs`: `UserInner::call_extended_inner` queues each request on the
//! socket's `todo` queue and wakes readers, `UserInner::read` hands them out in queue
//! order, `UserInner::respond` finds the caller by tag).
//!
//! These guard the fast paths of the mocked socket: a reader that finds nothing
//! queued without taking the socket's lock, an event queue that a waiting daemon polls
//! without its lock, and a reply completion each thread reuses across calls. No test
//! sleeps or times anything: a lost wake-up shows as a hang.

use std::sync::Arc;

use dsmil_tests::probe::Running;
use libredox::call;
use libredox::flag;
use redox_host::{Cred, Kernel, boot};
use redox_scheme::scheme::SchemeSync;
use redox_scheme::{OpenResult, RequestKind, Response, SignalBehavior, Socket};
use syscall::CallFlags;
use syscall::error::{EAGAIN, EWOULDBLOCK, Result};
use syscall::schemev2::NewFdFlags;

const THREADS: usize = 6;
const CALLS: usize = 400;

/// Answers only `scheme_root`.
struct Defaults;
impl SchemeSync for Defaults {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(0)
    }
}

/// The probe answers a write with its length: with many threads writing lengths of
/// their own on one socket at once, every caller must get the answer to its own
/// request (`respond` matches by tag), none lost, none swapped.
#[test]
fn many_callers_on_one_socket_each_get_their_own_answer() {
    let run = Running::start();
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            run.kernel
                .spawn(&format!("client{t}"), Cred::USER, move || {
                    let fd = call::open(format!("/scheme/probe/c{t}"), flag::O_RDWR, 0)?;
                    let buf = vec![0u8; THREADS * CALLS + 1];
                    for i in 0..CALLS {
                        // Lengths no other thread uses.
                        let len = 1 + t + i * THREADS;
                        let n = call::write(fd, &buf[..len])?;
                        assert_eq!(n, len, "thread {t} call {i} got another caller's answer");
                    }
                    call::close(fd)?;
                    Ok::<(), libredox::error::Error>(())
                })
        })
        .collect();
    for c in clients {
        assert!(matches!(c.join(), Ok(Ok(()))));
    }
}

/// Requests and one-way messages of one caller reach the daemon in the order sent,
/// whatever other callers queue meanwhile: a thread's `close` (a `CloseMsg` queued
/// without waiting) is handled before that thread's next request is.
#[test]
fn each_callers_close_messages_stay_ahead_of_its_next_request() {
    let run = Running::start();
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let log = run.log.clone();
            run.kernel
                .spawn(&format!("closer{t}"), Cred::USER, move || {
                    let barrier = call::open(format!("/scheme/probe/b{t}"), flag::O_RDONLY, 0)?;
                    for i in 0..CALLS / 4 {
                        let fd = call::open(format!("/scheme/probe/f{t}-{i}"), flag::O_RDWR, 0)?;
                        call::close(fd)?;
                        // Answered only after everything queued before it was handled.
                        let mut b = [0u8; 8];
                        call::read(barrier, &mut b)?;
                        let log = log.lock().unwrap_or_else(|e| e.into_inner());
                        let path = format!("f{t}-{i}");
                        // The probe numbers files from 1 in open order.
                        let number = 1 + log
                            .opens
                            .iter()
                            .position(|o| o.0 == path)
                            .expect("the open was logged");
                        assert!(
                            log.closes.contains(&number),
                            "thread {t}: close of {path} not handled before the next request"
                        );
                    }
                    Ok::<(), libredox::error::Error>(())
                })
        })
        .collect();
    for c in clients {
        assert!(matches!(c.join(), Ok(Ok(()))));
    }
}

/// The daemon of the event-queue pattern (dsmild: a non-blocking socket read until
/// `EAGAIN`, then a wait on its event queue) with many callers at once: every call is
/// answered. A wake-up lost between the daemon finding nothing and going to sleep
/// would leave a caller blocked here for good.
#[test]
fn an_event_queue_daemon_serves_many_callers_at_once() {
    let k = Kernel::boot();
    let d = boot::dsmild(&k, dsmil::Config::default(), dsmil::Hardware::minimal(40));
    let (_p, _g) = k.enter("reference", Cred::USER);
    let ctl = call::open("/scheme/dsmil/control", flag::O_RDWR, 0).expect("open control");
    let mut expected = [0u8; 64];
    let n = call::call_ro(ctl, &mut expected, CallFlags::empty(), &[1]).expect("GET_VERSION");
    let expected = Arc::new(expected[..n].to_vec());
    let clients: Vec<_> = (0..THREADS)
        .map(|t| {
            let expected = expected.clone();
            k.spawn(&format!("client{t}"), Cred::USER, move || {
                let ctl = call::open("/scheme/dsmil/control", flag::O_RDWR, 0)?;
                for _ in 0..CALLS {
                    let mut buf = [0u8; 64];
                    let n = call::call_ro(ctl, &mut buf, CallFlags::empty(), &[1])?;
                    assert_eq!(&buf[..n], &expected[..]);
                }
                call::close(ctl)?;
                Ok::<(), libredox::error::Error>(())
            })
        })
        .collect();
    for c in clients {
        assert!(matches!(c.join(), Ok(Ok(()))));
    }
    d.stop().expect("clean stop");
}

/// One caller against the event-queue daemon, call after call: the daemon goes back
/// to its event queue after every answer, so each call races its wait.
#[test]
fn an_event_queue_daemon_answers_every_call_of_one_caller() {
    let k = Kernel::boot();
    let d = boot::dsmild(&k, dsmil::Config::default(), dsmil::Hardware::minimal(40));
    let (_p, _g) = k.enter("client", Cred::USER);
    let ctl = call::open("/scheme/dsmil/control", flag::O_RDWR, 0).expect("open control");
    for _ in 0..THREADS * CALLS {
        let mut buf = [0u8; 64];
        call::call_ro(ctl, &mut buf, CallFlags::empty(), &[1]).expect("GET_VERSION");
    }
    call::close(ctl).expect("close");
    d.stop().expect("clean stop");
}

/// The probe's blocking loop parks in its socket read once nothing arrives for a
/// while; a request sent while it is parked (or between its last look and the park)
/// must wake it. The test waits until the kernel reports the reader parked, then calls.
#[test]
fn a_request_wakes_a_daemon_parked_in_its_socket_read() {
    let run = Running::start();
    let (_p, _g) = run.kernel.enter("client", Cred::USER);
    let fd = call::open("/scheme/probe/x", flag::O_RDWR, 0).expect("open");
    for i in 0..20 {
        while run.kernel.parked_scheme_readers("probe") == 0 {
            std::thread::yield_now();
        }
        let len = i + 1;
        assert_eq!(call::write(fd, &[0u8; 32][..len]), Ok(len));
    }
    call::close(fd).expect("close");
}

/// The next request on a non-blocking socket, yielding while it reports `EAGAIN`.
fn next_polled(socket: &Socket) -> redox_scheme::Request {
    loop {
        match socket.next_request(SignalBehavior::Restart) {
            Ok(Some(r)) => return r,
            Ok(None) => panic!("EOF before shutdown"),
            Err(e) if e.errno == EAGAIN || e.errno == EWOULDBLOCK => std::thread::yield_now(),
            Err(e) => panic!("socket read: {e:?}"),
        }
    }
}

fn would_block(
    r: std::result::Result<Option<redox_scheme::Request>, syscall::error::Error>,
) -> bool {
    matches!(r, Err(e) if e.errno == EAGAIN || e.errno == EWOULDBLOCK)
}

/// A daemon reading its socket with `O_NONBLOCK` (`UserInner::read` returns
/// `EAGAIN` when the queue is empty and the file is non-blocking): `EAGAIN` while
/// nothing is queued, each request once it is, `EAGAIN` again after it was taken, and
/// after shutdown the messages still queued and then EOF.
#[test]
fn a_nonblocking_daemon_sees_eagain_requests_and_eof_in_order() {
    let k = Kernel::boot();
    let (_p, _g) = k.enter("rawd", Cred::ROOT);
    let socket = Socket::nonblock().expect("socket");
    redox_scheme::scheme::register_sync_scheme(&socket, "raw", &mut Defaults).expect("register");
    assert!(would_block(socket.next_request(SignalBehavior::Restart)));

    let caller = k.spawn("caller", Cred::USER, || {
        let fd = call::open("/scheme/raw/f", flag::O_RDWR, 0)?;
        let mut b = [0u8; 4];
        let n = call::read(fd, &mut b)?;
        call::close(fd)?;
        Ok::<usize, libredox::error::Error>(n)
    });
    for answer in [
        |c| {
            Response::open_dup_like(
                Ok(OpenResult::ThisScheme {
                    number: 7,
                    flags: NewFdFlags::empty(),
                }),
                c,
            )
        },
        |c| Response::new(Ok(3), c),
    ] as [fn(redox_scheme::CallRequest) -> Response; 2]
    {
        let RequestKind::Call(c) = next_polled(&socket).kind() else {
            panic!("not a call")
        };
        assert!(would_block(socket.next_request(SignalBehavior::Restart)));
        assert_eq!(
            socket.write_response(answer(c), SignalBehavior::Restart),
            Ok(true)
        );
    }
    assert!(matches!(caller.join(), Ok(Ok(3))));

    // The caller's close queued a CloseMsg (close does not wait for it). After
    // shutdown it is still read, then EOF, non-blocking or not.
    assert!(k.shutdown_scheme("raw"));
    let closing = socket
        .next_request(SignalBehavior::Restart)
        .expect("read")
        .expect("the CloseMsg before EOF");
    assert!(matches!(closing.kind(), RequestKind::OnClose { id: 7 }));
    assert!(matches!(
        socket.next_request(SignalBehavior::Restart),
        Ok(None)
    ));
}

/// Shutdown of a socket with nothing queued: a non-blocking read reports EOF at once,
/// not `EAGAIN` (`UserInner::read` checks unmounting before the empty queue).
#[test]
fn a_nonblocking_read_of_an_idle_socket_sees_eof_after_shutdown() {
    let k = Kernel::boot();
    let (_p, _g) = k.enter("rawd", Cred::ROOT);
    let socket = Socket::nonblock().expect("socket");
    redox_scheme::scheme::register_sync_scheme(&socket, "idle", &mut Defaults).expect("register");
    assert!(would_block(socket.next_request(SignalBehavior::Restart)));
    assert!(k.shutdown_scheme("idle"));
    assert!(matches!(
        socket.next_request(SignalBehavior::Restart),
        Ok(None)
    ));
}
