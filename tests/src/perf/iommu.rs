//! `perf -- iommu`: the IOVA allocator against general-purpose allocators, and
//! the in-process cost of domain map/unmap/translate.
//!
//! IOVA workload (identical for every allocator, generated up front so the
//! random number generator is not timed): fill `N` live allocations of
//! 1–16 pages (4–64 KiB, uniform), then repeat "free a random live
//! allocation, allocate a new random size in its place". One op = that
//! free + alloc pair. The harness loop alone (same loads and stores, a no-op
//! allocator) is timed too and subtracted, and the victim's entry of the
//! live array is prefetched a few ops ahead, so the figures compare allocator
//! work, not the harness's own cache misses on a million-entry array; the raw
//! figures are printed as well (`*_raw_ns`).
//!
//! Every peer runs the same workload (same seed, same ops) as our allocator,
//! interleaved with it round by round, one warm-up round then the best of 5.
//! An allocation or free that fails stops the run (exit 1): a failed operation
//! must not pass for a fast one.
//!
//! The peers: `offset-allocator` (two-level bitmap, units = pages),
//! `buddy_system_allocator::FrameAllocator` (frames = pages; rounds to powers
//! of two like ours), rust-vmm `vm-allocator::AddressAllocator` (first match,
//! 4 KiB aligned). Our allocator runs with its DMA windows, reserved MSI
//! window and free validation all active (48-bit space, 64-bit mask).

use std::hint::black_box;
use std::time::Instant;

use iommu::page_table::{PAGE_1G, PAGE_4K, PagePolicy};
use iommu::{Domain, DomainConfig, IovaAllocator, MapFlags, TableArena};

use super::{must, must_some, report};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// The allocation sequence: initial sizes, then (victim, new size) per op.
struct Workload {
    initial: Vec<u32>,
    victims: Vec<u32>,
    sizes: Vec<u32>,
}

impl Workload {
    fn new(live: usize, ops: usize, seed: u64) -> Self {
        let mut rng = Rng(seed);
        let initial = (0..live).map(|_| 1 + rng.below(16) as u32).collect();
        let victims = (0..ops).map(|_| rng.below(live as u64) as u32).collect();
        let sizes = (0..ops).map(|_| 1 + rng.below(16) as u32).collect();
        Self {
            initial,
            victims,
            sizes,
        }
    }
}

/// What the benchmark needs from an allocator (sizes in 4 KiB pages).
trait PageAllocator {
    type Handle: Copy;
    fn alloc(&mut self, pages: u32) -> Self::Handle;
    fn free(&mut self, handle: Self::Handle, pages: u32);
}

struct Ours(IovaAllocator);
impl PageAllocator for Ours {
    type Handle = u64;
    #[inline]
    fn alloc(&mut self, pages: u32) -> u64 {
        must(
            "iova alloc",
            self.0.alloc(u64::from(pages) * PAGE_4K, u64::MAX),
        )
    }
    #[inline]
    fn free(&mut self, iova: u64, pages: u32) {
        must("iova free", self.0.free(iova, u64::from(pages) * PAGE_4K));
    }
}

struct Offset(offset_allocator::Allocator);
impl PageAllocator for Offset {
    type Handle = offset_allocator::Allocation;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        must_some("offset-allocator allocate", self.0.allocate(pages))
    }
    #[inline]
    fn free(&mut self, handle: Self::Handle, _pages: u32) {
        self.0.free(handle);
    }
}

struct Buddy(buddy_system_allocator::FrameAllocator<32>);
impl PageAllocator for Buddy {
    type Handle = usize;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        must_some("buddy alloc", self.0.alloc(pages as usize))
    }
    #[inline]
    fn free(&mut self, frame: Self::Handle, pages: u32) {
        self.0.dealloc(frame, pages as usize);
    }
}

struct VmAllocator(vm_allocator::AddressAllocator);
impl PageAllocator for VmAllocator {
    type Handle = vm_allocator::RangeInclusive;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        must(
            "vm-allocator allocate",
            self.0.allocate(
                u64::from(pages) * PAGE_4K,
                PAGE_4K,
                vm_allocator::AllocPolicy::FirstMatch,
            ),
        )
    }
    #[inline]
    fn free(&mut self, range: Self::Handle, _pages: u32) {
        must("vm-allocator free", self.0.free(&range));
    }
}

