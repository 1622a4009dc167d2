//! Per-client bounds of scheme `dsmil` (issue 14): handles and sessions per
//! user and per process, event fan-out linear in the readers, the SMI budget
//! of non-root users, and authorisation on the opener recorded at open.

use std::time::Duration;

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::wire::{ControlRequest, Op};
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::{EACCES, EAGAIN, EMFILE};
use syscall::flag::{EventFlags, O_RDONLY, O_RDWR, O_WRONLY};

struct Rig {
    h: SqeHarness<DsmilScheme>,
    clock: ManualClock,
    _sim: SimulatedDsmil,
}

fn rig(config: dsmil::Config) -> Rig {
    let sim = SimulatedDsmil::new(45);
    let clock = ManualClock::new();
    let hw = sim.hardware().clock(Box::new(clock.clone()));
    Rig {
        h: SqeHarness::new(DsmilScheme::new(config, hw)),
        clock,
        _sim: sim,
    }
}

fn stat(h: &mut SqeHarness<DsmilScheme>, key: &str) -> u64 {
    let fd = h.open("stats", O_RDONLY).expect("stats");
    let mut buf = vec![0u8; 8192];
    let n = h.read(fd, &mut buf).expect("read");
    h.close(fd);
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{key} in {text}"))
}

fn served(h: &mut SqeHarness<DsmilScheme>) {
    let scan = h.open("scan", O_RDONLY).expect("a scan");
    let mut buf = [0u8; 256];
    assert_eq!(h.read(scan, &mut buf), Ok(256));
    h.close(scan);
    let dev = h.open("device/0x8001", O_RDONLY).expect("a device read");
    assert!(h.read(dev, &mut buf).is_ok());
    h.close(dev);
}

#[test]
fn a_user_opening_until_refused_leaves_others_served() {
    let Rig { mut h, .. } = rig(dsmil::Config {
        smi_per_second: 10_000,
        ..dsmil::Config::default()
    });
    let cap = h.scheme.config().handles_per_uid as usize;
    // The hostile user spreads its opens over many processes: the user's
    // bound holds them all.
    h.as_user(1000, 1000);
    let mut held = 0;
    loop {
        h.pid = 1000 + held / 100;
        match h.open("control", O_RDWR) {
            Ok(_) => held += 1,
            Err(e) => {
                assert_eq!(e, EMFILE);
                break;
            }
        }
    }
    assert_eq!(held, cap);
    h.pid = 5000;
    assert_eq!(
        h.open("version", O_RDONLY),
        Err(EMFILE),
        "a new process of it too"
    );
    assert_eq!(h.open("scan", O_RDONLY), Err(EMFILE));
    // Another user and root are served in full.
    h.as_user(1001, 1001);
    h.pid = 6000;
    served(&mut h);
    h.as_user(0, 0);
    h.pid = 7000;
    served(&mut h);
    // The refusal that ended the loop, `version` and `scan`.
    assert_eq!(stat(&mut h, "refused_user_bound"), 3);
    assert_eq!(stat(&mut h, "handles_refused"), 3);
}

#[test]
fn a_process_of_a_shared_uid_cannot_starve_its_siblings() {
    // On Redox every driver runs as root: the per-process bound is what
    // separates them.
    let Rig { mut h, .. } = rig(dsmil::Config {
        handles_per_process: 50,
        sessions_per_process: 4,
        ..dsmil::Config::default()
    });
    h.pid = 200;
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(h.open("scan", O_RDONLY).expect("session"));
    }
    assert_eq!(h.open("scan", O_RDONLY), Err(EMFILE), "its session bound");
    let ctl = h.open("control", O_RDWR).expect("control");
    let start = ControlRequest::new(Op::ScanStart, 0, 0).to_bytes();
    assert_eq!(h.write(ctl, &start), Err(EMFILE), "also through control");
    while h.open("version", O_RDONLY).is_ok() {}
    assert_eq!(h.scheme.clients().process(200).handles, 50);
    h.pid = 201;
    served(&mut h);
    assert_eq!(stat(&mut h, "refused_process_bound"), 3);
    // Closing gives the bound back.
    h.pid = 200;
    h.close(sessions[0]);
    assert!(h.open("scan", O_RDONLY).is_ok());
}

#[test]
fn a_users_sessions_are_bounded_across_its_processes() {
    let Rig { mut h, .. } = rig(dsmil::Config {
        sessions_per_uid: 3,
        smi_per_second: 10_000,
        ..dsmil::Config::default()
    });
    h.as_user(1000, 1000);
    for pid in 300..303 {
        h.pid = pid;
        h.open("scan", O_RDONLY).expect("within the bound");
    }
    h.pid = 303;
    assert_eq!(h.open("device/0x8001", O_RDONLY), Err(EMFILE));
    h.as_user(1001, 1001);
    served(&mut h);
}

