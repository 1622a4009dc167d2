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
    for op in [0x04u16, 0x13, 0x1A, 0x23, 0x31, 0xFFFF] {
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

/// Switches the harness to another process.
fn become_process(h: &mut SqeHarness<IommuScheme>, pid: usize, uid: u32) {
    h.pid = pid;
    h.as_user(uid, uid);
}

#[test]
fn handles_authorise_on_what_they_recorded_at_open() {
    let mut s = setup();
    let h = &mut s.h;
    become_process(h, 100, 0);
    let mine = h
        .open("domain/5", O_RDWR)
        .expect("owner opens (creates) it");
    let map = RawRequest::new(Opcode::Map, 0, 0x1_0000_0000, 0x1000, 0).encode();
    // Another process: unprivileged, or a second root driver.
    become_process(h, 200, 1001);
    assert_eq!(h.open("domain/5", O_RDWR), Err(EACCES));
    assert_eq!(h.open("domain/5", O_RDONLY), Err(EACCES));
    let own = h.open("domain/new", O_RDWR).expect("a domain of its own");
    become_process(h, 300, 0);
    assert_eq!(h.open("domain/5", O_RDWR), Err(EACCES));
    let ro = h.open("domain/5", O_RDONLY).expect("root: read-only");
    assert_eq!(status(&exchange(h, ro, &map)), (-EACCES, 0x10));
    let tr = RawRequest::new(Opcode::Translate, 0, 0x1000, 0, 0).encode();
    assert_eq!(status(&exchange(h, ro, &tr)), (-EACCES, 0x12));
    let q = exchange(h, ro, &RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode());
    assert_eq!((q.status, q.arg0), (0, 5));
    // A `call` carries metadata where an open carries the uid: metadata
    // claiming uid 0 gives the unprivileged process's handle nothing...
    let mut payload = [0u8; 36];
    payload[..32].copy_from_slice(&map);
    assert_eq!(h.call(own, &mut payload, &[0, 0, 0]), Ok(36));
    let r = Response::decode(&payload).expect("decode");
    assert_eq!((r.status, r.kind), (-EACCES, 0x10), "raw phys: root only");
    // ...and metadata claiming a stranger takes nothing from root's handle,
    // whoever sends the request on it.
    become_process(h, 200, 1001);
    payload[..32].copy_from_slice(&map);
    assert_eq!(h.call(mine, &mut payload, &[0, 0, 0xFFFF_FFFF]), Ok(36));
    assert_eq!({ Response::decode(&payload).expect("decode").status }, 0);
}

#[test]
fn fixed_ids_are_requests_and_exiting_processes_leave_nothing() {
    let mut s = setup();
    let h = &mut s.h;
    become_process(h, 100, 0);
    let ctl = h.open("control", O_RDWR).expect("control");
    let create = |id| RawRequest::new(Opcode::CreateDomain, id, 0, 0, 0).encode();
    assert_eq!({ exchange(h, ctl, &create(0x0D5A)).arg0 }, 0x0D5A);
    become_process(h, 200, 0);
    let ctl2 = h.open("control", O_RDWR).expect("control");
    let r = exchange(h, ctl2, &create(0x0D5A));
    assert_eq!({ r.status }, 0);
    assert_ne!({ r.arg0 }, 0x0D5A, "the squatter gets another id");
    let destroy = RawRequest::new(Opcode::DestroyDomain, 0x0D5A, 0, 0, 0).encode();
    assert_eq!(status(&exchange(h, ctl2, &destroy)), (-EACCES, 0x02));
    // Pid 100 closes its last handle: its empty domain goes away.
    h.close(ctl);
    become_process(h, 300, 0);
    let fresh = h
        .open("domain/0x0D5A", O_RDWR)
        .expect("the id is free again");
    let q = exchange(
        h,
        fresh,
        &RawRequest::new(Opcode::Query, 0, 0, 0, 0).encode(),
    );
    assert_eq!((q.status, q.arg0, q.arg3), (0, 0x0D5A, 0));
    let stats = h.scheme.iommu().accounts().usage(0);
    assert_eq!(stats.domains, 2, "pid 200's and pid 300's");
}

#[test]
fn per_uid_limits_answer_emfile_and_enospc() {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let config = iommu::Config {
        limits: iommu::config::Limits {
            domains_per_uid: 2,
            handles_per_uid: 4,
            mapped_bytes_per_uid: 0x3000,
            page_tables_per_uid: 4,
        },
        ..iommu::Config::default()
    };
    let iommu = iommu::daemon::build(config, vec![unit.mmio()]).expect("build");
    let mut h = SqeHarness::new(IommuScheme::new(iommu));
    let h = &mut h;
    let a = h.open("domain/new", O_RDWR).expect("first");
    let _b = h.open("domain/new", O_RDWR).expect("second");
    assert_eq!(
        h.open("domain/new", O_RDWR),
        Err(syscall::error::EMFILE),
        "domains"
    );
    let _c = h.open("control", O_RDWR).expect("third handle");
    let _d = h.open("stats", O_RDONLY).expect("fourth handle");
    assert_eq!(
        h.open("control", O_RDWR),
        Err(syscall::error::EMFILE),
        "handles"
    );
    let map = |phys: u64, size: u64, iova: u64| {
        RawRequest::new(Opcode::Map, 0, phys, size, iova).encode()
    };
    assert_eq!({ exchange(h, a, &map(0x1_0000_0000, 0x2000, 0)).status }, 0);
    let r = exchange(h, a, &map(0x1_0000_0000, 0x2000, 0));
    assert_eq!(status(&r), (-syscall::error::ENOSPC, 0x10), "mapped bytes");
    // Two domains hold two roots; the first MAP built two more levels: an
    // IOVA far away needs new tables the uid no longer has.
    let r = exchange(h, a, &map(0x1_0000_0000, 0x1000, 0x40_0000_0000));
    assert_eq!(status(&r), (-syscall::error::ENOSPC, 0x10), "page tables");
    let tr = RawRequest::new(Opcode::Translate, 0, 0x40_0000_0000, 0, 0).encode();
    assert_eq!(
        status(&exchange(h, a, &tr)),
        (-ENOENT, 0x12),
        "nothing mapped"
    );
}

#[test]
fn stats_is_rendered_at_read_time_in_pieces() {
    let mut s = setup();
    let h = &mut s.h;
    let st = h.open("stats", O_RDONLY).expect("stats");
    let mut first = [0u8; 8];
    assert_eq!(h.read(st, &mut first), Ok(8));
    // A domain created after the open shows up: nothing was snapshotted.
    let _ = h.open("domain/9", O_RDWR).expect("domain");
    let mut rest = Vec::new();
    let mut buf = [0u8; 100];
    loop {
        let n = h.read(st, &mut buf).expect("read");
        if n == 0 {
            break;
        }
        rest.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("domain 9: owner=pid=100 uid=0"), "{text}");
    assert!(text.contains("uid 0: domains=1 handles=2"), "{text}");
    assert!(text.contains("unassigned_devices: passthrough"), "{text}");
}

#[test]
fn assign_by_channel_needs_the_owners_handle_and_assigns_what_pcid_says() {
    use driver_sys::pci::PciAddress;
    use redox_host::hw::pci_function::{SimFunctionSpec, SimPciFunction};
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let addr = PciAddress::new(0, 9, 0);
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(addr, 1)).expect("function");
    k.pci().add_function(f.clone()).expect("plug in");
    unit.attach(&f);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]).expect("build");
    let mut h = SqeHarness::new(IommuScheme::new(iommu));
    let channel = libredox::Fd::open(
        &format!("/scheme/pci/{}/channel", addr.scheme_name()),
        libredox::flag::O_RDWR,
        0,
    )
    .expect("channel");
    become_process(&mut h, 100, 0);
    let mine = h.open("domain/new", O_RDWR).expect("domain");
    become_process(&mut h, 300, 0);
    let ro = h.open("domain/1", O_RDONLY).expect("root: read-only");
    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(
        h.scheme.assign_channel(ro, channel.raw()),
        Err(syscall::Error::new(EACCES))
    );
    assert_eq!(
        h.scheme.assign_channel(ctl, channel.raw()),
        Err(syscall::Error::new(EOPNOTSUPP))
    );
    assert!(h.scheme.iommu().devices().is_empty(), "nothing assigned");
    assert_eq!(
        h.scheme.assign_channel(mine, channel.raw()),
        Ok(addr.requester_id())
    );
    let held = h
        .scheme
        .iommu()
        .devices()
        .get(&addr.requester_id())
        .copied();
    assert_eq!(held.map(|a| a.domain), Some(1));
}

