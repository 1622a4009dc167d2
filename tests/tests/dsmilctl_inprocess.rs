//! `dsmilctl`'s commands and the client library, in-process against the unmodified
//! dsmild on the mocked kernel (through the `libredox` transport: std file I/O on
//! Linux does not reach the mocked kernel; tests/tests/fuse_mount.rs covers it).

use dsmil::client::ctl::{self, CtlError, Output};
use dsmil::client::fast::ControlChannel;
use dsmil::client::{Dsmil, SchemeCalls, decode_scan_stream};
use dsmil::wire::{
    CHUNK_SIZE, EventKind, QUARANTINED_TOKENS, SCAN_CHUNK_COUNT, Token, VersionInfo,
};
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::{Cred, Kernel, boot};
use syscall::error::{EACCES, ENOENT};

fn run(cmd: impl FnOnce(&mut Vec<u8>) -> ctl::CtlResult) -> Result<Vec<u8>, CtlError> {
    let mut out = Vec::new();
    cmd(&mut out).map(|()| out)
}

fn text(cmd: impl FnOnce(&mut Vec<u8>) -> ctl::CtlResult) -> String {
    String::from_utf8(run(cmd).expect("command")).expect("utf8")
}

#[test]
fn version_status_text_and_call_fast_path_agree() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_p, _g) = k.enter("dsmilctl", Cred::USER);
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    let v = d.version().expect("version");
    assert_eq!(v, VersionInfo::default());
    let fast = ControlChannel::open("/scheme/dsmil").expect("control");
    assert_eq!(fast.version().expect("call"), v);

    let table = text(|o| ctl::version(&d, Output::Table, o));
    assert!(table.contains("devices      108"), "{table}");
    let json = text(|o| ctl::version(&d, Output::Json, o));
    assert_eq!(
        json,
        "{\"protocol\":\"1.0.0\",\"devices\":108,\"quarantined\":5,\"first_token\":\"0x8000\",\
         \"last_token\":\"0x806b\",\"chunk_size\":256}\n"
    );
    let status = d.text("status").expect("status text");
    assert!(status.contains("temperature_celsius: 44"), "{status}");
    let status_json = text(|o| ctl::text(&d, "status", Output::Json, o));
    assert!(
        status_json.contains("\"temperature_celsius\":\"44\""),
        "{status_json}"
    );
}

#[test]
fn errors_name_the_errno_and_the_path() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_p, _g) = k.enter("dsmilctl", Cred::USER);
    let missing = Dsmil::open_with("/scheme/no-such-scheme", SchemeCalls).expect_err("no scheme");
    assert_eq!(missing.errno, ENOENT);
    assert_eq!(
        missing.to_string(),
        "open /scheme/no-such-scheme/control: ENOENT (errno 2)"
    );
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    match run(|o| ctl::text(&d, "no-such-file", Output::Table, o)) {
        Err(CtlError::Client(e)) => {
            assert_eq!(e.errno, ENOENT);
            assert_eq!(e.path, std::path::Path::new("/scheme/dsmil/no-such-file"));
            assert!(e.to_string().contains("ENOENT"), "{e}");
        }
        other => panic!("expected ENOENT, got {other:?}"),
    }
    // Raw output exists only where the scheme has bytes to give.
    assert!(matches!(
        run(|o| ctl::version(&d, Output::Raw, o)),
        Err(CtlError::Usage(_))
    ));
}

#[test]
fn scan_table_json_and_raw_chunks() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_p, _g) = k.enter("dsmilctl", Cred::USER);
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    let raw = run(|o| ctl::scan(&d, Output::Raw, o)).expect("scan --raw");
    // --raw is the scheme's bytes: whole chunks, parsed back one by one.
    assert_eq!(raw.len(), SCAN_CHUNK_COUNT * CHUNK_SIZE);
    let chunks = decode_scan_stream(&raw).expect("chunks parse back");
    assert_eq!(chunks.len(), SCAN_CHUNK_COUNT);
    let devices: Vec<_> = chunks
        .iter()
        .flat_map(|c| c.valid_devices().to_vec())
        .collect();
    assert_eq!(devices.len(), 108);
    assert_eq!(devices, d.scan().expect("scan"));
    let quarantined: Vec<u16> = devices
        .iter()
        .filter(|d| d.is_quarantined)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(quarantined, QUARANTINED_TOKENS);

    let table = text(|o| ctl::scan(&d, Output::Table, o));
    assert!(
        table.contains("108 devices, 5 quarantined (0x8009 0x800a 0x800b 0x8019 0x8029)"),
        "{table}"
    );
    assert_eq!(table.lines().count(), 1 + 108 + 1);
    let json = text(|o| ctl::scan(&d, Output::Json, o));
    assert!(
        json.starts_with("{\"count\":108,\"quarantined\":5,\"devices\":["),
        "{json}"
    );
    assert_eq!(json.matches("\"token\":").count(), 108);
}

