//! The hardware-ordering rules of iommud (issue 11 item 3, DESIGN §5),
//! each shown on a simulated AMD-Vi unit that caches what real units cache:
//! page-directory entries until `INV_IOMMU_PAGES` with PDE=1, not-present
//! answers under NpCache, device table entries fetched at any moment — and
//! a unit that stops answering.
//!
//! iommud's served state runs in-process (its own methods, no IPC), the
//! unit is driven through its register interface, and a device's DMA is
//! the unit's translation of the device's requester id.

use std::sync::Arc;

use dsmil_tests as _;
use iommu::access::Client;
use iommu::protocol::MapFlags;
use iommu::service::Iommu;
use iommu::{Bdf, Invalidation};
use redox_host::hw::amdvi::{Dte, SimAmdVi, SimAmdViOptions};
use redox_host::hw::pci_function::DmaAccess;
use redox_host::kernel::EnterGuard;
use redox_host::{Cred, Kernel};
use syscall::error::{EIO, ENOENT};

const PAGE: u64 = 4096;
const RW: MapFlags = MapFlags::READ_WRITE;
/// Root, as iommud's own test clients are.
const ROOT: Client = Client::new(1, 0);

struct Rig {
    k: Arc<Kernel>,
    unit: Arc<SimAmdVi>,
    iommu: Iommu,
    _g: EnterGuard,
}

fn rig(options: SimAmdViOptions, watch: &[u16]) -> Rig {
    let k = Kernel::boot();
    let unit = SimAmdVi::with_options(&k, options);
    for &rid in watch {
        unit.watch_device(rid);
    }
    let (_p, g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]).expect("build");
    Rig {
        k,
        unit,
        iommu,
        _g: g,
    }
}

impl Rig {
    fn page(&self) -> u64 {
        self.k.phys().alloc(PAGE as usize, false).expect("ram")
    }

    fn domain(&mut self, id: u16, mode: Invalidation, rid: u16) {
        assert_eq!(self.iommu.create_exact(id, ROOT), Ok(id));
        self.iommu.set_invalidation(id, ROOT, mode).expect("mode");
        self.iommu
            .assign(Bdf::from_requester_id(rid), id, None, ROOT)
            .expect("assign");
    }

    fn read(&self, rid: u16, iova: u64) -> Option<u64> {
        self.unit.translate(rid, iova, 8, DmaAccess::Read)
    }
}

/// A lazy unmap empties two page-table pages while the unit holds the
/// directory entries that point at them. Freed at once, they are reused by
/// the next domain's map, and the first device walks through its stale
/// directory entries into the other domain's page. Kept until the flush
/// (PDE=1) completed, they still hold nothing.
#[test]
fn emptied_tables_are_freed_only_after_a_pde_invalidation() {
    let mut r = rig(SimAmdViOptions::default(), &[]);
    let (a, b) = (0x08, 0x10);
    r.domain(1, Invalidation::Lazy, a);
    r.domain(2, Invalidation::Strict, b);
    let (page, secret) = (r.page(), r.page());
    let x = 0x1000_0000;
    r.iommu
        .map(1, ROOT, page, PAGE, RW, Some(x))
        .expect("map x");
    assert_eq!(r.read(a, x), Some(page));
    assert!(
        r.unit.pde_entries() >= 2,
        "the walk cached its directory entries"
    );
    let tables = r.iommu.page_tables();
    r.iommu.unmap(1, ROOT, x).expect("lazy unmap");
    assert_eq!(
        r.iommu.page_tables(),
        tables,
        "emptied tables wait for the flush"
    );
    // Domain 2 needs a level-2 and a level-1 table for 0x20_1000: index 1
    // of its level-1 table, as 0x1000_1000 is of domain 1's old one.
    r.iommu
        .map(2, ROOT, secret, PAGE, RW, Some(0x20_1000))
        .expect("map secret");
    assert_eq!(r.read(b, 0x20_1000), Some(secret));
    assert_eq!(
        r.read(a, x + PAGE),
        None,
        "device A walked a freed table into domain 2's page"
    );
    assert_eq!(r.iommu.flush_domain(1), Ok(1));
    assert_eq!(
        r.iommu.page_tables(),
        tables + 2 - 2,
        "freed after the flush"
    );
    assert_eq!(r.read(a, x + PAGE), None);
    assert_eq!(r.read(a, x), None, "stale leaf gone too");
}

/// A unit with NpCache remembers "not present": a page mapped after a DMA
/// faulted on it stays unreachable until its range is invalidated, so MAP
/// invalidates before it answers.
#[test]
fn with_np_cache_map_invalidates_its_range() {
    let options = SimAmdViOptions {
        np_cache: true,
        ..SimAmdViOptions::default()
    };
    let mut r = rig(options, &[]);
    assert!(
        r.iommu.caches_not_present(),
        "bit 26 of the capability header"
    );
    let a = 0x08;
    r.domain(1, Invalidation::Strict, a);
    let page = r.page();
    let y = 0x40_0000;
    assert_eq!(r.read(a, y), None, "nothing mapped yet");
    assert_eq!(r.unit.not_present_entries(), 1, "the miss is cached");
    r.iommu.map(1, ROOT, page, PAGE, RW, Some(y)).expect("map");
    assert_eq!(
        r.read(a, y),
        Some(page),
        "reachable as soon as MAP answered"
    );
    assert_eq!(r.iommu.counters().map_invalidations, 1);
}

