//! SQE-level: every malformed request shape against the iommu scheme, without
//! a daemon thread (the scheme is built on the test thread, its memory from
//! the mocked kernel's `memory` scheme, its unit simulated).

use std::sync::Arc;

use dsmil_tests::sqe::SqeHarness;
use iommu::protocol::{Opcode, RawRequest, Response};
use iommu::scheme::IommuScheme;
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::kernel::EnterGuard;
use redox_host::{Cred, Kernel};
use syscall::error::{EACCES, EBADF, EINVAL, EISDIR, ENOENT, ENOTDIR, EOPNOTSUPP, EOVERFLOW};
use syscall::flag::{O_DIRECTORY, O_RDONLY, O_RDWR};

struct Setup {
    h: SqeHarness<IommuScheme>,
    _k: Arc<Kernel>,
    _g: EnterGuard,
}

fn setup() -> Setup {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let (_p, g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]).expect("build");
    Setup {
        h: SqeHarness::new(IommuScheme::new(iommu)),
        _k: k,
        _g: g,
    }
}

fn exchange(h: &mut SqeHarness<IommuScheme>, id: usize, bytes: &[u8]) -> Response {
    assert_eq!(
        h.write(id, bytes),
        Ok(bytes.len()),
        "write accepts anything"
    );
    let mut r = [0u8; 36];
    assert_eq!(h.read(id, &mut r), Ok(36));
    Response::decode(&r).expect("decode")
}

fn status(r: &Response) -> (i32, u16) {
    (r.status, r.kind)
}

#[test]
fn every_malformed_shape_gets_a_negative_errno_response() {
    let mut s = setup();
    let h = &mut s.h;
    let ctl = h.open("control", O_RDWR).expect("control");
    let dom = h.open("domain/1", O_RDWR).expect("domain");
    let good = RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode();
    // Short (every length below 32) and long.
    for len in [0usize, 1, 2, 3, 4, 16, 31] {
        assert_eq!(
            status(&exchange(h, ctl, &good[..len])),
            (-EINVAL, 0),
            "len {len}"
        );
    }
    let mut long = good.to_vec();
    long.extend_from_slice(&[0; 8]);
    assert_eq!(status(&exchange(h, ctl, &long)), (-EINVAL, 0));
    // Wrong version, echoing the opcode.
    let mut v = RawRequest::new(Opcode::Map, 0, 0x1000, 0x1000, 0);
    for version in [0u16, 2, 0xFFFF] {
        v.version = version;
        assert_eq!(status(&exchange(h, dom, &v.encode())), (-EINVAL, 0x10));
    }
    // Unknown opcodes.
    for op in [0x04u16, 0x13, 0x18, 0x22, 0x31, 0xFFFF] {
        let mut r = RawRequest::new(Opcode::Query, 0, 0, 0, 0);
        r.opcode = op;
        assert_eq!(status(&exchange(h, ctl, &r.encode())), (-EINVAL, op));
    }
    // Bad MAP arguments: flags, alignment, zero size, overflow.
    let map = |flags, phys, size, iova| RawRequest::new(Opcode::Map, flags, phys, size, iova);
    for bad in [
        map(0x20, 0x1000, 0x1000, 0),
        map(0, 0x1001, 0x1000, 0),
        map(0, 0x1000, 0x1001, 0),
        map(0, 0x1000, 0, 0),
        map(0, 0x1000, 0x1000, 0x1234),
    ] {
        assert_eq!(
            status(&exchange(h, dom, &bad.encode())),
            (-EINVAL, 0x10),
            "{bad:?}"
        );
    }
    for bad in [
        map(0, u64::MAX - 0xFFF, 0x2000, 0),
        map(0, 0x1000, 0x2000, u64::MAX - 0xFFF),
    ] {
        assert_eq!(status(&exchange(h, dom, &bad.encode())), (-EOVERFLOW, 0x10));
    }
    // Unaligned UNMAP, domain ids above u16, bad SET_INVALIDATION mode.
    let r = RawRequest::new(Opcode::Unmap, 0, 0x1001, 0, 0);
    assert_eq!(status(&exchange(h, dom, &r.encode())), (-EINVAL, 0x11));
    let r = RawRequest::new(Opcode::DestroyDomain, 0x1_0000, 0, 0, 0);
    assert_eq!(status(&exchange(h, ctl, &r.encode())), (-EINVAL, 0x02));
    let r = RawRequest::new(Opcode::SetInvalidation, 2, 0, 0, 0);
    assert_eq!(status(&exchange(h, dom, &r.encode())), (-EINVAL, 0x14));
    // Valid requests that fail: unmapped IOVA, wrong handle, unknown unit/domain.
    let r = RawRequest::new(Opcode::Unmap, 0, 0x5000, 0, 0);
    assert_eq!(status(&exchange(h, dom, &r.encode())), (-ENOENT, 0x11));
    let r = RawRequest::new(Opcode::Translate, 0, 0x5000, 0, 0);
    assert_eq!(status(&exchange(h, dom, &r.encode())), (-ENOENT, 0x12));
    let r = RawRequest::new(Opcode::Map, 0, 0x1000, 0x1000, 0);
    assert_eq!(status(&exchange(h, ctl, &r.encode())), (-EOPNOTSUPP, 0x10));
    let r = RawRequest::new(Opcode::InitUnits, 7, 0, 0, 0);
    assert_eq!(
        status(&exchange(h, ctl, &r.encode())),
        (-syscall::error::ENODEV, 0x03)
    );
    let r = RawRequest::new(Opcode::DestroyDomain, 99, 0, 0, 0);
    assert_eq!(status(&exchange(h, ctl, &r.encode())), (-ENOENT, 0x02));
    let r = RawRequest::new(Opcode::QuerySpace, 100_000, 0, 0, 0);
    assert_eq!(status(&exchange(h, dom, &r.encode())), (-ENOENT, 0x17));
    // After all that the channel still works.
    let q = exchange(h, dom, &RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode());
    assert_eq!((q.status, q.arg0), (0, 1));
}

