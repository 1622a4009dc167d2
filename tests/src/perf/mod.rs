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

/// The value of a benchmarked operation. A failed operation would make its
/// benchmark look fast, so `perf` stops with a non-zero exit instead.
pub fn must<T, E: std::fmt::Debug>(what: &str, outcome: Result<T, E>) -> T {
    match outcome {
        Ok(v) => v,
        Err(e) => fail(&format!("{what}: {e:?}")),
    }
}

/// [`must`] for operations that answer with an `Option`.
pub fn must_some<T>(what: &str, outcome: Option<T>) -> T {
    match outcome {
        Some(v) => v,
        None => fail(what),
    }
}

/// Ends the run: a benchmark could not measure what it names.
pub fn fail(what: &str) -> ! {
    eprintln!("perf: {what} failed; no figure is printed for a failed operation");
    std::process::exit(1)
}

/// Prints one `name=value` line.
pub fn report(name: &str, value: f64) {
    if value.abs() >= 100.0 {
        println!("{name}={value:.0}");
    } else {
        println!("{name}={value:.3}");
    }
}
