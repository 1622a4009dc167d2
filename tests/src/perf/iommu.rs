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
//! The peers: `offset-allocator` (two-level bitmap, units = pages),
//! `buddy_system_allocator::FrameAllocator` (frames = pages; rounds to powers
//! of two like ours), rust-vmm `vm-allocator::AddressAllocator` (first match,
//! 4 KiB aligned). Our allocator runs with its DMA windows, reserved MSI
//! window and free validation all active (48-bit space, 64-bit mask).

use std::hint::black_box;
use std::time::Instant;

use iommu::page_table::{PAGE_1G, PAGE_4K, PagePolicy};
use iommu::{Domain, DomainConfig, IovaAllocator, MapFlags, TableArena};

use super::report;

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
        self.0
            .alloc(u64::from(pages) * PAGE_4K, u64::MAX)
            .unwrap_or(0)
    }
    #[inline]
    fn free(&mut self, iova: u64, pages: u32) {
        let _ = black_box(self.0.free(iova, u64::from(pages) * PAGE_4K));
    }
}

struct Offset(offset_allocator::Allocator);
impl PageAllocator for Offset {
    type Handle = Option<offset_allocator::Allocation>;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        self.0.allocate(pages)
    }
    #[inline]
    fn free(&mut self, handle: Self::Handle, _pages: u32) {
        if let Some(a) = handle {
            self.0.free(a);
        }
    }
}

struct Buddy(buddy_system_allocator::FrameAllocator<32>);
impl PageAllocator for Buddy {
    type Handle = Option<usize>;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        self.0.alloc(pages as usize)
    }
    #[inline]
    fn free(&mut self, handle: Self::Handle, pages: u32) {
        if let Some(frame) = handle {
            self.0.dealloc(frame, pages as usize);
        }
    }
}

struct VmAllocator(vm_allocator::AddressAllocator);
impl PageAllocator for VmAllocator {
    type Handle = Option<vm_allocator::RangeInclusive>;
    #[inline]
    fn alloc(&mut self, pages: u32) -> Self::Handle {
        self.0
            .allocate(
                u64::from(pages) * PAGE_4K,
                PAGE_4K,
                vm_allocator::AllocPolicy::FirstMatch,
            )
            .ok()
    }
    #[inline]
    fn free(&mut self, handle: Self::Handle, _pages: u32) {
        if let Some(range) = handle {
            let _ = self.0.free(&range);
        }
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

/// Best-of-`rounds` ns per op of the steady-state loop.
fn time_ops<A: PageAllocator>(alloc: &mut A, w: &Workload, rounds: usize) -> f64 {
    let mut live: Vec<(A::Handle, u32)> = w.initial.iter().map(|&p| (alloc.alloc(p), p)).collect();
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
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
        best = best.min(start.elapsed().as_nanos() as f64 / w.victims.len() as f64);
    }
    for (handle, pages) in live {
        alloc.free(handle, pages);
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

struct Scale {
    label: &'static str,
    live: usize,
    ops: usize,
}

fn iova_suite() {
    // Warm-up (CPU clock, page faults of the allocator's first slabs), so the
    // first scale measured is not penalised.
    time_ops(&mut ours(), &Workload::new(1_000, 1_000_000, 1), 2);
    let mut ours_net = Vec::new();
    for scale in [
        Scale {
            label: "1k",
            live: 1_000,
            ops: 1_000_000,
        },
        Scale {
            label: "10k",
            live: 10_000,
            ops: 1_000_000,
        },
        Scale {
            label: "1m",
            live: 1_000_000,
            ops: 1_000_000,
        },
    ] {
        let w = Workload::new(scale.live, scale.ops, 0x1000 + scale.live as u64);
        let harness = time_ops(&mut Null(0), &w, 5);
        let ours_raw = time_ops(&mut ours(), &w, 5);
        let ours = net(ours_raw, harness);
        ours_net.push(ours);
        report(&format!("iova_ns_{}", scale.label), ours);
        report(&format!("iova_raw_ns_{}", scale.label), ours_raw);
        report(&format!("harness_ns_{}", scale.label), harness);
        if scale.live == 1_000 {
            continue;
        }
        let off_raw = time_ops(&mut offset(scale.live), &w, 5);
        let bud_raw = time_ops(&mut buddy(scale.live), &w, 5);
        report(&format!("offset_allocator_raw_ns_{}", scale.label), off_raw);
        report(&format!("buddy_raw_ns_{}", scale.label), bud_raw);
        report(
            &format!("iova_speedup_vs_offset_allocator_{}", scale.label),
            net(off_raw, harness) / ours,
        );
        report(
            &format!("iova_speedup_vs_buddy_{}", scale.label),
            net(bud_raw, harness) / ours,
        );
        if scale.live == 10_000 {
            // vm-allocator scans: a few thousand ops are plenty.
            let short = Workload::new(scale.live, 3_000, 0x2000);
            let vm_raw = time_ops(&mut vm(scale.live), &short, 1);
            report("vm_allocator_raw_ns_10k", vm_raw);
            report(
                "iova_speedup_vs_vm_allocator_10k",
                net(vm_raw, harness) / ours,
            );
        }
    }
    if let (Some(first), Some(last)) = (ours_net.first(), ours_net.last()) {
        report("iova_growth_1k_to_1m", last / first);
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

/// ns per MAP + UNMAP pair of 4 KiB in a domain already holding `mappings`.
fn map_unmap_ns(mappings: usize) -> f64 {
    let mut mem = TableArena::new(0x1_0000_0000, 1 << 22);
    let mut d = domain_with(mappings, &mut mem);
    let iters = 300_000;
    let mut best = f64::INFINITY;
    for _ in 0..5 {
        let start = Instant::now();
        for i in 0..iters as u64 {
            let iova = d
                .map(
                    &mut mem,
                    (i & 0xFFFF) * PAGE_4K,
                    PAGE_4K,
                    MapFlags::READ_WRITE,
                    None,
                )
                .unwrap_or(0);
            black_box(d.unmap(&mut mem, iova).ok());
        }
        best = best.min(start.elapsed().as_nanos() as f64 / iters as f64);
    }
    best
}

fn domain_suite() {
    let small = map_unmap_ns(1_000);
    let large = map_unmap_ns(1_000_000);
    report("map_unmap_4k_ns", small);
    report("map_unmap_4k_1m_ns", large);
    report("map_growth_1k_to_1m", large / small);

    let mut mem = TableArena::new(0x1_0000_0000, 1 << 16);
    let mut d = domain_with(1_000, &mut mem);
    let iova = d
        .map(&mut mem, 0x1234_5000, PAGE_4K, MapFlags::READ_WRITE, None)
        .unwrap_or(0);
    let iters = 5_000_000;
    let mut best = f64::INFINITY;
    for _ in 0..3 {
        let start = Instant::now();
        for i in 0..iters as u64 {
            black_box(d.translate(&mem, black_box(iova + (i & 0xFF8))));
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
            let iova = d
                .map(
                    &mut mem,
                    0x40_0000_0000,
                    PAGE_1G,
                    MapFlags::READ_WRITE,
                    None,
                )
                .unwrap_or(0);
            black_box(d.unmap(&mut mem, iova).ok());
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

/// Runs the suite.
pub fn run() {
    iova_suite();
    domain_suite();
}
