//! SQE-level: BATCH (opcode 0x19), the scatter-list map/unmap, against the
//! iommu scheme without a daemon thread: every edge of its wire format, the
//! all-or-nothing MAP, the checked-whole UNMAP, and who may send it.

use std::sync::Arc;

use dsmil_tests::sqe::SqeHarness;
use iommu::protocol::{MapFlags, Opcode, RawRequest, Response};
use iommu::scatter::{self, BatchOp, MAX_RANGES, SgEntry, Source};
use iommu::scheme::IommuScheme;
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::kernel::EnterGuard;
use redox_host::{Cred, Kernel};
use syscall::error::{E2BIG, EACCES, EBUSY, EEXIST, EFAULT, EINVAL, ENOENT, EOPNOTSUPP, EOVERFLOW};
use syscall::flag::{O_RDONLY, O_RDWR};

const PAGE: u64 = 4096;
const BATCH: u16 = 0x19;

struct Setup {
    h: SqeHarness<IommuScheme>,
    k: Arc<Kernel>,
    _g: EnterGuard,
}

fn setup() -> Setup {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let (_p, g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]).expect("build");
    Setup {
        h: SqeHarness::new(IommuScheme::new(iommu)),
        k,
        _g: g,
    }
}

fn raw_map() -> BatchOp {
    BatchOp::Map {
        flags: MapFlags::READ_WRITE,
        source: Source::Physical,
    }
}

fn from_buffer() -> BatchOp {
    BatchOp::Map {
        flags: MapFlags::READ_WRITE,
        source: Source::Buffer,
    }
}

fn pages(first: u64, n: u64) -> Vec<SgEntry> {
    (0..n)
        .map(|i| SgEntry {
            addr: first + i * PAGE,
            size: PAGE,
            iova: 0,
        })
        .collect()
}

fn unmaps(iovas: &[u64]) -> Vec<SgEntry> {
    iovas
        .iter()
        .map(|&iova| SgEntry {
            iova,
            ..SgEntry::default()
        })
        .collect()
}

/// One BATCH call: the response and the entries as answered.
fn batch(
    h: &mut SqeHarness<IommuScheme>,
    id: usize,
    payload: &mut [u8],
) -> (Response, Vec<SgEntry>) {
    let n = payload.len();
    assert_eq!(h.call(id, payload, &[]), Ok(n), "a batch answers in place");
    let r = Response::decode(&payload[..36]).expect("decode");
    let count = n.saturating_sub(scatter::HEAD_SIZE) / scatter::ENTRY_SIZE;
    (r, scatter::read_entries(payload, count))
}

fn send(
    h: &mut SqeHarness<IommuScheme>,
    id: usize,
    op: BatchOp,
    entries: &[SgEntry],
) -> (Response, Vec<SgEntry>) {
    batch(h, id, &mut scatter::encode(op, entries))
}

fn errno_of(r: &Response) -> (i32, u16) {
    (r.status, r.kind)
}

fn exchange(h: &mut SqeHarness<IommuScheme>, id: usize, req: RawRequest) -> Response {
    let mut payload = [0u8; 36];
    payload[..32].copy_from_slice(&req.encode());
    assert_eq!(h.call(id, &mut payload, &[]), Ok(36));
    Response::decode(&payload).expect("decode")
}

fn mappings(h: &SqeHarness<IommuScheme>, domain: u16) -> usize {
    h.scheme
        .iommu()
        .domain(domain)
        .expect("domain")
        .domain
        .mapping_count()
}

fn ram(k: &Kernel) -> u64 {
    k.phys().alloc(64 * PAGE as usize, false).expect("ram")
}