/// Without NpCache (as real AMD units) MAP issues no invalidation.
#[test]
fn without_np_cache_map_issues_no_command() {
    let mut r = rig(SimAmdViOptions::default(), &[]);
    assert!(!r.iommu.caches_not_present());
    r.domain(1, Invalidation::Strict, 0x08);
    let before = r.iommu.units()[0].stats().commands;
    let page = r.page();
    r.iommu.map(1, ROOT, page, PAGE, RW, None).expect("map");
    assert_eq!(r.iommu.units()[0].stats().commands, before);
    assert_eq!(r.iommu.counters().map_invalidations, 0);
}

/// The unit fetches the device's entry between every two stores of an
/// assignment, a move to another domain and an unassignment: each entry it
/// sees is passthrough (the default of a device no domain holds), blocked,
/// or one domain's id with that same domain's root.
#[test]
fn device_entries_are_never_seen_half_written() {
    let rid = 0x28;
    let mut r = rig(SimAmdViOptions::default(), &[rid]);
    for id in [1, 2] {
        assert_eq!(r.iommu.create_exact(id, ROOT), Ok(id));
    }
    let root = |r: &Rig, id: u16| r.iommu.domain(id).expect("domain").domain.root();
    let (root1, root2) = (root(&r, 1), root(&r, 2));
    assert_ne!(root1, root2);
    let page = r.page();
    r.iommu
        .map(2, ROOT, page, PAGE, RW, Some(0x5000))
        .expect("map");
    let bdf = Bdf::from_requester_id(rid);
    r.iommu.assign(bdf, 1, None, ROOT).expect("assign");
    // A driver proving the device by its pcid channel moves it.
    r.iommu.assign_proven(bdf, 2, ROOT).expect("move");
    assert_eq!(r.read(rid, 0x5000), Some(page), "the move took effect");
    r.iommu.unassign(bdf, ROOT).expect("unassign");
    assert_eq!(
        r.read(rid, 0x5000),
        Some(0x5000),
        "back in passthrough after unassign"
    );
    let seen = r.unit.observed_entries();
    assert!(seen.len() >= 6, "fetched between the stores: {seen:?}");
    let consistent = |d: &Dte| {
        let blocked = d.valid && d.translation_valid && d.mode == 0 && !d.read && !d.write;
        let passthrough =
            d.valid && d.translation_valid && d.mode == 0 && d.read && d.write && d.domain == 0;
        let translated = d.valid
            && d.translation_valid
            && d.mode == 3
            && ((d.domain, d.root) == (1, root1) || (d.domain, d.root) == (2, root2));
        blocked || passthrough || translated
    };
    for (i, (_, d)) in seen.iter().enumerate() {
        assert!(consistent(d), "fetch {i} saw a half-written entry: {d:?}");
    }
    let saw = |id: u16, root: u64| seen.iter().any(|(_, d)| (d.domain, d.root) == (id, root));
    assert!(saw(1, root1) && saw(2, root2), "{seen:?}");
}

/// A strict UNMAP whose completion wait never completes answers EIO and
/// keeps the IOVA and the emptied tables out of circulation; a later flush
/// that completes releases them.
#[test]
fn a_timed_out_strict_unmap_is_eio_and_quarantines_the_iova() {
    let mut r = rig(SimAmdViOptions::default(), &[]);
    r.domain(1, Invalidation::Strict, 0x08);
    let page = r.page();
    let x = 0x30_0000;
    r.iommu.map(1, ROOT, page, PAGE, RW, Some(x)).expect("map");
    let tables = r.iommu.page_tables();
    r.unit.set_stalled(true);
    assert_eq!(r.iommu.unmap(1, ROOT, x).unwrap_err().errno, EIO);
    assert_eq!(r.iommu.counters().quarantined, 1);
    assert_eq!(r.iommu.page_tables(), tables, "no table freed");
    assert_eq!(r.iommu.translate(1, ROOT, x).unwrap_err().errno, ENOENT);
    // The IOVA is not handed out again, asked for or not.
    assert!(r.iommu.map(1, ROOT, page, PAGE, RW, Some(x)).is_err());
    let other = r
        .iommu
        .map(1, ROOT, page, PAGE, RW, None)
        .expect("map elsewhere");
    assert_ne!(other, x);
    assert!(r.iommu.flush_pending(), "the quarantine waits for a flush");
    r.unit.set_stalled(false);
    assert_eq!(r.iommu.flush_domain(1), Ok(1));
    assert!(r.iommu.page_tables() < tables + 2, "tables released");
    assert_eq!(r.iommu.map(1, ROOT, page, PAGE, RW, Some(x)), Ok(x));
}

/// A level growth changes only quadword 0 (root and Mode) of the entries of
/// the domain's devices: one atomic store, so the device is never blocked
/// in between — its DMA keeps working across a MAP that grows the tables.
#[test]
fn a_level_growth_never_blocks_the_device() {
    let rid = 0x30;
    let mut r = rig(SimAmdViOptions::default(), &[rid]);
    r.domain(1, Invalidation::Strict, rid);
    let (low, high) = (r.page(), r.page());
    r.iommu
        .map(1, ROOT, low, PAGE, RW, Some(0x7000))
        .expect("map");
    let levels = |r: &Rig| r.iommu.domain(1).expect("domain").domain.levels();
    assert_eq!(levels(&r), 3);
    r.unit.observed_entries();
    r.iommu
        .map(1, ROOT, high, PAGE, RW, Some(1 << 40))
        .expect("map beyond 39 bits");
    assert_eq!(levels(&r), 4);
    let seen = r.unit.observed_entries();
    assert!(!seen.is_empty());
    for (_, d) in &seen {
        assert!(d.mode == 3 || d.mode == 4, "blocked in between: {d:?}");
        assert_eq!(d.domain, 1);
    }
    assert_eq!(r.read(rid, 0x7000), Some(low));
    assert_eq!(r.read(rid, 1 << 40), Some(high));
}
