use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use proptest::prelude::*;

use super::*;

const PER_CPU: u32 = 0xEF - 0x20 + 1;

#[test]
fn fresh_matrix_hands_out_lowest_device_vector() {
    let m = VectorMatrix::new(1).unwrap();
    assert_eq!(m.allocatable_per_cpu(), PER_CPU);
    assert_eq!(m.free_count(0), Ok(PER_CPU));
    assert_eq!(m.alloc_on(0), Ok(Vector(0x20)));
    assert_eq!(m.alloc_on(0), Ok(Vector(0x21)));
    assert_eq!(m.free_count(0), Ok(PER_CPU - 2));
    m.free(0, Vector(0x20)).unwrap();
    assert_eq!(m.alloc_on(0), Ok(Vector(0x20)), "lowest free again");
}

#[test]
fn system_and_reserved_vectors_are_never_handed_out() {
    let reserved: Vec<Vector> = (0x20..=0x2F).map(Vector).chain([Vector(0x30)]).collect();
    let m = VectorMatrix::with_reserved(1, &reserved).unwrap();
    assert_eq!(m.allocatable_per_cpu(), PER_CPU - 17);
    assert_eq!(m.alloc_on(0), Ok(Vector(0x31)));
    for v in [0x00, 0x1F, 0x2A, 0x30, 0xF0, 0xFF] {
        assert_eq!(
            m.reserve(0, Vector(v)),
            Err(VectorError::NotAllocatable(Vector(v)))
        );
        assert_eq!(
            m.free(0, Vector(v)),
            Err(VectorError::NotAllocatable(Vector(v)))
        );
    }
    let mut got = HashSet::new();
    while let Ok(v) = m.alloc_on(0) {
        assert!(v.is_device_vector() && v.0 > 0x30);
        got.insert(v);
    }
    assert_eq!(got.len() as u32, PER_CPU - 17 - 1);
    assert_eq!(m.alloc_on(0), Err(VectorError::NoSpace));
    assert_eq!(VectorError::NoSpace.errno(), ENOSPC);
}

#[test]
fn reserve_specific_vector_and_eexist() {
    let m = VectorMatrix::new(2).unwrap();
    m.reserve(1, Vector(0x50)).unwrap();
    let err = m.reserve(1, Vector(0x50)).unwrap_err();
    assert_eq!(
        err,
        VectorError::InUse {
            cpu: 1,
            vector: Vector(0x50)
        }
    );
    assert_eq!(err.errno(), EEXIST);
    assert_eq!(m.is_allocated(1, Vector(0x50)), Ok(true));
    assert_eq!(m.is_allocated(0, Vector(0x50)), Ok(false));
    assert_eq!(m.free_count(1), Ok(PER_CPU - 1));
    m.free(1, Vector(0x50)).unwrap();
    m.reserve(1, Vector(0x50)).unwrap();
}

#[test]
fn double_free_is_an_error_and_changes_nothing() {
    let m = VectorMatrix::new(1).unwrap();
    let v = m.alloc_on(0).unwrap();
    m.free(0, v).unwrap();
    assert_eq!(
        m.free(0, v),
        Err(VectorError::DoubleFree { cpu: 0, vector: v })
    );
    assert_eq!(
        m.free(0, Vector(0x77)),
        Err(VectorError::DoubleFree {
            cpu: 0,
            vector: Vector(0x77)
        })
    );
    assert_eq!(m.free_count(0), Ok(PER_CPU));
}

#[test]
fn bad_arguments() {
    assert_eq!(
        VectorMatrix::new(0).unwrap_err(),
        VectorError::BadCpuCount(0)
    );
    assert_eq!(
        VectorMatrix::new(MAX_CPUS + 1).unwrap_err(),
        VectorError::BadCpuCount(MAX_CPUS + 1)
    );
    let m = VectorMatrix::new(2).unwrap();
    assert_eq!(m.alloc_on(2), Err(VectorError::NoSuchCpu(2)));
    assert_eq!(m.free(7, Vector(0x40)), Err(VectorError::NoSuchCpu(7)));
    assert_eq!(m.alloc(&CpuMask::empty()), Err(VectorError::EmptyMask));
    assert_eq!(m.alloc(&CpuMask::single(5)), Err(VectorError::EmptyMask));
    for n in [0, 3, 64] {
        assert_eq!(
            m.alloc_block(&CpuMask::first(2), n),
            Err(VectorError::BadBlockSize(n))
        );
    }
}

#[test]
fn spreading_picks_the_cpu_with_most_free_vectors() {
    let m = VectorMatrix::new(4).unwrap();
    for _ in 0..10 {
        m.alloc_on(0).unwrap();
    }
    for _ in 0..5 {
        m.alloc_on(2).unwrap();
    }
    // Mask {0, 2}: CPU 2 has more free.
    let mask: CpuMask = [0, 2].into_iter().collect();
    let a = m.alloc(&mask).unwrap();
    assert_eq!(
        (a.cpu, a.vector, a.affinity_broken),
        (2, Vector(0x25), false)
    );
    // All CPUs: 1 and 3 tie with the most; the lower wins, then the other.
    let all = CpuMask::first(4);
    assert_eq!(m.alloc(&all).unwrap().cpu, 1);
    assert_eq!(m.alloc(&all).unwrap().cpu, 3);
    assert_eq!(m.alloc(&all).unwrap().cpu, 1);
}

