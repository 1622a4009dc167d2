//! SQE-level: every path and op of scheme `dsmil` on the simulated platform,
//! and every malformed request, without threads or a kernel.

use std::time::Duration;

use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::wire::{
    ControlRequest, DeviceInfo, DeviceState, EventKind, EventRecord, Op, ReadChunk, ScanChunk,
    SessionStart, SessionSummary, SystemStatus, ThermalReply, decode_device_list,
};
use dsmil_tests::sqe::SqeHarness;
use redox_host::hw::smm::SimulatedDsmil;
use syscall::error::{
    EACCES, EAGAIN, EBADF, EBUSY, EINVAL, EIO, EISDIR, EMFILE, ENOENT, ENOTDIR, ESTALE, ETIMEDOUT,
};
use syscall::flag::{EventFlags, O_DIRECTORY, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};

struct Rig {
    h: SqeHarness<DsmilScheme>,
    sim: SimulatedDsmil,
    clock: ManualClock,
}

fn rig_with(config: dsmil::Config) -> Rig {
    let sim = SimulatedDsmil::new(45);
    let clock = ManualClock::new();
    let hw = sim
        .hardware_timed_by(clock.clone())
        .clock(Box::new(clock.clone()));
    Rig {
        h: SqeHarness::new(DsmilScheme::new(config, hw)),
        sim,
        clock,
    }
}

fn rig() -> Rig {
    rig_with(dsmil::Config::default())
}

fn req(op: Op, arg0: u32, arg1: u64) -> [u8; 16] {
    ControlRequest::new(op, arg0, arg1).to_bytes()
}

/// Write-then-read one control request.
fn cycle(
    h: &mut SqeHarness<DsmilScheme>,
    ctl: usize,
    op: Op,
    a0: u32,
    a1: u64,
) -> Result<Vec<u8>, i32> {
    h.write(ctl, &req(op, a0, a1))?;
    let mut buf = vec![0u8; 8192];
    let n = h.read(ctl, &mut buf)?;
    buf.truncate(n);
    Ok(buf)
}

fn text(h: &mut SqeHarness<DsmilScheme>, path: &str) -> String {
    let fd = h.open(path, O_RDONLY).expect(path);
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        let n = h.read(fd, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    h.close(fd);
    String::from_utf8(out).expect("utf8")
}

#[test]
fn every_control_op_by_write_read_and_by_call() {
    let Rig { mut h, .. } = rig();
    let ctl = h.open("control", O_RDWR).expect("control");

    let status = SystemStatus::decode(&cycle(&mut h, ctl, Op::GetStatus, 0, 0).unwrap()).unwrap();
    assert!(status.kernel_module_loaded && status.thermal_safe);
    assert_eq!(
        (status.safe_device_count, status.quarantined_count),
        (103, 5)
    );
    assert_eq!(status.current_temp_celsius, 45);

    let thermal = ThermalReply::decode(&cycle(&mut h, ctl, Op::GetThermal, 0, 0).unwrap()).unwrap();
    assert_eq!((thermal.current_celsius, thermal.limit_celsius), (45, 85));

    let table = decode_device_list(&cycle(&mut h, ctl, Op::ScanDevices, 0, 0).unwrap()).unwrap();
    assert_eq!(table.len(), 108, "the whole table at once");
    let quarantined: Vec<u16> = table
        .iter()
        .filter(|d| d.state == DeviceState::Quarantined)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(quarantined, dsmil::wire::QUARANTINED_TOKENS);

    let data = cycle(&mut h, ctl, Op::ReadDevice, 0x8001, 0).unwrap();
    assert_eq!(
        data.len(),
        4 + DeviceInfo::SIZE + dsmil::platform::DEVICE_BLOCK_LEN
    );
    assert_eq!(&data[..4], &0x5000_8001u32.to_le_bytes());

    // Chunked scan by control.
    let start = SessionStart::decode(&cycle(&mut h, ctl, Op::ScanStart, 0, 0).unwrap()).unwrap();
    assert_eq!((start.total_chunks, start.total_items), (22, 108));
    let mut seen = Vec::new();
    for i in 0..22 {
        let chunk =
            ScanChunk::decode(&cycle(&mut h, ctl, Op::ScanChunk, i, start.session_id).unwrap())
                .unwrap();
        seen.extend_from_slice(chunk.valid_devices());
    }
    assert_eq!(seen, table);
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanChunk, 22, start.session_id),
        Err(EINVAL),
        "chunk after the end"
    );
    let done =
        SessionSummary::decode(&cycle(&mut h, ctl, Op::ScanComplete, 0, start.session_id).unwrap())
            .unwrap();
    assert_eq!((done.chunks_delivered, done.total_chunks), (22, 22));
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanChunk, 0, start.session_id),
        Err(EINVAL),
        "completed session is gone"
    );

    // Chunked device read by control, then the same by call.
    let start =
        SessionStart::decode(&cycle(&mut h, ctl, Op::ReadStart, 0x8001, 0).unwrap()).unwrap();
    assert_eq!(
        (start.total_chunks, start.total_items as usize),
        (4, data.len())
    );
    let mut joined = Vec::new();
    for i in 0..4 {
        let chunk =
            ReadChunk::decode(&cycle(&mut h, ctl, Op::ReadChunk, i, start.session_id).unwrap())
                .unwrap();
        joined.extend_from_slice(chunk.valid_data());
    }
    assert_eq!(joined, data);
    let mut payload = [0u8; 256];
    let n = h
        .call(ctl, &mut payload, &[10, 3, start.session_id])
        .expect("chunk by call");
    assert_eq!(
        ReadChunk::decode(&payload[..n]).unwrap().valid_data(),
        &data[672..]
    );
    let n = h
        .call(ctl, &mut payload[..16], &[11, 0, start.session_id])
        .expect("complete by call");
    assert_eq!(
        SessionSummary::decode(&payload[..n])
            .unwrap()
            .chunks_delivered,
        4
    );

    // Whole results by call too.
    let mut big = vec![0u8; 108 * 40];
    assert_eq!(h.call(ctl, &mut big, &[3]), Ok(4320));
    assert_eq!(decode_device_list(&big).unwrap(), table);
    assert_eq!(
        h.call(ctl, &mut big[..4319], &[3]),
        Err(EINVAL),
        "payload too small"
    );
    assert_eq!(h.scheme.session_count(), 0);
    h.close(ctl);
}

