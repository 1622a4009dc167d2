//! Allocator behaviour: windows, reservations, fixed IOVAs, validation.

use std::collections::BTreeMap;

use proptest::prelude::*;
use syscall::error::{EEXIST, EINVAL, ENOENT, ENOSPC};

use super::*;

const MASK32: u64 = 0xFFFF_FFFF;
const GIB: u64 = 1 << 30;

fn overlaps(a: u64, alen: u64, b: u64, blen: u64) -> bool {
    a < b + blen && b < a + alen
}

#[test]
fn small_sizes_round_up_and_align_naturally() {
    let mut a = IovaAllocator::new(48).unwrap();
    for pages in 1..=32u64 {
        let iova = a.alloc(pages * PAGE, u64::MAX).unwrap();
        let fp = footprint(pages * PAGE);
        assert!(fp.is_power_of_two() && fp >= pages * PAGE);
        assert_eq!(iova % fp, 0, "{pages} pages at {iova:#x}");
    }
    let big = a.alloc(3 << 20, u64::MAX).unwrap();
    assert_eq!(big % (2 << 20), 0, "3 MiB aligned to 2 MiB");
    let gig = a.alloc(GIB, u64::MAX).unwrap();
    assert_eq!(gig % GIB, 0);
}

#[test]
fn first_iovas_come_from_4g_upward() {
    let mut a = IovaAllocator::new(39).unwrap();
    assert_eq!(a.preferred_window(u64::MAX), Some(1 << 32));
    assert_eq!(a.preferred_window(MASK32), Some(1 << 31));
    assert_eq!(a.largest_free_range(u64::MAX), 1 << 38);
    assert_eq!(a.largest_free_range(MASK32), MSI_WINDOW.0 - (1 << 31));
    let iova = a.alloc(PAGE, u64::MAX).unwrap();
    assert!((1u64 << 32..1u64 << 33).contains(&iova), "{iova:#x}");
}

#[test]
fn dma32_device_never_gets_4g_or_above_and_exhausts_with_enospc() {
    let mut a = IovaAllocator::new(48).unwrap();
    let mut live = Vec::new();
    // Mixed sizes until the 32-bit space is gone.
    let sizes = [PAGE, 16 * PAGE, 64 << 20, 256 << 20];
    let mut i = 0;
    loop {
        let size = sizes[i % sizes.len()];
        i += 1;
        match a.alloc(size, MASK32) {
            Ok(iova) => {
                assert!(iova + footprint(size) <= 1 << 32, "{iova:#x}");
                assert!(!overlaps(
                    iova,
                    footprint(size),
                    MSI_WINDOW.0,
                    MSI_WINDOW.1 - MSI_WINDOW.0
                ));
                live.push(iova);
            }
            Err(e) => {
                assert_eq!(e.errno, ENOSPC);
                if size == PAGE {
                    break;
                }
            }
        }
    }
    assert!(live.len() > 1000);
    assert!(a.free_bytes(MASK32) < 256 << 20);
    // A 64-bit device still has the rest of the space.
    assert!(a.alloc(PAGE, u64::MAX).unwrap() >= 1 << 32);
}

