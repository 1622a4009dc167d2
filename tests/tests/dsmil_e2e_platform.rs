//! End-to-end on the simulated DSMIL platform: the unmodified dsmild loop,
//! client threads through the mocked kernel, SMM firmware and sensor poked by
//! the test.

use std::sync::Arc;
use std::time::Duration;

use dsmil::wire::{CHUNK_SIZE, EventKind, EventRecord, ScanChunk};
use libredox::call;
use libredox::error::Error;
use libredox::flag::{O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};
use proptest::prelude::*;
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::{ClockSource, Cred, Kernel, MachineConfig, boot};
use syscall::CallFlags;
use syscall::error::{EACCES, EAGAIN, EBUSY, EINTR, EINVAL, EIO, ETIMEDOUT};

/// A machine whose clock moves only when a test advances it: housekeeping (every
/// second) then runs only when a test asks for it, and the SMI budget (timed by
/// the `time` scheme's clock) never decides "hung" instead of the polls. On the
/// host's clock a loaded host made housekeeping re-probe a hung token in the
/// middle of a test, adding its polls and a second time-out to the counts.
fn machine() -> Arc<Kernel> {
    Kernel::boot_with(MachineConfig {
        clock: ClockSource::Manual,
        ..MachineConfig::default()
    })
}

fn read_all(fd: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match call::read(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e:?}"),
        }
    }
}

fn cat(path: &str) -> String {
    let fd = call::open(path, O_RDONLY, 0).expect(path);
    let s = String::from_utf8(read_all(fd)).expect("utf8");
    call::close(fd).expect("close");
    s
}

fn scan_once() -> Vec<u8> {
    let fd = call::open("/scheme/dsmil/scan", O_RDONLY, 0).expect("scan");
    let mut buf = vec![0u8; 64 * CHUNK_SIZE];
    let n = call::read(fd, &mut buf).expect("bulk read");
    assert_eq!(call::read(fd, &mut buf), Ok(0));
    call::close(fd).expect("close");
    buf.truncate(n);
    buf
}

#[test]
fn eight_clients_scanning_at_once_get_identical_complete_results() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let barrier = Arc::new(std::sync::Barrier::new(8));
    let clients: Vec<_> = (0..8)
        .map(|i| {
            let barrier = barrier.clone();
            k.spawn(&format!("scanner{i}"), Cred::USER, move || {
                barrier.wait();
                // Half scan by file, half by control chunk cycles.
                let mut devices = Vec::new();
                if i % 2 == 0 {
                    for raw in scan_once().chunks_exact(CHUNK_SIZE) {
                        let c = ScanChunk::decode(raw).expect("chunk");
                        devices.extend_from_slice(c.valid_devices());
                    }
                } else {
                    let ctl = call::open("/scheme/dsmil/control", O_RDWR, 0).expect("control");
                    let mut buf = [0u8; 256];
                    let n = call::call_ro(ctl, &mut buf, CallFlags::empty(), &[6]).expect("start");
                    let start = dsmil::wire::SessionStart::decode(&buf[..n]).expect("start");
                    for c in 0..start.total_chunks {
                        let n = call::call_ro(
                            ctl,
                            &mut buf,
                            CallFlags::empty(),
                            &[7, u64::from(c), start.session_id],
                        )
                        .expect("chunk");
                        devices.extend_from_slice(
                            ScanChunk::decode(&buf[..n]).expect("chunk").valid_devices(),
                        );
                    }
                    call::call_ro(
                        ctl,
                        &mut buf[..16],
                        CallFlags::empty(),
                        &[8, 0, start.session_id],
                    )
                    .expect("complete");
                    call::close(ctl).expect("close");
                }
                devices
            })
        })
        .collect();
    let results: Vec<_> = clients
        .into_iter()
        .map(|c| c.join().expect("client"))
        .collect();
    assert_eq!(results[0].len(), 108);
    let tokens: Vec<u16> = results[0].iter().map(|d| d.device_id).collect();
    assert_eq!(tokens, (0x8000..=0x806B).collect::<Vec<u16>>());
    for r in &results {
        assert_eq!(r, &results[0], "every client sees the same table");
    }
    let (_me, _g) = k.enter("checker", Cred::USER);
    assert!(cat("/scheme/dsmil/status").contains("sessions: 0"));
    d.stop().expect("clean stop");
}