#[test]
fn malformed_and_refused_control_requests() {
    let Rig { mut h, .. } = rig();
    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(
        h.write(ctl, &req(Op::GetVersion, 0, 0)[..15]),
        Err(EINVAL),
        "short"
    );
    assert_eq!(h.write(ctl, &[0u8; 17]), Err(EINVAL), "long");
    let mut unknown = req(Op::GetVersion, 0, 0);
    unknown[0] = 12;
    assert_eq!(h.write(ctl, &unknown), Err(EINVAL), "unknown op");
    assert_eq!(
        cycle(&mut h, ctl, Op::ReadStart, 0x806C, 0),
        Err(EINVAL),
        "token out of range"
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ReadDevice, 0x7FFF, 0),
        Err(EINVAL),
        "token out of range"
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ReadStart, 0x8009, 0),
        Err(EACCES),
        "quarantined"
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanChunk, 0, 0),
        Err(EINVAL),
        "chunk without a session"
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ReadChunk, 0, 42),
        Err(EINVAL),
        "chunk of an unknown session"
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanComplete, 0, 42),
        Err(EINVAL),
        "complete without a session"
    );
    // A read session's id is not a scan session.
    let start =
        SessionStart::decode(&cycle(&mut h, ctl, Op::ReadStart, 0x8000, 0).unwrap()).unwrap();
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanChunk, 0, start.session_id),
        Err(EINVAL)
    );
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanComplete, 0, start.session_id),
        Err(EINVAL)
    );
    // Another open description cannot see this one's session.
    let other = h.open("control", O_RDWR).expect("control");
    assert_eq!(
        cycle(&mut h, other, Op::ReadChunk, 0, start.session_id),
        Err(EINVAL)
    );
    let mut small = [0u8; 8];
    assert_eq!(
        h.call(ctl, &mut small, &[7, 0, start.session_id]),
        Err(EINVAL),
        "buffer smaller than a chunk"
    );
    assert_eq!(
        h.call(ctl, &mut small, &[1, 0, 0, 0]),
        Err(EINVAL),
        "too much metadata"
    );
    h.close(ctl);
    h.close(other);
    assert_eq!(h.scheme.session_count(), 0, "close frees the session");
}