#[test]
fn wire_edges_get_clear_errnos_and_map_nothing() {
    let mut s = setup();
    let h = &mut s.h;
    let dom = h.open("domain/1", O_RDWR).expect("domain");
    let phys = ram(&s.k);
    // Empty list, too many ranges, a length that does not match the count.
    assert_eq!(errno_of(&send(h, dom, raw_map(), &[]).0), (-EINVAL, BATCH));
    let many = pages(phys, MAX_RANGES as u64 + 1);
    assert_eq!(errno_of(&send(h, dom, raw_map(), &many).0), (-E2BIG, BATCH));
    let mut cut = scatter::encode(raw_map(), &pages(phys, 2));
    cut.truncate(cut.len() - 8);
    assert_eq!(errno_of(&batch(h, dom, &mut cut).0), (-EINVAL, BATCH));
    // Unaligned source, size, wanted IOVA; zero size; a wrapping range.
    for bad in [
        SgEntry {
            addr: phys + 1,
            size: PAGE,
            iova: 0,
        },
        SgEntry {
            addr: phys,
            size: PAGE + 8,
            iova: 0,
        },
        SgEntry {
            addr: phys,
            size: PAGE,
            iova: 0x1_0000_0010,
        },
        SgEntry {
            addr: phys,
            size: 0,
            iova: 0,
        },
    ] {
        let mut list = pages(phys, 3);
        list[1] = bad;
        assert_eq!(
            errno_of(&send(h, dom, raw_map(), &list).0),
            (-EINVAL, BATCH),
            "{bad:?}"
        );
    }
    let wraps = SgEntry {
        addr: phys,
        size: 2 * PAGE,
        iova: u64::MAX - 0xFFF,
    };
    assert_eq!(
        errno_of(&send(h, dom, raw_map(), &[wraps]).0),
        (-EOVERFLOW, BATCH)
    );
    // Written instead of called: no room for the answer.
    let wire = scatter::encode(raw_map(), &pages(phys, 1));
    assert_eq!(h.write(dom, &wire), Ok(wire.len()));
    let mut r = [0u8; 36];
    assert_eq!(h.read(dom, &mut r), Ok(36));
    assert_eq!(
        errno_of(&Response::decode(&r).expect("decode")),
        (-EOPNOTSUPP, BATCH)
    );
    assert_eq!(h.write(dom, &wire[..32]), Ok(32));
    assert_eq!(h.read(dom, &mut r), Ok(36));
    assert_eq!(
        errno_of(&Response::decode(&r).expect("decode")),
        (-EOPNOTSUPP, BATCH)
    );
    // On a handle that is not a domain.
    let ctl = h.open("control", O_RDWR).expect("control");
    assert_eq!(
        errno_of(&send(h, ctl, raw_map(), &pages(phys, 1)).0),
        (-EOPNOTSUPP, BATCH)
    );
    assert_eq!(mappings(h, 1), 0, "nothing was mapped");
}