#[test]
fn thermal_limit_gives_ebusy_and_recovers() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("client", Cred::USER);
    assert!(call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0).is_ok());
    sim.thermal.set(96);
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0),
        Err(Error::new(EBUSY))
    );
    sim.thermal.set(82);
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0),
        Err(Error::new(EBUSY)),
        "still refused between the limit and the resume point"
    );
    sim.thermal.set(75);
    assert!(
        call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0).is_ok(),
        "recovered"
    );
}

#[test]
fn hung_smi_times_out_while_the_daemon_serves_others() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    sim.firmware.set_hung(0x8010, true);
    let polls_before = sim.firmware.status_polls();
    let hung = k.spawn("hung", Cred::USER, || {
        call::open("/scheme/dsmil/device/0x8010", O_RDONLY, 0)
    });
    let others: Vec<_> = (0..3)
        .map(|i| {
            k.spawn(&format!("other{i}"), Cred::USER, move || {
                let fd = call::open(
                    format!("/scheme/dsmil/device/0x80{:02x}", 0x20 + i),
                    O_RDONLY,
                    0,
                )
                .expect("other device");
                read_all(fd).len()
            })
        })
        .collect();
    assert_eq!(
        hung.join().expect("hung client"),
        Err(Error::new(ETIMEDOUT))
    );
    for o in others {
        assert_eq!(o.join().expect("other"), 1024, "4 chunks each");
    }
    // Within budget: hang detection (10 identical polls) and two retries.
    let polls = sim.firmware.status_polls() - polls_before;
    assert!(polls <= 3 * 10 + 3 * 3, "polled {polls} times");
    let (_me, _g) = k.enter("client", Cred::USER);
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8010", O_RDONLY, 0),
        Err(Error::new(EIO))
    );
    let health = cat("/scheme/dsmil/health");
    assert!(health.contains("timed_out: 1"), "{health}");
}

#[test]
fn non_root_writes_get_eacces() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    {
        let (_me, _g) = k.enter("user", Cred::USER);
        assert_eq!(
            call::open("/scheme/dsmil/device/0x8001", O_WRONLY, 0),
            Err(Error::new(EACCES))
        );
        assert_eq!(
            call::open("/scheme/dsmil/config/session_limit", O_RDWR, 0),
            Err(Error::new(EACCES))
        );
    }
    let (_me, _g) = k.enter("admin", Cred::ROOT);
    let fd = call::open("/scheme/dsmil/device/0x8001", O_WRONLY, 0).expect("root");
    assert_eq!(call::write(fd, &9u32.to_le_bytes()), Ok(4));
    assert_eq!(sim.firmware.value(0x8001), Some(9));
    let cfg = call::open("/scheme/dsmil/config/session_limit", O_RDWR, 0).expect("root");
    assert_eq!(call::write(cfg, b"8\n"), Ok(2));
    assert_eq!(cat("/scheme/dsmil/config/session_limit"), "8\n");
}

#[test]
fn ten_thousand_open_close_cycles_leak_nothing() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    // 2,500 device opens in a burst: a user's SMI budget must allow them.
    let config = dsmil::Config {
        smi_per_second: 10_000,
        ..dsmil::Config::default()
    };
    let _d = boot::dsmild_simulated(&k, config, &sim);
    let (me, _g) = k.enter("cycler", Cred::USER);
    let fds_before = me.fd_count();
    let paths = [
        "/scheme/dsmil/scan",
        "/scheme/dsmil/device/0x8002",
        "/scheme/dsmil/control",
        "/scheme/dsmil/events",
    ];
    for i in 0..10_000 {
        // O_NONBLOCK so the events reads answer EAGAIN instead of waiting.
        let fd = call::open(paths[i % paths.len()], O_RDONLY | O_NONBLOCK, 0).expect("open");
        if i % 7 == 0 {
            let mut buf = [0u8; CHUNK_SIZE];
            let _ = call::read(fd, &mut buf);
        }
        call::close(fd).expect("close");
    }
    assert_eq!(me.fd_count(), fds_before);
    let status = cat("/scheme/dsmil/status");
    assert!(status.contains("sessions: 0\n"), "{status}");
    // The status file is rendered at read time: its own handle is the one open.
    assert!(
        status.contains("open_handles: 1\n"),
        "nothing left open: {status}"
    );
}