/// The harness with no allocator behind it (subtracted from every figure).
struct Null(u64);
impl PageAllocator for Null {
    type Handle = u64;
    #[inline]
    fn alloc(&mut self, pages: u32) -> u64 {
        self.0 = self.0.wrapping_add(u64::from(pages));
        black_box(self.0)
    }
    #[inline]
    fn free(&mut self, handle: u64, _pages: u32) {
        black_box(handle);
    }
}

/// How many ops ahead the harness prefetches the victim's entry of the
/// live array (so the harness's own cache miss is not what is measured).
const PREFETCH_DISTANCE: usize = 16;

/// Asks the CPU to start loading `value`'s cache line.
#[inline(always)]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: a prefetch never faults and has no architectural effect.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
            (value as *const T).cast(),
        );
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// One allocator with its live set, ready to run rounds of a workload.
struct Runner<'w, A: PageAllocator> {
    alloc: A,
    live: Vec<(A::Handle, u32)>,
    w: &'w Workload,
}

impl<'w, A: PageAllocator> Runner<'w, A> {
    fn new(mut alloc: A, w: &'w Workload) -> Self {
        let live = w.initial.iter().map(|&p| (alloc.alloc(p), p)).collect();
        Self { alloc, live, w }
    }

    /// One pass over the workload's ops; ns per op.
    fn round(&mut self) -> f64 {
        let (w, live, alloc) = (self.w, &mut self.live, &mut self.alloc);
        let start = Instant::now();
        for (i, (&victim, &pages)) in w.victims.iter().zip(&w.sizes).enumerate() {
            if let Some(ahead) = w
                .victims
                .get(i + PREFETCH_DISTANCE)
                .and_then(|&v| live.get(v as usize))
            {
                prefetch(ahead);
            }
            if let Some(slot) = live.get_mut(victim as usize) {
                alloc.free(slot.0, slot.1);
                *slot = (alloc.alloc(pages), pages);
            }
        }
        start.elapsed().as_nanos() as f64 / w.victims.len() as f64
    }
}

impl<A: PageAllocator> Drop for Runner<'_, A> {
    fn drop(&mut self) {
        for (handle, pages) in self.live.drain(..) {
            self.alloc.free(handle, pages);
        }
    }
}

/// A named benchmark: each call runs one round and returns ns per op.
pub(crate) type Bench<'a> = (&'static str, Box<dyn FnMut() -> f64 + 'a>);

