//! End-to-end: the unmodified dsmild loop serving client threads through the mocked
//! kernel.

use dsmil::wire::{ControlRequest, Op, VersionInfo};
use libredox::call;
use libredox::error::Error;
use libredox::flag::{O_DIRECTORY, O_RDONLY, O_RDWR};
use redox_host::{Cred, Kernel, boot};
use syscall::CallFlags;
use syscall::error::{EINVAL, ENOENT};

fn read_all(fd: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match call::read(fd, &mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read: {e:?}"),
        }
    }
}

#[test]
fn serves_listing_text_and_version_to_client_threads() {
    let k = Kernel::boot();
    let d = boot::dsmild(&k, dsmil::Config::default(), dsmil::Hardware::minimal(50));
    let clients: Vec<_> = (0..4)
        .map(|i| {
            k.spawn(&format!("client{i}"), Cred::USER, || {
                let root = call::open("/scheme/dsmil", O_RDONLY | O_DIRECTORY, 0).expect("root");
                let listing = String::from_utf8(read_all(root)).expect("utf8");
                let status = call::open("/scheme/dsmil/status", O_RDONLY, 0).expect("status");
                let text = String::from_utf8(read_all(status)).expect("utf8");
                let ctl = call::open("/scheme/dsmil/control", O_RDWR, 0).expect("control");
                let req = ControlRequest::new(Op::GetVersion, 0, 0).to_bytes();
                assert_eq!(call::write(ctl, &req), Ok(16));
                let mut resp = [0u8; 64];
                let n = call::read(ctl, &mut resp).expect("response");
                let v = VersionInfo::decode(&resp[..n]).expect("decode");
                let mut resp2 = [0u8; VersionInfo::SIZE];
                let m = call::call_ro(ctl, &mut resp2, CallFlags::empty(), &[1]).expect("call");
                assert_eq!(VersionInfo::decode(&resp2[..m]), Ok(v));
                (listing, text, v)
            })
        })
        .collect();
    for c in clients {
        let (listing, text, v) = c.join().expect("client");
        assert!(listing.starts_with("control\nscan\ndevice\n"), "{listing}");
        assert!(text.contains("temperature_celsius: 50"), "{text}");
        assert_eq!(v, VersionInfo::default());
    }
    d.stop().expect("clean stop");
}

#[test]
fn unknown_path_and_bad_requests() {
    let k = Kernel::boot();
    let _d = boot::dsmild(&k, dsmil::Config::default(), dsmil::Hardware::minimal(50));
    let (_me, _g) = k.enter("client", Cred::USER);
    assert_eq!(
        call::open("/scheme/dsmil/nope", O_RDONLY, 0),
        Err(Error::new(ENOENT))
    );
    let ctl = call::open("/scheme/dsmil/control", O_RDWR, 0).expect("control");
    assert_eq!(
        call::write(ctl, &[0u8; 7]),
        Err(Error::new(EINVAL)),
        "short request"
    );
    let bad_op = ControlRequest {
        op: Op::GetVersion,
        arg0: 0,
        arg1: 0,
    }
    .to_bytes();
    let mut raw = bad_op;
    raw[0] = 99;
    assert_eq!(
        call::write(ctl, &raw),
        Err(Error::new(EINVAL)),
        "unknown op"
    );
    let mut resp = [0u8; 64];
    assert_eq!(
        call::read(ctl, &mut resp),
        Err(Error::new(EINVAL)),
        "read without request"
    );
    assert_eq!(
        call::call_ro(ctl, &mut resp, CallFlags::empty(), &[]),
        Err(Error::new(EINVAL)),
        "call without op"
    );
}

#[test]
fn a_client_leaving_mid_request_leaves_the_daemon_serving() {
    let k = Kernel::boot();
    let d = boot::dsmild(&k, dsmil::Config::default(), dsmil::Hardware::minimal(50));
    // A client writes a request and exits without reading: its descriptors close.
    let leaver = k.spawn("leaver", Cred::USER, || {
        let ctl = call::open("/scheme/dsmil/control", O_RDWR, 0)?;
        call::write(ctl, &ControlRequest::new(Op::GetVersion, 0, 0).to_bytes())?;
        let _also_open = call::open("/scheme/dsmil/version", O_RDONLY, 0)?;
        Ok::<(), Error>(())
    });
    assert!(matches!(leaver.join(), Ok(Ok(()))));
    let (_me, _g) = k.enter("stayer", Cred::USER);
    let v = call::open("/scheme/dsmil/version", O_RDONLY, 0).expect("still serving");
    assert!(
        String::from_utf8(read_all(v))
            .expect("utf8")
            .contains("devices: 108")
    );
    let s = call::open("/scheme/dsmil/status", O_RDONLY, 0).expect("status");
    let status = String::from_utf8(read_all(s)).expect("utf8");
    // The leaver's handles were closed: only this client's `version` and the
    // `status` being read (rendered at read time, so it counts itself) are open.
    assert!(status.contains("open_handles: 2"), "{status}");
    d.stop().expect("clean stop");
}