#[test]
fn blocked_events_reader_is_woken_by_an_event() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("main", Cred::USER);
    let ev = call::open("/scheme/dsmil/events", O_RDONLY | O_NONBLOCK, 0).expect("events");
    let mut rec = [0u8; EventRecord::SIZE];
    assert_eq!(
        call::read(ev, &mut rec),
        Err(Error::new(EAGAIN)),
        "O_NONBLOCK"
    );
    call::close(ev).expect("close");

    let reader = k.spawn("reader", Cred::USER, || {
        let fd = call::open("/scheme/dsmil/events", O_RDONLY, 0)?;
        let mut rec = [0u8; EventRecord::SIZE];
        call::read(fd, &mut rec)?;
        Ok::<_, Error>(rec)
    });
    // `status` is rendered at read time, so it counts its own handle too.
    while !cat("/scheme/dsmil/status").contains("open_handles: 2\n") {
        std::thread::yield_now();
    }
    // A refused access from another client is the event.
    assert_eq!(
        call::open("/scheme/dsmil/device/0x800b", O_RDONLY, 0),
        Err(Error::new(EACCES))
    );
    let rec = reader.join().expect("reader").expect("woken");
    let r = EventRecord::decode(&rec).expect("record");
    assert_eq!((r.kind, r.token), (EventKind::RefusedAccess, 0x800B));
}

#[test]
fn blocked_events_reader_is_released_by_cancellation() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let reader = k.process("reader", Cred::USER);
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = k.spawn_in(&reader, move || {
        let fd = call::open("/scheme/dsmil/events", O_RDONLY, 0)?;
        let mut rec = [0u8; EventRecord::SIZE];
        let _ = tx.send(call::read(fd, &mut rec));
        // The handle survives the interruption: the next read gets the next record.
        call::read(fd, &mut rec)?;
        Ok::<_, Error>(rec)
    });
    let (_me, _g) = k.enter("main", Cred::USER);
    // `status` is rendered at read time, so it counts its own handle too.
    while !cat("/scheme/dsmil/status").contains("open_handles: 2\n") {
        std::thread::yield_now();
    }
    // Once the open is answered, the reader's only call in flight is the read.
    while k.interrupt(reader.pid) == 0 {
        std::thread::yield_now();
    }
    assert_eq!(rx.recv().expect("first read"), Err(Error::new(EINTR)));
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8029", O_RDONLY, 0),
        Err(Error::new(EACCES))
    );
    let rec = thread.join().expect("reader").expect("second read");
    let r = EventRecord::decode(&rec).expect("record");
    assert_eq!(
        (r.kind, r.token, r.lost),
        (EventKind::RefusedAccess, 0x8029, 0)
    );
    assert_eq!(k.interrupt(reader.pid), 0, "nothing left in flight");
}