#[test]
fn scan_file_returns_whole_chunks_then_zero() {
    let Rig { mut h, .. } = rig();
    let scan = h.open("scan", O_RDONLY).expect("scan");
    assert_eq!(h.scheme.session_count(), 1);
    let mut small = [0u8; 255];
    assert_eq!(
        h.read(scan, &mut small),
        Err(EINVAL),
        "buffer smaller than a chunk"
    );
    let mut buf = vec![0u8; 256 * 3 + 100];
    assert_eq!(
        h.read(scan, &mut buf),
        Ok(768),
        "as many whole chunks as fit"
    );
    let mut rest = vec![0u8; 256 * 30];
    assert_eq!(h.read(scan, &mut rest), Ok(256 * 19));
    assert_eq!(h.read(scan, &mut rest), Ok(0), "0 at the end");
    let last = ScanChunk::decode(&rest[256 * 18..256 * 19]).unwrap();
    assert_eq!(
        (last.header.chunk_index, last.header.devices_in_chunk),
        (21, 3)
    );
    assert_eq!(h.write(scan, b"x"), Err(EACCES));
    assert_eq!(h.open("scan", O_WRONLY), Err(EACCES));
    h.close(scan);
    assert_eq!(h.scheme.session_count(), 0, "close completes it");
}

#[test]
fn device_files_read_in_chunks_and_root_writes_reach_firmware() {
    let Rig { mut h, sim, .. } = rig();
    let dev = h.open("device/0x8001", O_RDONLY).expect("device");
    let mut buf = vec![0u8; 1024];
    assert_eq!(h.read(dev, &mut buf[..100]), Err(EINVAL));
    assert_eq!(h.read(dev, &mut buf), Ok(1024), "four whole chunks");
    let c = ReadChunk::decode(&buf[..256]).unwrap();
    assert_eq!((c.header.token, c.header.total_chunks), (0x8001, 4));
    assert_eq!(h.read(dev, &mut buf), Ok(0));
    assert_eq!(
        h.write(dev, &7u32.to_le_bytes()),
        Err(EBADF),
        "opened read-only"
    );
    h.close(dev);

    assert_eq!(h.open("device/0x806c", O_RDONLY), Err(ENOENT));
    assert_eq!(h.open("device/0x8009", O_RDONLY), Err(EACCES));
    assert_eq!(h.open("device/0x8009", O_WRONLY), Err(EACCES));

    let w = h.open("device/8002", O_WRONLY).expect("root may write");
    assert_eq!(h.write(w, &[1, 2, 3]), Err(EINVAL), "a value is 4 bytes");
    assert_eq!(h.write(w, &0xABCDu32.to_le_bytes()), Ok(4));
    assert_eq!(sim.firmware.value(0x8002), Some(0xABCD));
    assert_eq!(sim.firmware.writes(0x8002), 1);
    h.as_user(1000, 1000);
    assert_eq!(
        h.open("device/8002", O_WRONLY),
        Err(EACCES),
        "non-root write"
    );
    assert_eq!(h.open("device/8002", O_RDWR), Err(EACCES), "non-root write");
    assert_eq!(sim.firmware.writes(0x8002), 1);
    // Authority is what the handle recorded at open: root's handle (passed on,
    // say) writes whatever credentials the request carries.
    assert_eq!(h.write(w, &1u32.to_le_bytes()), Ok(4));
    assert_eq!(sim.firmware.writes(0x8002), 2);
    assert_eq!(sim.firmware.quarantined_writes(), 0);
    h.close(w);
}

#[test]
fn thermal_guard_refuses_then_recovers() {
    let Rig { mut h, sim, .. } = rig();
    let ev = h.open("events", O_RDONLY).expect("events");
    sim.thermal.set(95);
    assert_eq!(h.open("device/0x8001", O_RDONLY), Err(EBUSY));
    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(cycle(&mut h, ctl, Op::ReadDevice, 0x8001, 0), Err(EBUSY));
    assert!(text(&mut h, "thermal").contains("throttled: true"));
    let table = decode_device_list(&cycle(&mut h, ctl, Op::ScanDevices, 0, 0).unwrap()).unwrap();
    assert!(
        table
            .iter()
            .filter(|d| !d.is_quarantined)
            .all(|d| d.state == DeviceState::ThermalLimit)
    );
    sim.thermal.set(70);
    h.scheme.housekeeping();
    assert!(h.open("device/0x8001", O_RDONLY).is_ok(), "recovered");
    let mut rec = [0u8; 40];
    h.read(ev, &mut rec).expect("exceeded");
    let first = EventRecord::decode(&rec).unwrap();
    assert_eq!(
        (first.kind, first.arg0, first.arg1),
        (EventKind::ThermalExceeded, 95, 85)
    );
    h.read(ev, &mut rec).expect("recovered");
    let second = EventRecord::decode(&rec).unwrap();
    assert_eq!(second.kind, EventKind::ThermalRecovered);
    assert_eq!(second.sequence, first.sequence + 1);
}

