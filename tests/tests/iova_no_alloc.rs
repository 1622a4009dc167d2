//! The IOVA allocator's steady state allocates no memory: random frees and
//! allocations of 1–16 pages with 10k live, and bursts that push a size class
//! through its magazines, depot and evictions back to the slabs, once warm
//! (once the slab table, radix and bitmap pool have reached the live set's
//! high-water mark: growing those is a `Vec` growing).
//! A counting allocator armed on this thread only proves it, so this binary
//! holds these tests alone.

use dsmil_tests::counting_alloc::{Counting, allocations_in};
use iommu::IovaAllocator;

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const PAGE: u64 = 4096;

/// xorshift64*: deterministic.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        ((u128::from(self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)) * u128::from(n)) >> 64) as u64
    }
}

fn churn(a: &mut IovaAllocator, live: &mut [(u64, u64)], rng: &mut Rng, ops: usize) {
    for _ in 0..ops {
        let victim = rng.below(live.len() as u64) as usize;
        let (iova, size) = live[victim];
        a.free(iova, size).expect("free");
        let size = (1 + rng.below(16)) * PAGE;
        live[victim] = (a.alloc(size, u64::MAX).expect("alloc"), size);
    }
}

#[test]
fn random_churn_allocates_nothing_once_warm() {
    let mut a = IovaAllocator::new(48).expect("allocator");
    let mut rng = Rng(0x5EED);
    let mut live: Vec<(u64, u64)> = (0..10_000)
        .map(|_| {
            let size = (1 + rng.below(16)) * PAGE;
            (a.alloc(size, u64::MAX).expect("fill"), size)
        })
        .collect();
    churn(&mut a, &mut live, &mut rng, 400_000);
    let made = allocations_in(|| churn(&mut a, &mut live, &mut rng, 100_000));
    assert_eq!(made, 0, "allocations in 100k warm free+alloc pairs");
}

fn burst(a: &mut IovaAllocator, held: &mut Vec<u64>) {
    for iova in held.drain(..) {
        a.free(iova, PAGE).expect("free");
    }
    for _ in 0..5_000 {
        held.push(a.alloc(PAGE, u64::MAX).expect("alloc"));
    }
}

#[test]
fn bursts_through_the_depot_reuse_magazines() {
    let mut a = IovaAllocator::new(48).expect("allocator");
    // 5,000 frees of one class overflow loaded, previous and a depot of 32
    // magazines of 127: the oldest are evicted back to the slabs.
    let mut held: Vec<u64> = Vec::with_capacity(5_000);
    held.extend((0..5_000).map(|_| a.alloc(PAGE, u64::MAX).expect("fill")));
    for _ in 0..3 {
        burst(&mut a, &mut held);
    }
    let made = allocations_in(|| {
        for _ in 0..3 {
            burst(&mut a, &mut held);
        }
    });
    assert_eq!(made, 0, "allocations in 3 warm bursts");
}
