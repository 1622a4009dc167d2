//! SQE-level: the same dsmil behaviours without threads or a kernel.

use dsmil::scheme::DsmilScheme;
use dsmil::wire::{ControlRequest, Op, VersionInfo};
use dsmil_tests::sqe::SqeHarness;
use syscall::error::{EACCES, EBADF, EINVAL, EISDIR, ENOENT};
use syscall::flag::{O_RDONLY, O_RDWR, O_WRONLY};

fn harness() -> SqeHarness<DsmilScheme> {
    SqeHarness::new(DsmilScheme::new(
        dsmil::Config::default(),
        dsmil::Hardware::minimal(60),
    ))
}

#[test]
fn root_listing_by_read_and_getdents() {
    let mut h = harness();
    let root = h.open("", O_RDONLY).expect("root");
    let mut buf = [0u8; 256];
    let n = h.read(root, &mut buf).expect("read");
    assert_eq!(
        &buf[..n],
        &b"control\nscan\ndevice\nevents\nconfig\nversion\nstatus\nthermal\nhealth\ndevices\nstats\nlog\nmmio\n"[..]
    );
    let mut buf = [0u8; 1024];
    let n = h.getdents(root, &mut buf, 0).expect("getdents");
    let names: Vec<String> = syscall::dirent::DirentIter::new(&buf[..n])
        .filter_map(|e| e.ok())
        .map(|(_, name)| {
            String::from_utf8_lossy(name)
                .trim_end_matches(char::from(0))
                .to_string()
        })
        .collect();
    assert_eq!(
        names,
        [
            "control", "scan", "device", "events", "config", "version", "status", "thermal",
            "health", "devices", "stats", "log", "mmio"
        ]
    );
    assert_eq!(h.write(root, b"x"), Err(EISDIR));
}

#[test]
fn version_file_and_get_version_both_ways() {
    let mut h = harness();
    let v = h.open("version", O_RDONLY).expect("version");
    let mut buf = [0u8; 512];
    let n = h.read(v, &mut buf).expect("read");
    let text = std::str::from_utf8(&buf[..n]).expect("utf8");
    assert!(text.starts_with("version: 1.0.0\n"), "{text}");
    assert_eq!(h.read(v, &mut buf), Ok(0), "EOF after the snapshot");

    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(
        h.write(ctl, &ControlRequest::new(Op::GetVersion, 0, 0).to_bytes()),
        Ok(16)
    );
    let mut small = [0u8; 8];
    assert_eq!(
        h.read(ctl, &mut small),
        Err(EINVAL),
        "buffer smaller than the response"
    );
    let n = h
        .read(ctl, &mut buf)
        .expect("response kept after a short read");
    assert_eq!(VersionInfo::decode(&buf[..n]), Ok(VersionInfo::default()));
    assert_eq!(
        h.read(ctl, &mut buf),
        Err(EINVAL),
        "one response per request"
    );
    let n = h.call(ctl, &mut buf[..16], &[1]).expect("call");
    assert_eq!(VersionInfo::decode(&buf[..n]), Ok(VersionInfo::default()));
}

#[test]
fn malformed_requests_get_einval() {
    let mut h = harness();
    let ctl = h.open("control", O_RDWR).expect("control");
    let good = ControlRequest::new(Op::GetVersion, 0, 0).to_bytes();
    assert_eq!(h.write(ctl, &good[..15]), Err(EINVAL), "short");
    let mut long = good.to_vec();
    long.push(0);
    assert_eq!(h.write(ctl, &long), Err(EINVAL), "long");
    let mut unknown = good;
    unknown[0] = 0;
    assert_eq!(h.write(ctl, &unknown), Err(EINVAL), "op 0");
    unknown[0] = 12;
    assert_eq!(h.write(ctl, &unknown), Err(EINVAL), "op 12");
    let mut buf = [0u8; 16];
    assert_eq!(h.call(ctl, &mut buf, &[]), Err(EINVAL), "call without op");
    assert_eq!(
        h.call(ctl, &mut buf, &[77]),
        Err(EINVAL),
        "unknown op by call"
    );
    assert_eq!(
        h.call(ctl, &mut buf[..4], &[1]),
        Err(EINVAL),
        "payload too small"
    );
}

#[test]
fn unknown_paths_bad_handles_and_modes() {
    let mut h = harness();
    assert_eq!(h.open("nope", O_RDONLY), Err(ENOENT));
    assert_eq!(h.open("version/x", O_RDONLY), Err(ENOENT));
    assert_eq!(
        h.open("status", O_WRONLY),
        Err(EACCES),
        "text files are read-only"
    );
    let mut buf = [0u8; 8];
    assert_eq!(h.read(12345, &mut buf), Err(EBADF));
    let s = h.open("status", O_RDONLY).expect("status");
    h.close(s);
    assert_eq!(h.read(s, &mut buf), Err(EBADF), "closed by CloseMsg");
    assert_eq!(h.scheme.open_handles(), 0, "nothing leaks");
}