#[test]
fn map_is_all_or_nothing_and_unmap_is_checked_whole() {
    let mut s = setup();
    let h = &mut s.h;
    let dom = h.open("domain/1", O_RDWR).expect("domain");
    let phys = ram(&s.k);
    // A full batch maps every range, each at its own IOVA.
    let (r, done) = send(h, dom, raw_map(), &pages(phys, MAX_RANGES as u64));
    assert_eq!(
        ({ r.status }, { r.arg0 }, { r.arg1 }, { r.arg2 }),
        (0, 1, 64, 64 * PAGE)
    );
    let iovas: Vec<u64> = done.iter().map(|e| e.iova).collect();
    for (i, e) in done.iter().enumerate() {
        let t = exchange(h, dom, RawRequest::new(Opcode::Translate, 0, e.iova, 0, 0));
        assert_eq!({ t.arg2 }, phys + i as u64 * PAGE);
    }
    assert_eq!(mappings(h, 1), 64);
    // Overlapping sources are fine (two IOVAs for one page) ...
    let (r, twice) = send(h, dom, raw_map(), &[pages(phys, 1)[0], pages(phys, 1)[0]]);
    assert_eq!({ r.status }, 0);
    assert_ne!(twice[0].iova, twice[1].iova);
    // ... overlapping wanted IOVAs are not: the third range fails and the
    // two before it are rolled back.
    let want = 0x40_0000_0000u64;
    let mut list = pages(phys, 3);
    list[0].iova = want;
    list[1].iova = want + PAGE;
    list[2].iova = want;
    let before = mappings(h, 1);
    assert_eq!(
        errno_of(&send(h, dom, raw_map(), &list).0),
        (-EEXIST, BATCH)
    );
    assert_eq!(mappings(h, 1), before, "rolled back");
    let t = exchange(h, dom, RawRequest::new(Opcode::Translate, 0, want, 0, 0));
    assert_eq!({ t.status }, -ENOENT);
    // The rolled-back IOVAs are usable again.
    let (r, again) = send(h, dom, raw_map(), &list[..2]);
    assert_eq!({ r.status }, 0);
    assert_eq!((again[0].iova, again[1].iova), (want, want + PAGE));
    // UNMAP: a range not mapped, or one given twice, unmaps nothing.
    let mut bad = unmaps(&iovas[..4]);
    bad[3].iova = 0x7_0000_0000;
    assert_eq!(
        errno_of(&send(h, dom, BatchOp::Unmap, &bad).0),
        (-ENOENT, BATCH)
    );
    let dup = unmaps(&[iovas[0], iovas[1], iovas[0]]);
    assert_eq!(
        errno_of(&send(h, dom, BatchOp::Unmap, &dup).0),
        (-EINVAL, BATCH)
    );
    let unaligned = unmaps(&[iovas[0] + 8]);
    assert_eq!(
        errno_of(&send(h, dom, BatchOp::Unmap, &unaligned).0),
        (-EINVAL, BATCH)
    );
    let sized = [SgEntry {
        size: PAGE,
        ..unmaps(&[iovas[0]])[0]
    }];
    assert_eq!(
        errno_of(&send(h, dom, BatchOp::Unmap, &sized).0),
        (-EINVAL, BATCH)
    );
    assert_eq!(mappings(h, 1), before + 2);
    // A good one unmaps every range and says each size.
    let (r, gone) = send(h, dom, BatchOp::Unmap, &unmaps(&iovas));
    assert_eq!(({ r.status }, { r.arg1 }, { r.arg2 }), (0, 64, 64 * PAGE));
    assert!(gone.iter().all(|e| e.size == PAGE));
    assert_eq!(mappings(h, 1), before + 2 - 64);
    assert_eq!(
        errno_of(&send(h, dom, BatchOp::Unmap, &unmaps(&iovas[..1])).0),
        (-ENOENT, BATCH)
    );
}

#[test]
fn a_map_over_quota_rolls_back_and_accounts_nothing() {
    let mut s = setup();
    let h = &mut s.h;
    let dom = h.open("domain/1", O_RDWR).expect("domain");
    let phys = ram(&s.k);
    let quota = exchange(h, dom, RawRequest::new(Opcode::SetQuota, 0, 3 * PAGE, 0, 0));
    assert_eq!({ quota.status }, 0);
    let r = send(h, dom, raw_map(), &pages(phys, 4)).0;
    assert!({ r.status } < 0, "the fourth page is over the quota");
    assert_eq!(mappings(h, 1), 0);
    assert_eq!(h.scheme.iommu().accounts().usage(0).mapped_bytes, 0);
    assert_eq!({ send(h, dom, raw_map(), &pages(phys, 3)).0.status }, 0);
    assert_eq!(h.scheme.iommu().accounts().usage(0).mapped_bytes, 3 * PAGE);
}