#[test]
fn housekeeping_runs_from_the_time_scheme() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("main", Cred::USER);
    let scan = call::open("/scheme/dsmil/scan", O_RDONLY, 0).expect("scan");
    let reader = k.spawn("reader", Cred::USER, || {
        let fd = call::open("/scheme/dsmil/events", O_RDONLY, 0)?;
        let mut rec = [0u8; EventRecord::SIZE];
        call::read(fd, &mut rec)?;
        Ok::<_, Error>(rec)
    });
    // `status` is rendered at read time, so it counts its own handle too.
    while !cat("/scheme/dsmil/status").contains("open_handles: 3\n") {
        std::thread::yield_now();
    }
    // A thermal excursion is noticed by housekeeping alone, and the idle scan expires.
    sim.thermal.set(99);
    k.clock().advance(Duration::from_secs(31));
    let rec = reader
        .join()
        .expect("reader")
        .expect("woken by housekeeping");
    assert_eq!(
        EventRecord::decode(&rec).expect("record").kind,
        EventKind::ThermalExceeded
    );
    let mut buf = [0u8; CHUNK_SIZE];
    // The pass that noticed the heat may be the one that expires the scan or the next one.
    loop {
        match call::read(scan, &mut buf) {
            Err(e) if e.errno() == syscall::error::ESTALE => break,
            Ok(_) => k.clock().advance(Duration::from_secs(31)),
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert!(cat("/scheme/dsmil/status").contains("sessions: 0\n"));
}

/// A random client operation.
#[derive(Clone, Debug)]
enum Action {
    WriteDevice { token: u16, root: bool, value: u32 },
    ReadDevice { token: u16 },
    ControlRead { token: u16, by_call: bool },
    Scan,
}

fn action() -> impl Strategy<Value = Action> {
    // Bias towards the quarantined tokens so every run tries them many times.
    let token = prop_oneof![
        prop::sample::select(dsmil::wire::QUARANTINED_TOKENS.to_vec()),
        0x7FF0u16..0x8070,
    ];
    prop_oneof![
        (token.clone(), any::<bool>(), any::<u32>())
            .prop_map(|(token, root, value)| Action::WriteDevice { token, root, value }),
        token.clone().prop_map(|token| Action::ReadDevice { token }),
        (token, any::<bool>()).prop_map(|(token, by_call)| Action::ControlRead { token, by_call }),
        Just(Action::Scan),
    ]
}

fn perform(a: &Action) {
    match *a {
        Action::WriteDevice { token, value, .. } => {
            if let Ok(fd) = call::open(format!("/scheme/dsmil/device/{token:#06x}"), O_WRONLY, 0) {
                let _ = call::write(fd, &value.to_le_bytes());
                let _ = call::close(fd);
            }
        }
        Action::ReadDevice { token } => {
            if let Ok(fd) = call::open(format!("/scheme/dsmil/device/{token:x}"), O_RDONLY, 0) {
                let mut buf = [0u8; 512];
                let _ = call::read(fd, &mut buf);
                let _ = call::close(fd);
            }
        }
        Action::ControlRead { token, by_call } => {
            if let Ok(ctl) = call::open("/scheme/dsmil/control", O_RDWR, 0) {
                let mut buf = vec![0u8; 1024];
                if by_call {
                    let _ =
                        call::call_ro(ctl, &mut buf, CallFlags::empty(), &[4, u64::from(token)]);
                } else {
                    let req = dsmil::wire::ControlRequest::new(
                        dsmil::wire::Op::ReadStart,
                        u32::from(token),
                        0,
                    );
                    let _ = call::write(ctl, &req.to_bytes());
                    let _ = call::read(ctl, &mut buf);
                }
                let _ = call::close(ctl);
            }
        }
        Action::Scan => {
            let _ = scan_once();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn no_quarantined_write_ever_reaches_firmware(actions in prop::collection::vec(action(), 1..40)) {
        let k = machine();
        let sim = SimulatedDsmil::new(45);
        let d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
        let mut expected_writes = 0u64;
        for a in &actions {
            let cred = match a {
                Action::WriteDevice { root: true, .. } => Cred::ROOT,
                _ => Cred::USER,
            };
            if let Action::WriteDevice { token, root: true, .. } = a
                && (0x8000..=0x806B).contains(token)
                && !dsmil::wire::QUARANTINED_TOKENS.contains(token)
            {
                expected_writes += 1;
            }
            let (_p, _g) = k.enter("client", cred);
            perform(a);
        }
        prop_assert_eq!(sim.firmware.quarantined_writes(), 0);
        // The counter works: every allowed root write did arrive.
        let all: u64 = (0x8000..=0x806Bu16).map(|t| sim.firmware.writes(t)).sum();
        prop_assert_eq!(all, expected_writes);
        d.stop().map_err(TestCaseError::fail)?;
    }
}

#[test]
fn dsmild_over_the_dell_calling_interface() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let hw = sim
        .hardware_calling_interface(k.phys())
        .expect("buffer below 4 GiB");
    let _d = boot::dsmild(&k, dsmil::Config::default(), hw);
    let (_me, _g) = k.enter("admin", Cred::ROOT);
    assert!(cat("/scheme/dsmil/status").contains("devices_operational: 103"));
    let fd = call::open("/scheme/dsmil/device/0x8030", O_RDONLY, 0).expect("read");
    let data = read_all(fd);
    assert_eq!(
        &data[32..36],
        &0x5000_8030u32.to_le_bytes(),
        "value in chunk 0"
    );
    // The calling interface sets a token to its DMI table value (1 here) at the
    // table's location; any other value is refused before firmware sees it.
    let w = call::open("/scheme/dsmil/device/0x8030", O_WRONLY, 0).expect("write");
    assert_eq!(
        call::write(w, &77u32.to_le_bytes()),
        Err(Error::new(EINVAL))
    );
    assert_eq!(sim.firmware.writes(0x8030), 0);
    assert_eq!(call::write(w, &1u32.to_le_bytes()), Ok(4));
    assert_eq!(sim.firmware.value(0x8030), Some(1));
    assert_eq!(
        call::open("/scheme/dsmil/device/0x800a", O_WRONLY, 0),
        Err(Error::new(EACCES))
    );
    assert_eq!(sim.firmware.quarantined_writes(), 0);
}

event::user_data! {
    enum Watched {
        Events,
    }
}

#[test]
fn fevent_readiness_reaches_an_event_queue() {
    let k = machine();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("watcher", Cred::USER);
    let ev = call::open("/scheme/dsmil/events", O_RDONLY | O_NONBLOCK, 0).expect("events");
    let queue = event::EventQueue::<Watched>::new().expect("queue");
    queue
        .subscribe(ev, Watched::Events, event::EventFlags::READ)
        .expect("subscribe: the scheme's fevent");
    // Nothing yet; a refused access queues a record and the daemon posts readiness.
    assert_eq!(
        call::open("/scheme/dsmil/device/0x8009", O_RDONLY, 0),
        Err(Error::new(EACCES))
    );
    let ready = queue.next_event().expect("readiness posted");
    assert!(matches!(ready.user_data, Watched::Events));
    let mut rec = [0u8; EventRecord::SIZE];
    assert_eq!(call::read(ev, &mut rec), Ok(EventRecord::SIZE));
    assert_eq!(
        EventRecord::decode(&rec).expect("record").kind,
        EventKind::RefusedAccess
    );
    assert_eq!(call::read(ev, &mut rec), Err(Error::new(EAGAIN)));
}

/// The kernel asks dsmild before applying `F_SETFL` (redox-os/kernel
/// `src/syscall/fs.rs` `fcntl`), so a client can make an `events` handle
/// non-blocking after opening it; redox-scheme's default answer would refuse.
#[test]
fn events_handle_turns_nonblocking_by_fcntl() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_me, _g) = k.enter("main", Cred::USER);
    let ev = call::open("/scheme/dsmil/events", O_RDONLY, 0).expect("events");
    let fl = call::fcntl(ev, syscall::F_GETFL, 0).expect("F_GETFL");
    assert_eq!(fl & O_NONBLOCK as usize, 0);
    call::fcntl(ev, syscall::F_SETFL, fl | O_NONBLOCK as usize).expect("F_SETFL");
    let mut rec = [0u8; EventRecord::SIZE];
    assert_eq!(call::read(ev, &mut rec), Err(Error::new(EAGAIN)));
}