#[test]
fn msi_window_and_page_zero_are_reserved() {
    let mut a = IovaAllocator::new(39).unwrap();
    assert_eq!(a.alloc_at(0xFEE0_0000, PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(a.alloc_at(0xFEDF_F000, 2 * PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(a.alloc_at(0, PAGE).unwrap_err().errno, EINVAL);
    a.alloc_at(0xFEDF_F000, PAGE).unwrap();
    a.alloc_at(0xFEF0_0000, PAGE).unwrap();
    let usage = a.usage();
    let w31 = usage.iter().find(|u| u.start == 1 << 31).unwrap();
    assert_eq!(w31.usable_bytes, (1 << 31) - (MSI_WINDOW.1 - MSI_WINDOW.0));
}

#[test]
fn fixed_iovas_reject_overlap() {
    let mut a = IovaAllocator::new(39).unwrap();
    a.alloc_at(0x10_0000, 0x4000).unwrap();
    assert_eq!(a.alloc_at(0x10_3000, PAGE).unwrap_err().errno, EEXIST);
    assert_eq!(a.alloc_at(0xF_F000, 0x2000).unwrap_err().errno, EEXIST);
    assert_eq!(a.alloc_at(0x10_0800, PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(a.alloc_at(1 << 39, PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(
        a.alloc_at(u64::MAX - 0xFFF, PAGE).unwrap_err().errno,
        EINVAL
    );
    a.alloc_at(0x10_4000, PAGE).unwrap();
    // Spanning windows is fine for a fixed range.
    a.alloc_at(0x1000, 0xF_F000).unwrap();
    a.free(0x1000, 0xF_F000).unwrap();
}

#[test]
fn fixed_iova_inside_a_slab_region() {
    let mut a = IovaAllocator::new(39).unwrap();
    let small = a.alloc(PAGE, u64::MAX).unwrap();
    // Overlapping a live slot: EEXIST.
    assert_eq!(a.alloc_at(small, PAGE).unwrap_err().errno, EEXIST);
    // Free space in the same slab region: granted, and the live slot stays valid.
    a.alloc_at(small + 8 * PAGE, 3 * PAGE).unwrap();
    let again = a.alloc(PAGE, u64::MAX).unwrap();
    assert!(!overlaps(again, PAGE, small + 8 * PAGE, 3 * PAGE));
    assert_eq!(
        a.free(small + 8 * PAGE, 4 * PAGE).unwrap_err().errno,
        EINVAL,
        "fixed frees need the exact size"
    );
    a.free(small + 8 * PAGE, 3 * PAGE).unwrap();
    a.free(small, PAGE).unwrap();
    a.free(again, PAGE).unwrap();
    assert_eq!(a.live_allocations(), 0);
}

#[test]
fn free_is_validated() {
    let mut a = IovaAllocator::new(48).unwrap();
    let x = a.alloc(4 * PAGE, u64::MAX).unwrap();
    let big = a.alloc(1 << 20, u64::MAX).unwrap();
    let before = a.free_bytes(u64::MAX);
    assert_eq!(a.free(x + PAGE, PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(a.free(x, 8 * PAGE).unwrap_err().errno, EINVAL);
    assert_eq!(a.free(x + 4 * PAGE, 4 * PAGE).unwrap_err().errno, ENOENT);
    assert_eq!(a.free(big, 2 << 20).unwrap_err().errno, EINVAL);
    assert_eq!(a.free(big + PAGE, 1 << 20).unwrap_err().errno, ENOENT);
    assert_eq!(a.free(0x7000_0000, PAGE).unwrap_err().errno, ENOENT);
    assert_eq!(a.free(x, 0).unwrap_err().errno, EINVAL);
    assert_eq!(
        a.free_bytes(u64::MAX),
        before,
        "failed frees change nothing"
    );
    a.free(x, 3 * PAGE).unwrap(); // same footprint as 4 pages
    assert_eq!(
        a.free(x, 4 * PAGE).unwrap_err().errno,
        ENOENT,
        "double free"
    );
    a.free(big, 1 << 20).unwrap();
    assert_eq!(a.free_bytes(u64::MAX), before + 4 * PAGE + (1 << 20));
}

#[test]
fn no_count_cap_and_space_query() {
    let mut a = IovaAllocator::new(39).unwrap();
    let total = a.free_bytes(u64::MAX);
    let mut v = Vec::new();
    for _ in 0..100_000 {
        v.push(a.alloc(PAGE, u64::MAX).unwrap());
    }
    assert_eq!(a.live_allocations(), 100_000);
    assert_eq!(a.free_bytes(u64::MAX), total - 100_000 * PAGE);
    for x in v {
        a.free(x, PAGE).unwrap();
    }
    assert_eq!(a.free_bytes(u64::MAX), total);
}

#[test]
fn exhaustion_reclaims_cached_slabs() {
    // A 22-bit device: windows up to [2 MiB, 4 MiB), which is one slab.
    let mask22 = (1 << 22) - 1;
    let mut a = IovaAllocator::new(39).unwrap();
    let x = a.alloc(PAGE, mask22).unwrap();
    assert!((1 << 21..1 << 22).contains(&x), "{x:#x}");
    a.free(x, PAGE).unwrap();
    assert_eq!(a.slab_count(), 1, "the only slab is kept as cache");
    // Needs the whole window: the cached slab must be given back.
    assert_eq!(a.alloc(1 << 21, mask22).unwrap(), 1 << 21);
    assert_eq!(a.slab_count(), 0);
}

#[test]
fn bad_arguments() {
    assert_eq!(IovaAllocator::new(31).unwrap_err().errno, EINVAL);
    assert_eq!(IovaAllocator::new(64).unwrap_err().errno, EINVAL);
    let mut a = IovaAllocator::new(39).unwrap();
    assert_eq!(a.alloc(0, u64::MAX).unwrap_err().errno, EINVAL);
    assert_eq!(a.alloc(100, u64::MAX).unwrap_err().errno, EINVAL);
    assert_eq!(a.alloc(PAGE, 0xFFF).unwrap_err().errno, EINVAL);
    assert_eq!(
        a.alloc_aligned(PAGE, 3 * PAGE, u64::MAX).unwrap_err().errno,
        EINVAL
    );
    let x = a.alloc_aligned(PAGE, 1 << 21, u64::MAX).unwrap();
    assert_eq!(x % (1 << 21), 0);
    a.free(x, PAGE).unwrap();
    assert_eq!(a.alloc(1 << 39, u64::MAX).unwrap_err().errno, ENOSPC);
}

#[derive(Debug, Clone)]
enum Op {
    Alloc { pages: u64, mask32: bool },
    Fixed { page: u64, pages: u64 },
    Free(usize),
    BadFree(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..=64, any::<bool>()).prop_map(|(pages, mask32)| Op::Alloc { pages, mask32 }),
        1 => (0x10_0000u64..0x10_2000, 1u64..=8).prop_map(|(page, pages)| Op::Fixed { page, pages }),
        4 => any::<usize>().prop_map(Op::Free),
        1 => (0u64..0x20_0000).prop_map(Op::BadFree),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Random alloc/fixed/free sequences against a model: no two live
    /// allocations ever overlap, frees of unknown IOVAs fail, and the free
    /// byte count always matches.
    #[test]
    fn never_overlaps(ops in prop::collection::vec(op(), 1..400)) {
        let mut a = IovaAllocator::new(39).unwrap();
        let total = a.free_bytes(u64::MAX);
        let mut model: BTreeMap<u64, (u64, u64)> = BTreeMap::new(); // iova -> (size, footprint)
        for op in ops {
            match op {
                Op::Alloc { pages, mask32 } => {
                    let mask = if mask32 { MASK32 } else { u64::MAX };
                    let size = pages * PAGE;
                    let iova = a.alloc(size, mask).unwrap();
                    let fp = footprint(size);
                    prop_assert!(iova >= PAGE && iova + fp <= 1 << 39);
                    if mask32 { prop_assert!(iova + fp <= 1 << 32); }
                    prop_assert!(!overlaps(iova, fp, MSI_WINDOW.0, MSI_WINDOW.1 - MSI_WINDOW.0));
                    model.insert(iova, (size, fp));
                }
                Op::Fixed { page, pages } => {
                    let (iova, size) = (page * PAGE, pages * PAGE);
                    let clash = model.iter().any(|(&b, &(_, blen))| overlaps(iova, size, b, blen));
                    match a.alloc_at(iova, size) {
                        Ok(()) => { prop_assert!(!clash); model.insert(iova, (size, size)); }
                        Err(e) => { prop_assert!(clash); prop_assert_eq!(e.errno, EEXIST); }
                    }
                }
                Op::Free(i) => {
                    if model.is_empty() { continue; }
                    let (&iova, &(size, _)) = model.iter().nth(i % model.len()).unwrap();
                    a.free(iova, size).unwrap();
                    model.remove(&iova);
                }
                Op::BadFree(page) => {
                    let iova = page * PAGE;
                    if !model.contains_key(&iova) {
                        prop_assert!(a.free(iova, PAGE).is_err());
                    }
                }
            }
            let mut prev_end = 0;
            for (&iova, &(_, fp)) in &model {
                prop_assert!(iova >= prev_end, "overlap at {:#x}", iova);
                prev_end = iova + fp;
            }
            let used: u64 = model.values().map(|&(_, fp)| fp).sum();
            prop_assert_eq!(a.free_bytes(u64::MAX), total - used);
            prop_assert_eq!(a.live_allocations(), model.len() as u64);
        }
    }
}

#[test]
fn a_cached_iova_is_found_under_another_masks_entries() {
    let mut a = IovaAllocator::new(39).unwrap();
    // The high ones first: a slab with room is reused whatever its window.
    let highs: Vec<u64> = (0..200).map(|_| a.alloc(PAGE, u64::MAX).unwrap()).collect();
    assert!(highs.iter().all(|&h| h >= 1 << 32));
    let low = a.alloc(PAGE, MASK32).unwrap();
    assert!(low < 1 << 32);
    a.free(low, PAGE).unwrap();
    for &h in &highs {
        a.free(h, PAGE).unwrap();
    }
    assert_eq!(a.magazine_cached(), 201);
    // `low` now sits below 200 newer entries a 32-bit device cannot use;
    // it must come back from the magazines, not from a slab scan that
    // would see its slot as free while it is still cached.
    assert_eq!(a.alloc(PAGE, MASK32).unwrap(), low);
    assert_eq!(a.magazine_cached(), 200, "it came out of a magazine");
    let mut seen = std::collections::BTreeSet::from([low]);
    for _ in 0..400 {
        let iova = a.alloc(PAGE, u64::MAX).unwrap();
        assert!(seen.insert(iova), "{iova:#x} handed out twice");
    }
    assert_eq!(a.magazine_cached(), 0);
}

#[test]
fn magazines_are_bounded_and_overflow_goes_back_to_the_slabs() {
    // A 33-bit device: its preferred window is [4 GiB, 8 GiB).
    let mask33 = (1 << 33) - 1;
    let mut a = IovaAllocator::new(39).unwrap();
    let total = a.free_bytes(u64::MAX);
    let iovas: Vec<u64> = (0..20_000)
        .map(|_| a.alloc(2 * PAGE, mask33).unwrap())
        .collect();
    assert!(iovas.iter().all(|&x| (1 << 32..1 << 33).contains(&x)));
    let slabs = a.slab_count();
    for &x in &iovas {
        a.free(x, 2 * PAGE).unwrap();
    }
    // Loaded and previous magazines plus a depot of 32, 127 entries each.
    assert!(a.magazine_cached() <= 34 * 127, "{}", a.magazine_cached());
    assert!(a.magazine_cached() >= 33 * 127, "{}", a.magazine_cached());
    assert!(a.slab_count() < slabs, "evicted magazines emptied slabs");
    assert_eq!(a.live_allocations(), 0);
    assert_eq!(a.free_bytes(u64::MAX), total);
    // Every cached IOVA is refused a second free.
    for &x in &iovas {
        assert_eq!(a.free(x, 2 * PAGE).unwrap_err().errno, ENOENT);
    }
    assert_eq!(a.free_bytes(u64::MAX), total);
    // The whole window again: the slabs emptied by eviction went back to the
    // tree, and the magazines still holding IOVAs are drained for it.
    assert_eq!(a.alloc(1 << 32, mask33).unwrap(), 1 << 32);
    assert_eq!(a.magazine_cached(), 0);
}

#[test]
fn a_fixed_claim_away_from_the_slabs_leaves_the_magazines_alone() {
    let mut a = IovaAllocator::new(39).unwrap();
    let x = a.alloc(PAGE, u64::MAX).unwrap();
    a.free(x, PAGE).unwrap();
    // Not slot-shaped (3 pages): the slow path, far from any slab.
    a.alloc_at(1 << 36, 3 * PAGE).unwrap();
    assert_eq!(a.magazine_cached(), 1);
    assert_eq!(a.alloc(PAGE, u64::MAX).unwrap(), x);
}

#[test]
fn a_fixed_claim_over_a_cached_slot_succeeds_and_the_slot_is_not_reused() {
    let mut a = IovaAllocator::new(39).unwrap();
    let x = a.alloc(PAGE, u64::MAX).unwrap();
    let y = a.alloc(PAGE, u64::MAX).unwrap();
    a.free(x, PAGE).unwrap();
    assert_eq!(a.magazine_cached(), 1);
    a.alloc_at(x, PAGE).unwrap();
    assert_eq!(a.alloc_at(x, PAGE).unwrap_err().errno, EEXIST);
    assert_eq!(a.live_allocations(), 2);
    for _ in 0..1000 {
        let z = a.alloc(PAGE, u64::MAX).unwrap();
        assert!(z != x && z != y, "{z:#x} overlaps a live allocation");
    }
    assert_eq!(a.magazine_cached(), 0, "the stale entry was forgotten");
}

#[test]
fn small_fixed_claims_take_slab_slots() {
    let mut a = IovaAllocator::new(39).unwrap();
    let total = a.free_bytes(u64::MAX);
    let base = 1 << 36;
    // The first claim makes a slab of the free region; the rest are slots.
    for k in 0..32 {
        a.alloc_at(base + k * 16 * PAGE, PAGE).unwrap();
    }
    assert_eq!(a.slab_count(), 1);
    assert_eq!(a.live_allocations(), 32);
    assert_eq!(a.free_bytes(u64::MAX), total - 32 * PAGE);
    assert_eq!(a.alloc_at(base, PAGE).unwrap_err().errno, EEXIST);
    // Another size at a slot of this slab goes the slow way, and still
    // sees the slots in use.
    assert_eq!(a.alloc_at(base, 2 * PAGE).unwrap_err().errno, EEXIST);
    a.alloc_at(base + 2 * PAGE, 2 * PAGE).unwrap();
    a.free(base + 2 * PAGE, 2 * PAGE).unwrap();
    // A size that is no slot (3 pages) is an ordinary fixed range.
    a.alloc_at(base + 4 * PAGE, 3 * PAGE).unwrap();
    a.free(base + 4 * PAGE, 3 * PAGE).unwrap();
    // Frees are validated as for any small allocation.
    assert_eq!(a.free(base + PAGE, PAGE).unwrap_err().errno, ENOENT);
    for k in 0..32 {
        a.free(base + k * 16 * PAGE, PAGE).unwrap();
    }
    assert_eq!(a.free(base, PAGE).unwrap_err().errno, ENOENT);
    assert_eq!(a.live_allocations(), 0);
    assert_eq!(a.free_bytes(u64::MAX), total);
    // The MSI window stays reserved for slot-sized claims too.
    assert_eq!(a.alloc_at(MSI_WINDOW.0, PAGE).unwrap_err().errno, EINVAL);
}

#[test]
fn a_slab_whose_last_entry_went_stale_goes_back_to_the_tree() {
    // A 22-bit device: windows up to [2 MiB, 4 MiB), which is one slab.
    let mask22 = (1 << 22) - 1;
    let mut a = IovaAllocator::new(39).unwrap();
    let largest = a.largest_free_range(u64::MAX);
    let x = a.alloc(PAGE, mask22).unwrap();
    a.free(x, PAGE).unwrap();
    a.alloc_at(x, PAGE).unwrap(); // the magazine entry goes stale
    a.free(x, PAGE).unwrap(); // and a live one joins it
    assert_eq!(a.magazine_cached(), 2);
    // Needs the whole window: both entries come out, the slab empties and
    // its region is whole again.
    assert_eq!(a.alloc(1 << 21, mask22).unwrap(), 1 << 21);
    assert_eq!(a.slab_count(), 0);
    assert_eq!(a.magazine_cached(), 0);
    a.free(1 << 21, 1 << 21).unwrap();
    assert_eq!(
        a.largest_free_range(u64::MAX),
        largest,
        "exactly the region came back"
    );
}

#[test]
fn freed_iovas_come_back_last_in_first_out() {
    let mut a = IovaAllocator::new(39).unwrap();
    let x: Vec<u64> = (0..3).map(|_| a.alloc(PAGE, u64::MAX).unwrap()).collect();
    a.free(x[0], PAGE).unwrap();
    a.free(x[1], PAGE).unwrap();
    assert_eq!(a.alloc(PAGE, u64::MAX).unwrap(), x[1]);
    assert_eq!(a.alloc(PAGE, u64::MAX).unwrap(), x[0]);
    assert_eq!(a.magazine_cached(), 0);
    assert_eq!(a.live_allocations(), 3);
}

#[test]
fn after_overflow_everything_is_handed_out_once() {
    let mut a = IovaAllocator::new(39).unwrap();
    let first: Vec<u64> = (0..5_000)
        .map(|_| a.alloc(PAGE, u64::MAX).unwrap())
        .collect();
    for &x in &first {
        a.free(x, PAGE).unwrap();
    }
    // All 5,000 pages again (the oldest entries last), then other sizes,
    // whose slabs are carved from regions emptied meanwhile.
    let mut seen = BTreeMap::new();
    for i in 0..10_000u64 {
        let size = if i < 5_000 {
            PAGE
        } else {
            (2 << (i % 2)) * PAGE
        };
        let iova = a.alloc(size, u64::MAX).unwrap();
        if let Some((&prev, &len)) = seen.range(..iova + size).next_back() {
            assert!(prev + len <= iova, "{iova:#x} overlaps {prev:#x}");
        }
        seen.insert(iova, size);
    }
    for (&iova, &size) in &seen {
        a.free(iova, size).unwrap();
    }
    assert_eq!(a.live_allocations(), 0);
}

#[test]
fn slot_claims_stay_inside_the_slab_limits() {
    // The last page of the space: its region is the top 2 MiB.
    let mut a = IovaAllocator::new(39).unwrap();
    a.alloc_at((1 << 39) - PAGE, PAGE).unwrap();
    assert_eq!(a.slab_count(), 1);
    // The first 2 MiB region (window 21) takes slabs too.
    a.alloc_at(1 << 21, PAGE).unwrap();
    assert_eq!(a.slab_count(), 2);
    // Not aligned to its size: the slow path, no slab made.
    a.alloc_at((1 << 37) + PAGE, 2 * PAGE).unwrap();
    assert_eq!(a.slab_count(), 2);
    // Above the slab limit (2^53): the slow path too.
    let mut wide = IovaAllocator::new(60).unwrap();
    wide.alloc_at(1 << 55, PAGE).unwrap();
    assert_eq!(wide.slab_count(), 0);
    wide.free(1 << 55, PAGE).unwrap();
}

#[test]
fn a_slab_word_filled_by_claims_is_not_scanned() {
    // A class-3 slab (32 KiB slots) has 64 slots: one bitmap word.
    let mut a = IovaAllocator::new(39).unwrap();
    let base = 1 << 36;
    let slot = 8 * PAGE;
    for k in 0..64 {
        a.alloc_at(base + k * slot, slot).unwrap();
    }
    let next = a.alloc(slot, u64::MAX).unwrap();
    assert!(
        !(base..base + (1 << 21)).contains(&next),
        "{next:#x} is in the full slab"
    );
}

#[test]
fn a_slab_made_by_a_claim_has_room_for_the_scan() {
    let mut a = IovaAllocator::new(39).unwrap();
    let base = 1 << 36;
    a.alloc_at(base, 8 * PAGE).unwrap();
    let next = a.alloc(8 * PAGE, u64::MAX).unwrap();
    assert!((base..base + (1 << 21)).contains(&next), "{next:#x}");
}

#[test]
fn a_slot_taken_back_or_claimed_is_never_scanned_out_again() {
    let mut a = IovaAllocator::new(39).unwrap();
    let x: Vec<u64> = (0..3).map(|_| a.alloc(PAGE, u64::MAX).unwrap()).collect();
    a.free(x[1], PAGE).unwrap();
    assert_eq!(
        a.alloc(PAGE, u64::MAX).unwrap(),
        x[1],
        "back from the magazine"
    );
    // A slot-shaped claim in the same slab, at a slot other than the first.
    let claimed = x[0] + 5 * PAGE;
    a.alloc_at(claimed, PAGE).unwrap();
    assert_eq!(a.alloc_at(claimed, PAGE).unwrap_err().errno, EEXIST);
    // The scan fills the rest of the slab: neither comes out twice.
    for _ in 0..600 {
        let z = a.alloc(PAGE, u64::MAX).unwrap();
        assert!(
            z != x[1] && z != claimed && !x.contains(&z),
            "{z:#x} handed out twice"
        );
    }
}