/// The service layer below the wire: `Iommu::map_sg`/`unmap_sg` called
/// directly (as an in-process user or a future transport would) refuse a
/// list the wire decode never lets through, with its errno and nothing
/// mapped or unmapped; exactly [`MAX_RANGES`] ranges is still one batch.
#[test]
fn the_service_bounds_lists_the_wire_cannot_carry() {
    let mut s = setup();
    let h = &mut s.h;
    let _dom = h.open("domain/1", O_RDWR).expect("domain");
    let phys = ram(&s.k);
    let owner = iommu::access::Client::new(h.pid, 0);
    let flags = MapFlags::READ_WRITE;
    let iommu = h.scheme.iommu_mut();
    let errno = |r: syscall::Result<u64>| r.map_err(|e| e.errno);
    assert_eq!(
        errno(iommu.map_sg(1, owner, flags, Source::Physical, &mut [])),
        Err(EINVAL)
    );
    let mut too_many = pages(phys, MAX_RANGES as u64 + 1);
    let sent = too_many.clone();
    assert_eq!(
        errno(iommu.map_sg(1, owner, flags, Source::Physical, &mut too_many)),
        Err(E2BIG)
    );
    assert_eq!(too_many, sent, "a refused list is left as sent");
    assert_eq!(mappings(h, 1), 0);
    // Exactly MAX_RANGES: mapped whole.
    let iommu = h.scheme.iommu_mut();
    let mut full = pages(phys, MAX_RANGES as u64);
    assert_eq!(
        errno(iommu.map_sg(1, owner, flags, Source::Physical, &mut full)),
        Ok(MAX_RANGES as u64 * PAGE)
    );
    assert_eq!(mappings(h, 1), MAX_RANGES);
    // UNMAP: none, and one more than MAX_RANGES (the mapped ones plus an
    // IOVA that would be ENOENT) refuse with nothing unmapped.
    let iovas: Vec<u64> = full.iter().map(|e| e.iova).collect();
    let iommu = h.scheme.iommu_mut();
    assert_eq!(errno(iommu.unmap_sg(1, owner, &mut [])), Err(EINVAL));
    let mut over = unmaps(&iovas);
    over.push(SgEntry {
        iova: 1 << 40,
        ..SgEntry::default()
    });
    assert_eq!(errno(iommu.unmap_sg(1, owner, &mut over)), Err(E2BIG));
    assert_eq!(mappings(h, 1), MAX_RANGES);
    let iommu = h.scheme.iommu_mut();
    let mut all = unmaps(&iovas);
    assert_eq!(
        errno(iommu.unmap_sg(1, owner, &mut all)),
        Ok(MAX_RANGES as u64 * PAGE)
    );
    assert_eq!(mappings(h, 1), 0);
}

/// Switches the harness to another process.
fn become_process(h: &mut SqeHarness<IommuScheme>, pid: usize, uid: u32) {
    h.pid = pid;
    h.as_user(uid, uid);
}