#[test]
fn reads_without_a_response_and_short_buffers_are_einval() {
    let mut s = setup();
    let h = &mut s.h;
    let ctl = h.open("control", O_RDWR).expect("control");
    let mut r = [0u8; 36];
    assert_eq!(h.read(ctl, &mut r), Err(EINVAL), "nothing pending");
    let q = RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode();
    assert_eq!(h.write(ctl, &q), Ok(32));
    let mut small = [0u8; 35];
    assert_eq!(h.read(ctl, &mut small), Err(EINVAL));
    assert_eq!(h.read(ctl, &mut r), Ok(36), "the response stayed");
    // One-round-trip `call`: request in, response out of the same buffer.
    let mut payload = [0u8; 36];
    payload[..32].copy_from_slice(&q);
    assert_eq!(h.call(ctl, &mut payload, &[]), Ok(36));
    assert_eq!({ Response::decode(&payload).expect("decode").status }, 0);
    let mut tiny = [0u8; 32];
    tiny.copy_from_slice(&q);
    assert_eq!(h.call(ctl, &mut tiny, &[]), Err(EINVAL));
}

#[test]
fn paths_text_files_and_directories() {
    let mut s = setup();
    let h = &mut s.h;
    for bad in [
        "nope",
        "domain/0",
        "domain/70000",
        "domain/x",
        "device/zz:00.0",
        "control/1",
    ] {
        assert_eq!(h.open(bad, O_RDONLY), Err(ENOENT), "{bad}");
    }
    let root = h.open("", O_RDONLY).expect("root");
    let mut buf = [0u8; 256];
    let n = h.read(root, &mut buf).expect("listing");
    assert_eq!(&buf[..n], b"control\ndomain\ndevice\nstats\nfaults\n");
    assert_eq!(h.write(root, b"x"), Err(EISDIR));
    assert_eq!(h.open("stats", O_RDWR), Err(EACCES));
    assert_eq!(h.open("control", O_DIRECTORY), Err(ENOTDIR));
    let _ = h.open("domain/3", O_RDWR).expect("creates domain 3");
    let d = h.open("domain", O_RDONLY).expect("domain dir");
    let n = h.read(d, &mut buf).expect("listing");
    assert_eq!(&buf[..n], b"3\n");
    let st = h.open("stats", O_RDONLY).expect("stats");
    let mut text = vec![0u8; 16384];
    let n = h.read(st, &mut text).expect("stats");
    let text = String::from_utf8_lossy(&text[..n]).to_string();
    for key in [
        "domains: 1",
        "mappings: 0",
        "bytes_mapped: 0",
        "invalidations_strict: 0",
        "faults: 0",
        "domain 3 window",
    ] {
        assert!(text.contains(key), "{key} missing in\n{text}");
    }
    assert_eq!(h.write(st, b"x"), Err(EACCES));
    h.close(st);
    assert_eq!(h.read(st, &mut buf), Err(EBADF));
}

#[test]
fn non_owner_writes_are_eacces_at_sqe_level() {
    let mut s = setup();
    let h = &mut s.h;
    h.as_user(1000, 1000);
    let mine = h.open("domain/5", O_RDWR).expect("owner opens");
    h.as_user(1001, 1001);
    let theirs = h.open("domain/5", O_RDWR).expect("other opens");
    let map = RawRequest::new(Opcode::Map, 0, 0x1_0000_0000, 0x1000, 0).encode();
    assert_eq!(status(&exchange(h, theirs, &map)), (-EACCES, 0x10));
    // The uid recorded at open decides, whoever sends the request later.
    let r = exchange(h, mine, &map);
    assert_eq!({ r.status }, 0);
}