#[test]
fn alloc_gives_any_owner_dma_memory_it_maps_from_its_handle() {
    use redox_scheme::scheme::SchemeSync;
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]).expect("build");
    let mut h = SqeHarness::new(IommuScheme::new(iommu));
    become_process(&mut h, 200, 1000);
    let dom = h
        .open("domain/new", O_RDWR)
        .expect("an unprivileged process's domain");
    let raw = RawRequest::new(Opcode::Map, 0, 0x1_0000_0000, 0x2000, 0).encode();
    assert_eq!(status(&exchange(&mut h, dom, &raw)), (-EACCES, 0x10));
    let alloc = RawRequest::new(Opcode::Alloc, 0, 0, 0x2000, 0).encode();
    let r = exchange(&mut h, dom, &alloc);
    assert_eq!((r.status, r.arg2), (0, 0x2000));
    let iova = r.arg1;
    let tr = RawRequest::new(Opcode::Translate, 0, iova + 0x1008, 0, 0).encode();
    let phys = exchange(&mut h, dom, &tr).arg2;
    // mmap on the handle, offset = IOVA: the same pages the device reaches.
    let ctx = h.ctx();
    let flags = syscall::flag::MapFlags::PROT_READ | syscall::flag::MapFlags::PROT_WRITE;
    let addr = h
        .scheme
        .mmap_prep(dom, iova + 0x1000, 0x1000, flags, &ctx)
        .expect("mmap");
    // SAFETY: iommud's own mapping of the buffer, in this process (the test).
    unsafe { (addr as *mut u64).add(1).write_volatile(0x5EED) };
    assert_eq!(k.phys().read_u64(phys), Some(0x5EED));
    // Out of the buffer, or from another process's handle: refused.
    assert!(
        h.scheme
            .mmap_prep(dom, iova + 0x1000, 0x2000, flags, &ctx)
            .is_err()
    );
    become_process(&mut h, 300, 0);
    let ro = h.open("domain/1", O_RDONLY).expect("root read-only");
    let ctx = h.ctx();
    assert_eq!(
        h.scheme.mmap_prep(ro, iova, 0x1000, flags, &ctx),
        Err(syscall::Error::new(EACCES))
    );
    // UNMAP hands the memory back (and the bytes to the uid).
    become_process(&mut h, 200, 1000);
    let un = RawRequest::new(Opcode::Unmap, 0, iova, 0, 0).encode();
    assert_eq!({ exchange(&mut h, dom, &un).status }, 0);
    assert_eq!(h.scheme.iommu().accounts().usage(1000).mapped_bytes, 0);
    let ctx = h.ctx();
    assert!(h.scheme.mmap_prep(dom, iova, 0x1000, flags, &ctx).is_err());
}

#[test]
fn drain_events_is_for_root_in_both_answer_forms() {
    let mut s = setup();
    let h = &mut s.h;
    let v1 = RawRequest::new(Opcode::DrainEvents, 0, 0, 0, 0).encode();
    let neutral =
        RawRequest::new(Opcode::DrainEvents, 0, iommu::drain::DRAIN_NEUTRAL, 0, 0).encode();
    // An unprivileged process: draining shows every client's fault addresses.
    become_process(h, 200, 1001);
    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(status(&exchange(h, ctl, &v1)), (-EACCES, 0x30));
    assert_eq!(status(&exchange(h, ctl, &neutral)), (-EACCES, 0x30));
    // A second driver (root, another process) may drain; nothing is queued.
    become_process(h, 300, 0);
    let ctl = h.open("control", O_RDWR).expect("control");
    for request in [v1, neutral] {
        let r = exchange(h, ctl, &request);
        assert_eq!(
            (r.status, r.kind, r.arg0, r.arg1, r.arg2, r.arg3),
            (0, 0x30, 0, 0, 0, 0)
        );
    }
}