/// Runs every bench `rounds` times, interleaved (so a burst of load from
/// other processes hits all of them alike), and returns each one's best.
pub(crate) fn interleaved(benches: &mut [Bench<'_>], rounds: usize) -> Vec<f64> {
    let mut best = vec![f64::INFINITY; benches.len()];
    for _ in 0..rounds {
        for (b, (_, run)) in best.iter_mut().zip(benches.iter_mut()) {
            *b = b.min(run());
        }
    }
    best
}

fn ours() -> Ours {
    Ours(IovaAllocator::new(48).unwrap_or_else(|e| panic!("iova allocator: {e}")))
}

fn offset(live: usize) -> Offset {
    // Units are pages; room for every live allocation at its largest size.
    let units = (live as u32).saturating_mul(32).max(1 << 20);
    Offset(offset_allocator::Allocator::with_max_allocs(
        units,
        (live as u32) * 2 + 1024,
    ))
}

fn buddy(live: usize) -> Buddy {
    let mut b = buddy_system_allocator::FrameAllocator::<32>::new();
    b.add_frame(0, (live * 32).max(1 << 20));
    Buddy(b)
}

fn vm(live: usize) -> VmAllocator {
    let size = (live as u64 * 32 * PAGE_4K).max(1 << 32);
    VmAllocator(
        vm_allocator::AddressAllocator::new(1 << 32, size)
            .unwrap_or_else(|e| panic!("vm-allocator: {e}")),
    )
}

/// Net ns/op (harness subtracted; never below 0.1 ns so ratios stay finite).
fn net(raw: f64, harness: f64) -> f64 {
    (raw - harness).max(0.1)
}

fn iova_suite() {
    const OPS: usize = 1_000_000;
    let (w1k, w10k, w1m) = (
        Workload::new(1_000, OPS, 0x1000),
        Workload::new(10_000, OPS, 0x2000),
        Workload::new(1_000_000, OPS, 0x3000),
    );
    let mut null_1k = Runner::new(Null(0), &w1k);
    let mut null_10k = Runner::new(Null(0), &w10k);
    let mut null_1m = Runner::new(Null(0), &w1m);
    let mut ours_1k = Runner::new(ours(), &w1k);
    let mut ours_10k = Runner::new(ours(), &w10k);
    let mut ours_1m = Runner::new(ours(), &w1m);
    let mut offset_10k = Runner::new(offset(10_000), &w10k);
    let mut offset_1m = Runner::new(offset(1_000_000), &w1m);
    let mut buddy_10k = Runner::new(buddy(10_000), &w10k);
    let mut buddy_1m = Runner::new(buddy(1_000_000), &w1m);
    let mut benches: Vec<Bench<'_>> = vec![
        ("harness_ns_1k", Box::new(|| null_1k.round())),
        ("harness_ns_10k", Box::new(|| null_10k.round())),
        ("harness_ns_1m", Box::new(|| null_1m.round())),
        ("iova_raw_ns_1k", Box::new(|| ours_1k.round())),
        ("iova_raw_ns_10k", Box::new(|| ours_10k.round())),
        ("iova_raw_ns_1m", Box::new(|| ours_1m.round())),
        (
            "offset_allocator_raw_ns_10k",
            Box::new(|| offset_10k.round()),
        ),
        ("offset_allocator_raw_ns_1m", Box::new(|| offset_1m.round())),
        ("buddy_raw_ns_10k", Box::new(|| buddy_10k.round())),
        ("buddy_raw_ns_1m", Box::new(|| buddy_1m.round())),
    ];
    // One throwaway round warms clocks and caches, then the best of 5.
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 5);
    for ((name, _), &ns) in benches.iter().zip(&best) {
        report(name, ns);
    }
    let [h1k, h10k, h1m, o1k, o10k, o1m, off10k, off1m, bud10k, bud1m] = best[..] else {
        return;
    };
    let (ours_1k, ours_10k, ours_1m) = (net(o1k, h1k), net(o10k, h10k), net(o1m, h1m));
    report("iova_ns_1k", ours_1k);
    report("iova_ns_10k", ours_10k);
    report("iova_ns_1m", ours_1m);
    report(
        "iova_speedup_vs_offset_allocator_10k",
        net(off10k, h10k) / ours_10k,
    );
    report(
        "iova_speedup_vs_offset_allocator_1m",
        net(off1m, h1m) / ours_1m,
    );
    report("iova_speedup_vs_buddy_10k", net(bud10k, h10k) / ours_10k);
    report("iova_speedup_vs_buddy_1m", net(bud1m, h1m) / ours_1m);
    report("iova_growth_1k_to_1m", ours_1m / ours_1k);

    // vm-allocator walks its tree of free ranges: a million ops would take
    // minutes, so it gets a shorter workload of 10k live allocations and 3,000
    // ops, and our allocator and the harness run that very workload too, the
    // same rounds interleaved with it, best of 5.
    let short = Workload::new(10_000, 3_000, 0x4000);
    let mut null_short = Runner::new(Null(0), &short);
    let mut ours_short = Runner::new(ours(), &short);
    let mut vm_short = Runner::new(vm(10_000), &short);
    let mut benches: Vec<Bench<'_>> = vec![
        ("harness_ns_10k_3k_ops", Box::new(|| null_short.round())),
        ("iova_raw_ns_10k_3k_ops", Box::new(|| ours_short.round())),
        ("vm_allocator_raw_ns_10k", Box::new(|| vm_short.round())),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 5);
    for ((name, _), &ns) in benches.iter().zip(&best) {
        report(name, ns);
    }
    if let [h, o, v] = best[..] {
        report("iova_speedup_vs_vm_allocator_10k", net(v, h) / net(o, h));
    }
}

fn domain_with(mappings: usize, mem: &mut TableArena) -> Domain {
    let mut d =
        Domain::new(1, DomainConfig::default(), mem).unwrap_or_else(|e| panic!("domain: {e}"));
    for i in 0..mappings as u64 {
        d.map(mem, i * PAGE_4K, PAGE_4K, MapFlags::READ_WRITE, None)
            .unwrap_or_else(|e| panic!("map: {e}"));
    }
    d
}