#[test]
fn exhausted_cpu_spills_to_another_with_affinity_broken() {
    let m = VectorMatrix::new(3).unwrap();
    m.alloc_on(2).unwrap(); // CPU 1 now has more free than CPU 2
    let only0 = CpuMask::single(0);
    let mut on0 = HashSet::new();
    for _ in 0..PER_CPU {
        let a = m.alloc(&only0).unwrap();
        assert_eq!(a.cpu, 0);
        assert!(!a.affinity_broken);
        assert!(on0.insert(a.vector));
    }
    let spilled = m.alloc(&only0).unwrap();
    assert!(spilled.affinity_broken, "mask exhausted must be reported");
    assert_eq!(
        spilled.cpu, 1,
        "fallback also prefers the CPU with most free vectors"
    );
    assert_eq!(spilled.vector, Vector(0x20));
    // Freeing one vector on CPU 0 restores affinity.
    m.free(0, Vector(0x42)).unwrap();
    let back = m.alloc(&only0).unwrap();
    assert_eq!(
        (back.cpu, back.vector, back.affinity_broken),
        (0, Vector(0x42), false)
    );
}

#[test]
fn everything_exhausted_is_no_space() {
    let m = VectorMatrix::new(2).unwrap();
    for _ in 0..2 * PER_CPU {
        m.alloc(&CpuMask::single(1)).unwrap();
    }
    assert_eq!(m.alloc(&CpuMask::single(1)), Err(VectorError::NoSpace));
    assert_eq!(
        m.alloc_block(&CpuMask::first(2), 1),
        Err(VectorError::NoSpace)
    );
}

#[test]
fn aligned_blocks() {
    let m = VectorMatrix::new(1).unwrap();
    m.reserve(0, Vector(0x20)).unwrap();
    // 0x21..0x23 free but 0x20 taken: a block of 4 must start at 0x24.
    assert_eq!(m.alloc_block_on(0, 4), Ok(Vector(0x24)));
    assert_eq!(m.alloc_block_on(0, 1), Ok(Vector(0x21)));
    assert_eq!(m.alloc_block_on(0, 2), Ok(Vector(0x22)));
    // 0x28..0x3F are free but a 16-block needs alignment 16: 0x30.
    assert_eq!(m.alloc_block_on(0, 16), Ok(Vector(0x30)));
    assert_eq!(m.alloc_block_on(0, 8), Ok(Vector(0x28)));
    // Blocks of 32 do not straddle 64-bit words: 0x40, 0x60, ...
    assert_eq!(m.alloc_block_on(0, 32), Ok(Vector(0x40)));
    for v in 0x40..0x60 {
        assert_eq!(m.is_allocated(0, Vector(v)), Ok(true));
    }
    assert_eq!(m.free_count(0), Ok(PER_CPU - 1 - 4 - 1 - 2 - 16 - 8 - 32));
}

#[test]
fn blocks_of_32_run_out_and_spill() {
    let m = VectorMatrix::new(2).unwrap();
    let firsts: Vec<u8> = (0..6).map(|_| m.alloc_block_on(0, 32).unwrap().0).collect();
    // 0xE0..0xFF contains system vectors, so there are six such blocks.
    assert_eq!(firsts, vec![0x20, 0x40, 0x60, 0x80, 0xA0, 0xC0]);
    assert_eq!(m.alloc_block_on(0, 32), Err(VectorError::NoSpace));
    let b = m.alloc_block(&CpuMask::single(0), 32).unwrap();
    assert_eq!(
        (b.cpu, b.first, b.count, b.affinity_broken),
        (1, Vector(0x20), 32, true)
    );
    // 0xE0..=0xEF is still there for a 16-block.
    assert_eq!(m.alloc_block_on(0, 16), Ok(Vector(0xE0)));
}

#[test]
fn free_block_is_all_or_nothing() {
    let m = VectorMatrix::new(1).unwrap();
    let first = m.alloc_block_on(0, 8).unwrap();
    assert_eq!(first, Vector(0x20));
    m.free(0, Vector(0x23)).unwrap();
    assert_eq!(
        m.free_block(0, first, 8),
        Err(VectorError::DoubleFree {
            cpu: 0,
            vector: Vector(0x23)
        })
    );
    assert_eq!(m.is_allocated(0, Vector(0x20)), Ok(true), "nothing freed");
    m.reserve(0, Vector(0x23)).unwrap();
    m.free_block(0, first, 8).unwrap();
    assert_eq!(m.free_count(0), Ok(PER_CPU));
    assert_eq!(
        m.free_block(0, Vector(0x24), 8),
        Err(VectorError::NotAllocatable(Vector(0x24)))
    );
    assert_eq!(
        m.free_block(0, Vector(0xE8), 16),
        Err(VectorError::NotAllocatable(Vector(0xE8)))
    );
}