#[test]
fn hung_smi_times_out_and_the_device_errors() {
    let Rig { mut h, sim, .. } = rig();
    sim.firmware.set_hung(0x8003, true);
    assert_eq!(h.open("device/0x8003", O_RDONLY), Err(ETIMEDOUT));
    assert_eq!(
        sim.firmware.reads(0x8003),
        1 + 3,
        "bring-up, then one try and two retries"
    );
    assert_eq!(
        h.open("device/0x8003", O_RDONLY),
        Err(EIO),
        "device is now in Error"
    );
    assert!(
        h.open("device/0x8004", O_RDONLY).is_ok(),
        "others still served"
    );
    sim.firmware.set_unresponsive(0x8005, true);
    assert_eq!(h.open("device/0x8005", O_RDONLY), Err(EIO));
    let health = text(&mut h, "health");
    assert!(health.contains("devices_operational: 101/103"), "{health}");
    sim.firmware.set_hung(0x8003, false);
    sim.firmware.set_unresponsive(0x8005, false);
    h.scheme.housekeeping();
    assert!(
        h.open("device/0x8003", O_RDONLY).is_ok(),
        "brought back up by housekeeping"
    );
    assert!(text(&mut h, "health").contains("devices_operational: 103/103"));
}

#[test]
fn events_block_nonblock_and_fevent() {
    let Rig { mut h, .. } = rig();
    let ev = h.open("events", O_RDONLY).expect("events");
    let mut rec = [0u8; 40];
    assert_eq!(h.read_flags(ev, &mut rec, O_NONBLOCK), Err(EAGAIN));
    assert_eq!(
        h.read(ev, &mut rec),
        Err(syscall::error::EWOULDBLOCK),
        "would block: parked by the loop"
    );
    assert_eq!(h.fevent(ev, EventFlags::EVENT_READ.bits()), Ok(0));
    assert_eq!(h.read(ev, &mut rec[..39]), Err(EINVAL));
    // A refused access is an event.
    h.as_user(1000, 1000);
    assert_eq!(h.open("device/0x8019", O_RDONLY), Err(EACCES));
    assert_eq!(h.scheme.take_fevent_posts(), vec![ev], "readiness posted");
    assert_eq!(
        h.fevent(ev, EventFlags::EVENT_READ.bits()),
        Ok(EventFlags::EVENT_READ.bits())
    );
    assert_eq!(h.read(ev, &mut rec), Ok(40));
    let r = EventRecord::decode(&rec).unwrap();
    assert_eq!(
        (r.kind, r.token, r.arg0, r.arg1),
        (EventKind::RefusedAccess, 0x8019, EACCES, 1000)
    );
    assert_eq!(h.open("events", O_WRONLY), Err(EACCES));
}

