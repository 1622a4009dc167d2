//! Benchmark suites. Each prints `name=value` lines; every figure that matters is a
//! ratio against a peer or baseline measured in the same process, because absolute
//! times on shared 2-core machines mean little.

pub mod driver_sys;
pub mod dsmil;
pub mod fuse;
pub mod iommu;
pub mod iommu_vtd;
pub mod kernel;

use std::time::Instant;

/// Nanoseconds per iteration of `f`, the best of `rounds` rounds of `iters` each
/// (the minimum filters out interference from other processes).
pub fn ns_per_op(rounds: usize, iters: usize, mut f: impl FnMut()) -> f64 {
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        let ns = t.elapsed().as_nanos() as f64 / iters as f64;
        best = best.min(ns);
    }
    best
}

/// Prints one `name=value` line.
pub fn report(name: &str, value: f64) {
    if value.abs() >= 100.0 {
        println!("{name}={value:.0}");
    } else {
        println!("{name}={value:.3}");
    }
}