#[derive(Debug, Clone)]
enum Op {
    /// Allocate with this affinity (bit i = CPU i).
    Alloc(u8),
    /// Allocate an aligned block of 1 << n on this affinity.
    Block(u8, u8),
    /// Reserve this vector on CPU (index % cpus).
    Reserve(u8, u8),
    /// Free the held allocation at this index (mod held count).
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u8..16).prop_map(Op::Alloc),
        1 => ((1u8..16), 0u8..4).prop_map(|(m, n)| Op::Block(m, n)),
        1 => (any::<u8>(), 0x20u8..0xF0).prop_map(|(c, v)| Op::Reserve(c, v)),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

const CPUS: usize = 4;

/// Claims `(cpu, vector)` in the shadow ownership table; a vector handed out
/// twice at the same time would find its slot already set.
fn claim(owned: &[AtomicBool], cpu: u32, v: u8) {
    let slot = &owned[cpu as usize * 256 + usize::from(v)];
    assert!(
        !slot.swap(true, Ordering::SeqCst),
        "vector {v:#x} on CPU {cpu} handed out twice"
    );
}

fn release(owned: &[AtomicBool], cpu: u32, v: u8) {
    owned[cpu as usize * 256 + usize::from(v)].store(false, Ordering::SeqCst);
}

fn run_thread(m: &VectorMatrix, owned: &[AtomicBool], ops: &[Op]) -> Vec<(u32, u8, u32)> {
    let mut held: Vec<(u32, u8, u32)> = Vec::new();
    for op in ops {
        match *op {
            Op::Alloc(mask) => {
                let mask: CpuMask = (0..CPUS as u32).filter(|c| mask & (1 << c) != 0).collect();
                if let Ok(a) = m.alloc(&mask) {
                    assert_eq!(a.affinity_broken, !mask.contains(a.cpu));
                    claim(owned, a.cpu, a.vector.0);
                    held.push((a.cpu, a.vector.0, 1));
                }
            }
            Op::Block(mask, n) => {
                let mask: CpuMask = (0..CPUS as u32).filter(|c| mask & (1 << c) != 0).collect();
                if let Ok(b) = m.alloc_block(&mask, 1 << n) {
                    assert_eq!(u32::from(b.first.0) % b.count, 0, "aligned");
                    for i in 0..b.count {
                        claim(owned, b.cpu, b.first.0 + i as u8);
                    }
                    held.push((b.cpu, b.first.0, b.count));
                }
            }
            Op::Reserve(cpu, v) => {
                let cpu = u32::from(cpu) % CPUS as u32;
                if m.reserve(cpu, Vector(v)).is_ok() {
                    claim(owned, cpu, v);
                    held.push((cpu, v, 1));
                }
            }
            Op::Free(i) => {
                if !held.is_empty() {
                    let (cpu, first, count) = held.swap_remove(i % held.len());
                    for k in 0..count {
                        release(owned, cpu, first + k as u8);
                    }
                    if count == 1 {
                        m.free(cpu, Vector(first)).unwrap();
                    } else {
                        m.free_block(cpu, Vector(first), count).unwrap();
                    }
                }
            }
        }
    }
    held
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn concurrent_alloc_free_never_hands_out_a_vector_twice(
        threads in prop::collection::vec(prop::collection::vec(op(), 50..400), 2..5)
    ) {
        let m = VectorMatrix::new(CPUS).unwrap();
        let owned: Vec<AtomicBool> = (0..CPUS * 256).map(|_| AtomicBool::new(false)).collect();
        let results: Vec<Vec<(u32, u8, u32)>> = std::thread::scope(|s| {
            let handles: Vec<_> = threads
                .iter()
                .map(|ops| s.spawn(|| run_thread(&m, &owned, ops)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        // Whatever is still held is held exactly once, and the matrix agrees.
        let mut seen = HashSet::new();
        let mut per_cpu = [0u32; CPUS];
        for (cpu, first, count) in results.into_iter().flatten() {
            for k in 0..count {
                let v = first + k as u8;
                prop_assert!(seen.insert((cpu, v)), "({cpu}, {v:#x}) held twice");
                prop_assert_eq!(m.is_allocated(cpu, Vector(v)), Ok(true));
            }
            per_cpu[cpu as usize] += count;
        }
        for (cpu, held) in per_cpu.iter().enumerate() {
            prop_assert_eq!(m.free_count(cpu as u32).unwrap(), PER_CPU - held);
            let counter = m.cpus[cpu].free_count.load(Ordering::SeqCst);
            prop_assert_eq!(counter, (PER_CPU - held) as i32, "counter settles to the bitmap");
        }
    }
}