/// One round of MAP + UNMAP pairs of 4 KiB at the IOVA the allocator picks
/// (the VT-d lines compare units on it); ns per pair.
pub(crate) fn map_unmap_round(d: &mut Domain, mem: &mut TableArena) -> f64 {
    let iters = 300_000u64;
    let start = Instant::now();
    for i in 0..iters {
        let iova = must(
            "map",
            d.map(
                mem,
                (i & 0xFFFF) * PAGE_4K,
                PAGE_4K,
                MapFlags::READ_WRITE,
                None,
            ),
        );
        black_box(must("unmap", d.unmap(mem, iova)));
        // What a strict UNMAP in iommud does around its invalidation.
        d.prune_tables(mem, iova, PAGE_4K);
        Domain::free_tables(mem, d.take_gathered_tables());
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Mappings per 2 MiB leaf table in the growth benchmark (every 16th page).
const PER_LEAF: u64 = 32;
/// Page stride between those mappings.
const LEAF_STRIDE_PAGES: u64 = 16;

/// The 2 MiB slot of leaf `j`: an odd multiplier permutes the 2^27 slots of
/// the 48-bit space, so consecutive leaves land far apart, each under its own
/// upper-level tables, across the whole space.
fn scattered_leaf(j: u64) -> u64 {
    (j.wrapping_mul(0x9E37_79B1) & ((1 << 27) - 1)) << 21
}

/// A domain holding `mappings` 4 KiB mappings spread over the whole IOVA space,
/// [`PER_LEAF`] per leaf table; returns it with the leaves it used.
fn scattered_domain(mappings: usize, mem: &mut TableArena) -> (Domain, Vec<u64>) {
    let mut d =
        Domain::new(1, DomainConfig::default(), mem).unwrap_or_else(|e| panic!("domain: {e}"));
    let mut leaves = Vec::new();
    let mut j = 0;
    while (leaves.len() as u64) * PER_LEAF < mappings as u64 {
        let base = scattered_leaf(j);
        j += 1;
        // A slot the allocator keeps for itself (page 0, the MSI window) is skipped.
        if d.map(mem, 0, PAGE_4K, MapFlags::READ_WRITE, Some(base))
            .is_err()
        {
            continue;
        }
        for k in 1..PER_LEAF {
            let iova = base + k * LEAF_STRIDE_PAGES * PAGE_4K;
            must(
                "scattered map",
                d.map(mem, k * PAGE_4K, PAGE_4K, MapFlags::READ_WRITE, Some(iova)),
            );
        }
        leaves.push(base);
    }
    (d, leaves)
}

/// One round of MAP + UNMAP pairs of 4 KiB at IOVAs spread over every leaf of
/// `leaves` (a free page beside the mappings, a different leaf each time, so
/// with a million mappings each walk goes through cold tables); ns per pair.
fn scattered_map_unmap_round(d: &mut Domain, mem: &mut TableArena, leaves: &[u64]) -> f64 {
    let iters = 300_000u64;
    let n = leaves.len() as u64;
    let start = Instant::now();
    for i in 0..iters {
        // 7919 is prime (and no factor of the leaf count), so the walk visits
        // the leaves in a scattered order.
        let leaf = must_some("leaf", leaves.get(((i * 7919) % n) as usize));
        let iova = leaf + ((i % PER_LEAF) * LEAF_STRIDE_PAGES + 1) * PAGE_4K;
        let got = must(
            "map",
            d.map(
                mem,
                (i & 0xFFFF) * PAGE_4K,
                PAGE_4K,
                MapFlags::READ_WRITE,
                Some(iova),
            ),
        );
        black_box(must("unmap", d.unmap(mem, got)));
        // What a strict UNMAP in iommud does around its invalidation.
        d.prune_tables(mem, got, PAGE_4K);
        Domain::free_tables(mem, d.take_gathered_tables());
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

fn domain_suite() {
    // MAP + UNMAP in a domain already holding 1k / 1M mappings spread over
    // the whole IOVA space, at IOVAs spread over all of them, interleaved.
    let mut mem_small = TableArena::new(0x1_0000_0000, 1 << 22);
    let (mut small, small_leaves) = scattered_domain(1_000, &mut mem_small);
    let mut mem_large = TableArena::new(0x1_0000_0000, 1 << 22);
    let (mut large, large_leaves) = scattered_domain(1_000_000, &mut mem_large);
    report("map_growth_tables_1k", mem_small.live_tables() as f64);
    report("map_growth_tables_1m", mem_large.live_tables() as f64);
    let mut benches: Vec<Bench<'_>> = vec![
        (
            "map_unmap_4k_ns",
            Box::new(|| scattered_map_unmap_round(&mut small, &mut mem_small, &small_leaves)),
        ),
        (
            "map_unmap_4k_1m_ns",
            Box::new(|| scattered_map_unmap_round(&mut large, &mut mem_large, &large_leaves)),
        ),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 5);
    for ((name, _), &ns) in benches.iter().zip(&best) {
        report(name, ns);
    }
    if let [small_ns, large_ns] = best[..] {
        report("map_growth_1k_to_1m", large_ns / small_ns);
    }
    drop(benches);

    let mut mem = TableArena::new(0x1_0000_0000, 1 << 16);
    let mut d = domain_with(1_000, &mut mem);
    let iova = must(
        "map",
        d.map(&mut mem, 0x1234_5000, PAGE_4K, MapFlags::READ_WRITE, None),
    );
    let iters = 5_000_000;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for i in 0..iters as u64 {
            black_box(must_some(
                "translate",
                d.translate(&mem, black_box(iova + (i & 0xFF8))),
            ));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    report("translate_hot_ns", best);

    // Mapping 1 GiB (IOVA and phys 1 GiB aligned): one 1 GiB leaf vs 262,144
    // 4 KiB leaves. Each round maps and unmaps; the ratio is 4 KiB / superpage.
    let one_gib = |policy: PagePolicy, rounds: usize| {
        let mut mem = TableArena::new(0x1_0000_0000, 1 << 12);
        let config = DomainConfig {
            page_policy: policy,
            ..DomainConfig::default()
        };
        let mut d = Domain::new(2, config, &mut mem).unwrap_or_else(|e| panic!("domain: {e}"));
        let mut best = f64::INFINITY;
        for _ in 0..rounds {
            let start = Instant::now();
            let iova = must(
                "map 1 GiB",
                d.map(
                    &mut mem,
                    0x40_0000_0000,
                    PAGE_1G,
                    MapFlags::READ_WRITE,
                    None,
                ),
            );
            black_box(must("unmap 1 GiB", d.unmap(&mut mem, iova)));
            best = best.min(start.elapsed().as_nanos() as f64);
        }
        best
    };
    let superpage = one_gib(PagePolicy::Largest, 200);
    let small_pages = one_gib(PagePolicy::Only4K, 5);
    report("map_1g_superpage_ns", superpage);
    report("map_1g_4k_pages_ns", small_pages);
    report("map_1g_superpage_over_4k_pages", small_pages / superpage);
}

/// The one root client the in-process rounds act as.
pub(crate) const ROOT: iommu::access::Client = iommu::access::Client::new(1, 0);

/// MAP + UNMAP pairs of 4 KiB through iommud's own state (no IPC) on the
/// simulated AMD-Vi unit: strict domains wait for `INV_IOMMU_PAGES` +
/// `COMPLETION_WAIT` on every unmap; lazy domains queue the IOVA and flush
/// the whole domain once per 256 unmaps. ns per pair.
pub(crate) fn invalidation_round(iommu: &mut iommu::service::Iommu, domain: u16, phys: u64) -> f64 {
    let iters = 100_000;
    let start = Instant::now();
    for _ in 0..iters {
        let iova = must(
            "map",
            iommu.map(domain, ROOT, phys, PAGE_4K, MapFlags::READ_WRITE, None),
        );
        black_box(must("unmap", iommu.unmap(domain, ROOT, iova)));
    }
    start.elapsed().as_nanos() as f64 / iters as f64
}

/// Strict vs lazy map+unmap on a unit that executes commands as `execution`
/// says; (strict ns, lazy ns) per pair.
fn invalidation_pair(execution: redox_host::hw::amdvi::CommandExecution) -> (f64, f64) {
    use redox_host::hw::amdvi::SimAmdVi;
    use redox_host::{Cred, Kernel};

    let k = Kernel::boot();
    let unit = SimAmdVi::with_execution(&k, execution);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()])
        .unwrap_or_else(|e| panic!("iommud state: {e}"));
    let phys = k
        .phys()
        .alloc(PAGE_4K as usize, false)
        .unwrap_or_else(|e| panic!("ram: {e}"));
    strict_and_lazy(iommu, phys)
}

/// Strict and lazy ns per MAP + UNMAP pair on `iommu` (whatever its unit):
/// domain 1 strict and domain 2 lazy, each holding a device, rounds
/// interleaved, 1 warm-up + best of 5.
pub(crate) fn strict_and_lazy(mut iommu: iommu::service::Iommu, phys: u64) -> (f64, f64) {
    use iommu::Invalidation;
    for (id, mode) in [(1u16, Invalidation::Strict), (2, Invalidation::Lazy)] {
        let made = iommu
            .create_domain(Some(id), ROOT)
            .and_then(|_| iommu.set_invalidation(id, ROOT, mode))
            .and_then(|_| iommu.assign(iommu::Bdf::from_requester_id(id), id, None, ROOT));
        if let Err(e) = made {
            panic!("domain {id}: {e}");
        }
    }
    let iommu = std::cell::RefCell::new(iommu);
    let mut benches: Vec<Bench<'_>> = vec![
        (
            "strict",
            Box::new(|| invalidation_round(&mut iommu.borrow_mut(), 1, phys)),
        ),
        (
            "lazy",
            Box::new(|| invalidation_round(&mut iommu.borrow_mut(), 2, phys)),
        ),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 5);
    match best[..] {
        [strict, lazy] => (strict, lazy),
        _ => (f64::NAN, f64::NAN),
    }
}

fn invalidation_suite() {
    use redox_host::hw::amdvi::CommandExecution;

    // The unit runs its command buffer beside the CPU, as hardware does:
    // a strict unmap waits for the unit to reach its completion store.
    let (strict, lazy) = invalidation_pair(CommandExecution::Concurrent);
    report("map_unmap_strict_ns", strict);
    report("map_unmap_lazy_ns", lazy);
    report("lazy_over_strict_throughput", strict / lazy);
    // Lower bound: a unit with zero latency (commands run inside the tail write).
    let (strict, lazy) = invalidation_pair(CommandExecution::Inline);
    report("map_unmap_strict_inline_unit_ns", strict);
    report("map_unmap_lazy_inline_unit_ns", lazy);
    report("lazy_over_strict_throughput_inline_unit", strict / lazy);
    // End to end through the scheme (two IPC round trips per pair).
    let (strict, lazy) = invalidation_over_ipc();
    report("map_unmap_strict_ipc_ns", strict);
    report("map_unmap_lazy_ipc_ns", lazy);
    report("lazy_over_strict_throughput_ipc", strict / lazy);
    let (batched, inprocess) = batched_over_inprocess();
    report("batched_map_unmap_4k_ipc_ns_per_page", batched);
    report("map_unmap_4k_inprocess_ns_per_page", inprocess);
    report(
        "batched_map_unmap_4k_ipc_over_inprocess",
        batched / inprocess,
    );
}

/// Pages per BATCH in the batched line (one I/O's scatter list).
const BATCH_PAGES: u64 = 64;

/// Per 4 KiB page, lazy domains on the same concurrent unit, in one process:
/// through iommud, one BATCH MAP of 64 pages then one BATCH UNMAP of them
/// (driver-sys `map_sg`/`unmap_sg`, two round trips per 64 pages); in
/// process, iommud's own state mapping and unmapping the same 64 pages one
/// by one (`Iommu::map`/`unmap`, no IPC). Same pages, same flush queue, same
/// work apart from the transport. (ns per page through iommud, in process.)
fn batched_over_inprocess() -> (f64, f64) {
    use driver_sys::dma::{IommuDomainMapper, IommuMapper};
    use iommu::Invalidation;
    use iommu::protocol::{Opcode, RawRequest};
    use redox_host::hw::amdvi::{CommandExecution, SimAmdVi};
    use redox_host::{Cred, Kernel};

    let k = Kernel::boot();
    let unit = SimAmdVi::with_execution(&k, CommandExecution::Concurrent);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let phys = k
        .phys()
        .alloc((BATCH_PAGES * PAGE_4K) as usize, false)
        .unwrap_or_else(|e| panic!("ram: {e}"));
    let ranges: Vec<(u64, u64)> = (0..BATCH_PAGES)
        .map(|i| (phys + i * PAGE_4K, PAGE_4K))
        .collect();
    // In process: iommud's state on this thread.
    let mut local = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()])
        .unwrap_or_else(|e| panic!("iommud state: {e}"));
    let made = local
        .create_domain(Some(1), ROOT)
        .and_then(|_| local.set_invalidation(1, ROOT, Invalidation::Lazy));
    if let Err(e) = made {
        panic!("domain: {e}");
    }
    // Through iommud: the daemon on its own thread, a second unit on the
    // same machine (each side owns its unit's command ring).
    let remote_unit = SimAmdVi::with_execution(&k, CommandExecution::Concurrent);
    let _iommud = redox_host::boot::iommud(&k, iommu::Config::default(), &remote_unit);
    let mapper = IommuDomainMapper::open_new().unwrap_or_else(|e| panic!("domain: {e}"));
    let lazy = RawRequest::new(Opcode::SetInvalidation, 1, 0, 0, 0);
    must("lazy", mapper.exchange(&lazy));
    let rounds = 2_000u64;
    let per_page =
        |start: Instant| start.elapsed().as_nanos() as f64 / (rounds * BATCH_PAGES) as f64;
    let local = std::cell::RefCell::new(local);
    let mut iovas = Vec::with_capacity(BATCH_PAGES as usize);
    let mut benches: Vec<Bench<'_>> = vec![
        (
            "batched",
            Box::new(|| {
                let start = Instant::now();
                for _ in 0..rounds {
                    let iovas = must("map_sg", mapper.map_sg(&ranges, MapFlags::READ_WRITE));
                    black_box(must("unmap_sg", mapper.unmap_sg(&iovas)));
                }
                per_page(start)
            }),
        ),
        (
            "inprocess",
            Box::new(|| {
                let mut s = local.borrow_mut();
                let start = Instant::now();
                for _ in 0..rounds {
                    iovas.clear();
                    for &(p, size) in &ranges {
                        let m = s.map(1, ROOT, p, size, MapFlags::READ_WRITE, None);
                        iovas.push(must("map", m));
                    }
                    for &iova in &iovas {
                        black_box(must("unmap", s.unmap(1, ROOT, iova)));
                    }
                }
                per_page(start)
            }),
        ),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 3);
    match best[..] {
        [b, l] => (b, l),
        _ => (f64::NAN, f64::NAN),
    }
}