#[test]
fn who_may_batch_unprivileged_buffers_and_a_second_driver() {
    let mut s = setup();
    let h = &mut s.h;
    let phys = ram(&s.k);
    // The driver (root, pid 100) with a mapping.
    become_process(h, 100, 0);
    let driver = h.open("domain/1", O_RDWR).expect("driver's domain");
    let (_, theirs) = send(h, driver, raw_map(), &pages(phys, 2));
    // An unprivileged process: no raw physical addresses...
    become_process(h, 200, 1000);
    let own = h.open("domain/new", O_RDWR).expect("its own domain");
    let own_id = exchange(h, own, RawRequest::new(Opcode::Query, 0, 0, 0, 0)).arg0 as u16;
    assert_eq!(
        errno_of(&send(h, own, raw_map(), &pages(phys, 1)).0),
        (-EACCES, BATCH)
    );
    // ...but parts of its own ALLOC buffer, as many times as it likes.
    let buf = exchange(h, own, RawRequest::new(Opcode::Alloc, 0, 0, 4 * PAGE, 0));
    assert_eq!({ buf.status }, 0);
    let base = buf.arg1;
    let buffer_phys = exchange(h, own, RawRequest::new(Opcode::Translate, 0, base, 0, 0)).arg2;
    let (r, aliases) = send(h, own, from_buffer(), &pages(base + PAGE, 3));
    assert_eq!({ r.status }, 0);
    for (i, e) in aliases.iter().enumerate() {
        let t = exchange(h, own, RawRequest::new(Opcode::Translate, 0, e.iova, 0, 0));
        assert_eq!({ t.arg2 }, buffer_phys + (i as u64 + 1) * PAGE);
    }
    // A range running past the buffer, or outside any buffer: EFAULT, nothing mapped.
    let before = mappings(h, own_id);
    let past = [SgEntry {
        addr: base + 2 * PAGE,
        size: 3 * PAGE,
        iova: 0,
    }];
    assert_eq!(
        errno_of(&send(h, own, from_buffer(), &past).0),
        (-EFAULT, BATCH)
    );
    let mut outside = pages(base, 2);
    outside[1].addr = base + 16 * PAGE;
    assert_eq!(
        errno_of(&send(h, own, from_buffer(), &outside).0),
        (-EFAULT, BATCH)
    );
    assert_eq!(mappings(h, own_id), before);
    // The buffer stays while an alias shows it; then goes.
    let unmap_buffer = RawRequest::new(Opcode::Unmap, 0, base, 0, 0);
    assert_eq!({ exchange(h, own, unmap_buffer).status }, -EBUSY);
    assert_eq!(
        errno_of(&send(h, own, BatchOp::Unmap, &unmaps(&[base])).0),
        (-EBUSY, BATCH)
    );
    let alias_iovas: Vec<u64> = aliases.iter().map(|e| e.iova).collect();
    let r = send(h, own, BatchOp::Unmap, &unmaps(&alias_iovas)).0;
    assert_eq!({ r.status }, 0);
    assert_eq!({ exchange(h, own, unmap_buffer).status }, 0);
    // The driver's domain: no handle to send on, and a read-only one refuses.
    assert_eq!(h.open("domain/1", O_RDWR), Err(EACCES));
    // A second root driver: a read-only handle on the driver's domain, and
    // its batches on it are refused; its own domain cannot name the driver's.
    become_process(h, 300, 0);
    let ro = h.open("domain/1", O_RDONLY).expect("root: read-only");
    assert_eq!(
        errno_of(&send(h, ro, raw_map(), &pages(phys, 1)).0),
        (-EACCES, BATCH)
    );
    let their_iovas: Vec<u64> = theirs.iter().map(|e| e.iova).collect();
    assert_eq!(
        errno_of(&send(h, ro, BatchOp::Unmap, &unmaps(&their_iovas)).0),
        (-EACCES, BATCH)
    );
    let second = h
        .open("domain/new", O_RDWR)
        .expect("second driver's domain");
    assert_eq!(
        errno_of(&send(h, second, BatchOp::Unmap, &unmaps(&their_iovas)).0),
        (-ENOENT, BATCH)
    );
    let from_theirs = [SgEntry {
        addr: theirs[0].iova,
        size: PAGE,
        iova: 0,
    }];
    assert_eq!(
        errno_of(&send(h, second, from_buffer(), &from_theirs).0),
        (-EFAULT, BATCH)
    );
    assert_eq!(mappings(h, 1), 2, "the driver's mappings are as they were");
}

#[test]
fn the_fuzz_driver_reaches_batch_and_survives_random_lists() {
    // The seed corpus entry maps, rolls back and unmaps through BATCH ...
    let seed = include_bytes!("../../fuzz/corpus/iommu_requests/batch_map_unmap");
    dsmil_tests::fuzzing::iommu_requests(seed);
    // ... and pseudo-random sequences (a fixed xorshift) go through the same
    // driver, whose assertions (in-place answers, status <= 0) must hold.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    for _ in 0..64 {
        let data: Vec<u8> = (0..384)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        dsmil_tests::fuzzing::iommu_requests(&data);
    }
}