#[test]
fn device_reads_and_refusals() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_p, _g) = k.enter("dsmilctl", Cred::USER);
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    let token = Token::new(0x8000).expect("token");
    let data = d.read(token).expect("read");
    // The same device as the one-call READ_DEVICE: same size, same leading
    // value (later bytes carry live state, which a read itself advances).
    let fast = ControlChannel::open("/scheme/dsmil")
        .expect("control")
        .read_device(token)
        .expect("READ_DEVICE");
    assert!(data.len() > 8);
    assert_eq!(fast.len(), data.len());
    assert_eq!(fast[..8], data[..8]);
    let dump = text(|o| ctl::read(&d, token, Output::Table, o));
    assert!(
        dump.starts_with(&format!("0x8000: {} bytes", data.len())),
        "{dump}"
    );
    // Quarantined: refused, and the error says where.
    let q = Token::new(0x8009).expect("token");
    let e = d.read(q).expect_err("quarantined");
    assert_eq!(e.errno, EACCES);
    assert!(e.to_string().contains("device/0x8009"), "{e}");
    // Writes are root-only.
    let e = d
        .write_token(Token::new(0x8001).expect("t"), 1)
        .expect_err("user");
    assert_eq!(e.errno, EACCES);
}

/// A refused access (a read of quarantined 0x8009) by another client: one of
/// the things `events` reports.
fn refused_read(k: &std::sync::Arc<Kernel>) {
    let refused = k
        .spawn("other-client", Cred::USER, || {
            Dsmil::open_with("/scheme/dsmil", SchemeCalls)
                .expect("open")
                .read(Token::new(0x8009).expect("token"))
        })
        .join()
        .expect("client thread");
    assert_eq!(refused.map_err(|e| e.errno), Err(EACCES));
}

#[test]
fn events_iterator_blocks_until_a_record_arrives() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let (_p, _g) = k.enter("dsmilctl", Cred::USER);
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    let mut events = match d.events() {
        Ok(events) => events,
        Err(e) => panic!("events: {e}"),
    };
    // The reader exists before the event, so the record is queued for it.
    refused_read(&k);
    let record = events.next().expect("a record").expect("read");
    assert_eq!(record.kind, EventKind::RefusedAccess);
    assert_eq!(record.token, 0x8009);
    assert_eq!(record.arg0, EACCES);
    assert_eq!(record.arg1, Cred::USER.uid as i32);
}

#[test]
fn watch_prints_events_as_they_arrive() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    {
        let (_p, _g) = k.enter("probe", Cred::USER);
        let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
        match d.events() {
            Ok(_) => {}
            Err(e) => panic!("events: {e}"),
        }
    }
    let watcher = k.spawn("dsmilctl-watch", Cred::USER, || {
        let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
        let mut out = Vec::new();
        ctl::watch(&d, Some(1), Output::Json, &mut out).map(|()| out)
    });
    // The watcher opens `events` on its own thread; refusals repeat until it has
    // seen one (each is delivered to every reader open at the time).
    let mut triggers = 0;
    while !watcher.is_finished() {
        refused_read(&k);
        triggers += 1;
        assert!(triggers < 100_000, "watch never saw an event");
    }
    let out = match watcher.join().expect("watch thread") {
        Ok(out) => String::from_utf8(out).expect("utf8"),
        Err(e) => panic!("watch: {e}"),
    };
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.contains("\"kind\":\"refused_access\",\"token\":\"0x8009\",\"arg0\":13,\"arg1\":1000,"),
        "{out}"
    );
}

#[test]
fn status_health_and_set() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(44);
    let _d = boot::dsmild_simulated(&k, dsmil::Config::default(), &sim);
    let user = k
        .spawn("dsmilctl-user", Cred::USER, || {
            let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
            let table = text(|o| ctl::status(&d, Output::Table, o));
            let json = text(|o| ctl::status(&d, Output::Json, o));
            let health = text(|o| ctl::text(&d, "health", Output::Table, o));
            let health_json = text(|o| ctl::text(&d, "health", Output::Json, o));
            let set = run(|o| ctl::set(&d, Token::new(0x8001).expect("t"), 7, Output::Table, o));
            (table, json, health, health_json, set)
        })
        .join()
        .expect("user client");
    let (table, json, health, health_json, set) = user;
    assert!(table.contains("temperature_celsius     44"), "{table}");
    assert!(table.contains("quarantined_devices     5"), "{table}");
    assert!(json.contains("\"temperature_celsius\":44,"), "{json}");
    assert!(json.contains("\"thermal_limit_celsius\":85,"), "{json}");
    assert!(!health.trim().is_empty());
    assert!(
        health_json.starts_with('{') && health_json.len() > 3,
        "{health_json}"
    );
    // Writes are root-only: the user's set is refused and names the device.
    match set {
        Err(CtlError::Client(e)) => {
            assert_eq!(e.errno, EACCES);
            assert!(e.path.ends_with("device/0x8001"), "{e}");
        }
        other => panic!("user set: {other:?}"),
    }
    assert_ne!(sim.firmware.value(0x8001), Some(7));

    let (_p, _g) = k.enter("dsmilctl-root", Cred::ROOT);
    let d = Dsmil::open_with("/scheme/dsmil", SchemeCalls).expect("open");
    let out = text(|o| ctl::set(&d, Token::new(0x8001).expect("t"), 7, Output::Table, o));
    assert_eq!(out, "0x8001 = 0x7\n");
    assert_eq!(sim.firmware.value(0x8001), Some(7));
    // Quarantined tokens are refused even for root, before the firmware.
    let e = d
        .write_token(Token::new(0x8009).expect("t"), 1)
        .expect_err("quarantined");
    assert_eq!(e.errno, EACCES);
    assert_eq!(sim.firmware.quarantined_writes(), 0);
}