/// The same pairs as seen by a driver: MAP and UNMAP requests through the
/// kernel to iommud on its own thread (concurrent unit). ns per pair.
fn invalidation_over_ipc() -> (f64, f64) {
    use iommu::Invalidation;
    use iommu::client::IommuDomain;
    use redox_host::hw::amdvi::{CommandExecution, SimAmdVi};
    use redox_host::{Cred, Kernel};

    let k = Kernel::boot();
    let unit = SimAmdVi::with_execution(&k, CommandExecution::Concurrent);
    let _iommud = redox_host::boot::iommud(&k, iommu::Config::default(), &unit);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let phys = k
        .phys()
        .alloc(PAGE_4K as usize, false)
        .unwrap_or_else(|e| panic!("ram: {e}"));
    let open = |id: u16, mode| {
        let d = IommuDomain::open(id).unwrap_or_else(|e| panic!("domain {id}: {e}"));
        d.set_invalidation(mode)
            .unwrap_or_else(|e| panic!("mode: {e}"));
        d
    };
    let strict = open(1, Invalidation::Strict);
    let lazy = open(2, Invalidation::Lazy);
    let round = |d: &IommuDomain| {
        let iters = 20_000;
        let start = Instant::now();
        for _ in 0..iters {
            let iova = must("map", d.map(phys, PAGE_4K, MapFlags::READ_WRITE, None));
            black_box(must("unmap", d.unmap(iova)));
        }
        start.elapsed().as_nanos() as f64 / iters as f64
    };
    let mut benches: Vec<Bench<'_>> = vec![
        ("strict", Box::new(|| round(&strict))),
        ("lazy", Box::new(|| round(&lazy))),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 3);
    match best[..] {
        [s, l] => (s, l),
        _ => (f64::NAN, f64::NAN),
    }
}

/// Runs the suite.
pub fn run() {
    iova_suite();
    domain_suite();
    invalidation_suite();
    super::iommu_vtd::run();
}