#[test]
fn config_files_are_validated_and_root_only() {
    let Rig { mut h, .. } = rig();
    assert_eq!(text(&mut h, "config/session_limit"), "256\n");
    let c = h.open("config/session_limit", O_RDWR).expect("root");
    assert_eq!(h.write(c, b"0"), Err(EINVAL));
    assert_eq!(h.write(c, b"abc"), Err(EINVAL));
    assert_eq!(h.write(c, b"4097\n"), Err(EINVAL));
    assert_eq!(h.write(c, b"2\n"), Ok(2));
    let a = h.open("scan", O_RDONLY).expect("1");
    let b = h.open("device/0x8000", O_RDONLY).expect("2");
    assert_eq!(h.open("scan", O_RDONLY), Err(EMFILE), "past the limit");
    let ctl = h.open("control", O_RDWR).expect("control needs no session");
    assert_eq!(cycle(&mut h, ctl, Op::ScanStart, 0, 0), Err(EMFILE));
    h.close(a);
    assert!(h.open("scan", O_RDONLY).is_ok());
    h.close(b);
    let t = h.open("config/thermal_limit", O_WRONLY).expect("root");
    assert_eq!(h.write(t, b"126"), Err(EINVAL));
    assert_eq!(h.write(t, b"40"), Ok(2));
    assert_eq!(
        h.open("device/0x8001", O_RDONLY),
        Err(EBUSY),
        "45 °C is now above the limit"
    );
    h.as_user(1000, 1000);
    assert_eq!(h.open("config/thermal_limit", O_WRONLY), Err(EACCES));
    // Root's handle keeps root's authority (the opener recorded at open).
    assert_eq!(h.write(t, b"90"), Ok(2));
    assert_eq!(text(&mut h, "config/thermal_limit"), "90\n");
    assert_eq!(h.open("config/nope", O_RDONLY), Err(ENOENT));
    let dir = h.open("config", O_RDONLY | O_DIRECTORY).expect("dir");
    let mut buf = [0u8; 256];
    let n = h.read(dir, &mut buf).unwrap();
    assert_eq!(
        &buf[..n],
        b"session_limit\nsession_idle_timeout\nthermal_limit\nhousekeeping_interval\n\
          handles_per_uid\nhandles_per_process\nsessions_per_uid\nsessions_per_process\n\
          smi_per_second\n"
    );
    assert_eq!(h.open("version", O_RDONLY | O_DIRECTORY), Err(ENOTDIR));
    assert_eq!(h.open("device", O_WRONLY), Err(EISDIR));
}

#[test]
fn idle_sessions_expire_on_housekeeping() {
    let Rig { mut h, clock, .. } = rig();
    let scan = h.open("scan", O_RDONLY).expect("scan");
    let ctl = h.open("control", O_RDWR).expect("control");
    let start = SessionStart::decode(&cycle(&mut h, ctl, Op::ScanStart, 0, 0).unwrap()).unwrap();
    clock.advance(Duration::from_secs(20));
    let mut buf = [0u8; 256];
    assert_eq!(h.read(scan, &mut buf), Ok(256), "use keeps the scan alive");
    clock.advance(Duration::from_secs(15));
    assert_eq!(h.scheme.housekeeping(), 1, "the control session idled 35 s");
    assert_eq!(
        cycle(&mut h, ctl, Op::ScanChunk, 0, start.session_id),
        Err(EINVAL)
    );
    clock.advance(Duration::from_secs(30));
    assert_eq!(h.scheme.housekeeping(), 1);
    assert_eq!(h.read(scan, &mut buf), Err(ESTALE));
    assert_eq!(h.scheme.session_count(), 0);
    assert!(text(&mut h, "stats").contains("sessions_expired: 2"));
}

#[test]
fn text_files_stats_and_log() {
    let Rig { mut h, .. } = rig();
    let status = text(&mut h, "status");
    for needle in [
        "firmware: smi",
        "devices_operational: 103",
        "sessions: 0",
        "health: 100",
    ] {
        assert!(status.contains(needle), "{needle} in {status}");
    }
    let health = text(&mut h, "health");
    assert!(
        health.contains("grade: ok") && health.contains("formula: "),
        "{health}"
    );
    let devices = text(&mut h, "devices");
    assert_eq!(devices.lines().count(), 109);
    assert_eq!(
        devices.matches("QUARANTINED").count(),
        5 * 2,
        "state and flag columns"
    );
    let ctl = h.open("control", O_RDWR).expect("control");
    cycle(&mut h, ctl, Op::GetVersion, 0, 0).unwrap();
    let _ = cycle(&mut h, ctl, Op::ReadStart, 0x800A, 0);
    let stats = text(&mut h, "stats");
    assert!(stats.contains("GET_VERSION: 1 0"), "{stats}");
    assert!(stats.contains("READ_START: 1 1"), "{stats}");
    assert!(stats.contains("refused_quarantine: 1"), "{stats}");
    let log = text(&mut h, "log");
    assert!(log.contains("control GET_VERSION -> ok 16"), "{log}");
    assert!(log.contains("control READ_START -> errno 13"), "{log}");
    let dir = h
        .open("device", O_RDONLY | O_DIRECTORY)
        .expect("device dir");
    let mut buf = vec![0u8; 2048];
    let n = h.read(dir, &mut buf).unwrap();
    assert!(
        std::str::from_utf8(&buf[..n])
            .unwrap()
            .starts_with("0x8000\n0x8001\n")
    );
    let v = h
        .openat(dir, "0x8000", O_RDONLY)
        .expect("relative to device/");
    h.close(v);
}
