//! Spreading the vectors of a multi-queue device across CPUs.
//!
//! A device with N queues wants queue i's interrupt on its own CPU so the
//! completion work runs where the queue is served. Queues are dealt to the
//! CPUs of the affinity mask round-robin, starting at a rotation offset so
//! several devices do not all put their queue 0 on the same CPU.

use super::cpu_mask::CpuMask;
use super::matrix::{VectorAllocation, VectorError, VectorMatrix};

/// The CPU for each of `queues` queues: the CPUs of `mask` in ascending
/// order, dealt round-robin beginning with the `rotate`-th one. Empty if the
/// mask is.
pub fn spread_cpus(queues: usize, mask: &CpuMask, rotate: usize) -> Vec<u32> {
    let cpus: Vec<u32> = mask.iter().collect();
    if cpus.is_empty() {
        return Vec::new();
    }
    (0..queues)
        .filter_map(|q| cpus.get((q + rotate) % cpus.len()).copied())
        .collect()
}

/// Allocates one vector per queue, queue i preferring the CPU
/// `spread_cpus(queues, mask, rotate)[i]`; a full CPU falls back to the
/// least-loaded other CPU with `affinity_broken` set. All-or-nothing: on
/// error every vector allocated so far is freed again.
pub fn alloc_spread(
    matrix: &VectorMatrix,
    queues: usize,
    mask: &CpuMask,
    rotate: usize,
) -> Result<Vec<VectorAllocation>, VectorError> {
    let wanted = mask.intersection(&CpuMask::first(matrix.cpu_count()));
    let cpus = spread_cpus(queues, &wanted, rotate);
    if cpus.len() != queues {
        return Err(VectorError::EmptyMask);
    }
    let mut out = Vec::with_capacity(queues);
    for cpu in cpus {
        match matrix.alloc(&CpuMask::single(cpu)) {
            Ok(a) => out.push(a),
            Err(e) => {
                for a in &out {
                    // Cannot fail: we own these vectors.
                    let _ = matrix.free(a.cpu, a.vector);
                }
                return Err(e);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vector::number::Vector;

    #[test]
    fn round_robin_with_rotation() {
        let mask: CpuMask = [0, 2, 3].into_iter().collect();
        assert_eq!(spread_cpus(7, &mask, 0), vec![0, 2, 3, 0, 2, 3, 0]);
        assert_eq!(spread_cpus(4, &mask, 1), vec![2, 3, 0, 2]);
        assert_eq!(spread_cpus(3, &CpuMask::empty(), 0), Vec::<u32>::new());
    }

    #[test]
    fn one_vector_per_queue_on_its_cpu() {
        let m = VectorMatrix::new(4).unwrap();
        let got = alloc_spread(&m, 8, &CpuMask::first(4), 0).unwrap();
        let cpus: Vec<u32> = got.iter().map(|a| a.cpu).collect();
        assert_eq!(cpus, vec![0, 1, 2, 3, 0, 1, 2, 3]);
        assert!(got.iter().all(|a| !a.affinity_broken));
        assert_eq!(got[4].vector, Vector(0x21));
    }

    #[test]
    fn full_cpu_is_reported_and_failure_rolls_back() {
        let m = VectorMatrix::new(2).unwrap();
        while m.alloc_on(1).is_ok() {}
        let got = alloc_spread(&m, 2, &CpuMask::first(2), 0).unwrap();
        assert_eq!((got[1].cpu, got[1].affinity_broken), (0, true));
        while m.alloc_on(0).is_ok() {}
        m.free(0, Vector(0x90)).unwrap();
        let before = m.free_count(0).unwrap();
        assert_eq!(
            alloc_spread(&m, 2, &CpuMask::first(2), 0),
            Err(VectorError::NoSpace)
        );
        assert_eq!(m.free_count(0).unwrap(), before, "rolled back");
        assert_eq!(
            alloc_spread(&m, 1, &CpuMask::single(9), 0),
            Err(VectorError::EmptyMask)
        );
    }
}