#[test]
fn bounds_are_root_tunables() {
    let Rig { mut h, .. } = rig(dsmil::Config::default());
    let c = h.open("config/handles_per_uid", O_RDWR).expect("root");
    assert_eq!(h.write(c, b"2\n"), Ok(2));
    assert_eq!(h.scheme.config().handles_per_uid, 2);
    let s = h.open("config/smi_per_second", O_WRONLY).expect("root");
    assert_eq!(h.write(s, b"0"), Err(syscall::error::EINVAL));
    h.as_user(1000, 1000);
    assert_eq!(h.open("config/smi_per_second", O_WRONLY), Err(EACCES));
    h.open("version", O_RDONLY).expect("1");
    h.open("version", O_RDONLY).expect("2");
    assert_eq!(h.open("version", O_RDONLY), Err(EMFILE));
}

#[test]
fn a_thousand_readers_and_a_burst_cost_one_step_per_reader_per_notice() {
    const READERS: u64 = 1000;
    const BURST: u64 = 50;
    let Rig { mut h, .. } = rig(dsmil::Config::default());
    let mut readers = Vec::new();
    for i in 0..READERS {
        h.pid = 10_000 + i as usize;
        let fd = h.open("events", O_RDONLY).expect("reader");
        assert_eq!(h.fevent(fd, EventFlags::EVENT_READ.bits()), Ok(0));
        readers.push(fd);
    }
    // Other handles are not visited when publishing.
    h.pid = 50;
    for _ in 0..1000 {
        h.open("version", O_RDONLY).expect("bystander");
    }
    let before = h.scheme.fanout_steps();
    h.as_user(1000, 1000);
    for _ in 0..BURST {
        // Anyone can cause a notice: a refused access is one.
        assert_eq!(h.open("device/0x8009", O_RDONLY), Err(EACCES));
    }
    assert_eq!(h.scheme.fanout_steps() - before, READERS * BURST);
    let mut posts = h.scheme.take_fevent_posts();
    assert_eq!(posts.len() as u64, READERS, "one readiness post per reader");
    posts.sort_unstable();
    posts.dedup();
    assert_eq!(posts.len() as u64, READERS);
    // Once taken, the next notice posts each reader again.
    assert_eq!(h.open("device/0x8009", O_RDONLY), Err(EACCES));
    assert_eq!(h.scheme.take_fevent_posts().len() as u64, READERS);
}

#[test]
fn the_smi_budget_trips_for_a_user_and_not_for_root() {
    let Rig { mut h, clock, .. } = rig(dsmil::Config {
        smi_per_second: 5,
        ..dsmil::Config::default()
    });
    h.as_user(1000, 1000);
    for _ in 0..5 {
        let fd = h.open("device/0x8001", O_RDONLY).expect("within budget");
        h.close(fd);
    }
    assert_eq!(h.open("device/0x8001", O_RDONLY), Err(EAGAIN));
    let ctl = h.open("control", O_RDWR).expect("control needs no SMI");
    let read = ControlRequest::new(Op::ReadDevice, 0x8001, 0).to_bytes();
    assert_eq!(h.write(ctl, &read), Err(EAGAIN), "nor through control");
    // Another user has its own budget; root has none to spend.
    h.as_user(1001, 1001);
    assert!(h.open("device/0x8001", O_RDONLY).is_ok());
    h.as_user(0, 0);
    for _ in 0..100 {
        let fd = h
            .open("device/0x8001", O_RDONLY)
            .expect("root is not limited");
        h.close(fd);
    }
    assert_eq!(stat(&mut h, "smi_rate_limited"), 2);
    // The budget refills on the scheme's clock.
    clock.advance(Duration::from_millis(200));
    h.as_user(1000, 1000);
    assert!(
        h.open("device/0x8001", O_RDONLY).is_ok(),
        "one fifth of a second: one SMI"
    );
    assert_eq!(h.open("device/0x8001", O_RDONLY), Err(EAGAIN));
}

#[test]
fn requests_are_authorised_on_the_opener_not_on_their_credentials() {
    let Rig { mut h, .. } = rig(dsmil::Config {
        smi_per_second: 1,
        ..dsmil::Config::default()
    });
    h.as_user(1000, 1000);
    let ctl = h.open("control", O_RDWR).expect("control");
    // The same handle used with root's credentials is still the user's.
    h.as_user(0, 0);
    let read = ControlRequest::new(Op::ReadDevice, 0x8001, 0).to_bytes();
    assert_eq!(h.write(ctl, &read), Ok(16));
    assert_eq!(h.write(ctl, &read), Err(EAGAIN), "the user's budget");
    // And a root-opened writable device stays root's whoever writes.
    let dev = h.open("device/0x8001", O_WRONLY).expect("root");
    h.as_user(1000, 1000);
    assert_eq!(h.write(dev, &1u32.to_le_bytes()), Ok(4));
}
