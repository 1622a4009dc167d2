//! `perf -- fuse`: what the FUSE bridge of `redox-host mount` costs a Linux client.
//!
//! `fuse_read_over_inprocess_read` = one 256-byte chunk read through a FUSE mount
//! (std file I/O → Linux FUSE → bridge → mocked kernel → dsmild) / the same read
//! through `libredox` in-process (→ mocked kernel → dsmild). The reads are of a
//! `scan` session (22 chunks per open; open and close amortised over them); while
//! dsmild has no `scan`, of the `version` file (one read per open).

use std::fs::File;
use std::io::Read;
use std::path::Path;

use libredox::call;
use libredox::flag::O_RDONLY;
use redox_host::fuse::{mount, unavailable_reason};
use redox_host::{Cred, Kernel, boot};

use super::{ns_per_op, report};

const CHUNK: usize = 256;

/// Runs the suite.
pub fn run() {
    if let Some(why) = unavailable_reason() {
        println!("fuse_read_over_inprocess_read=skipped ({why})");
        return;
    }
    let kernel = Kernel::boot();
    let sim = redox_host::hw::smm::SimulatedDsmil::new(47);
    let _dsmild = boot::dsmild_simulated(&kernel, dsmil::Config::default(), &sim);
    let dir = std::env::temp_dir().join(format!("dsmil-perf-fuse-{}", std::process::id()));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        println!(
            "fuse_read_over_inprocess_read=skipped (cannot create {}: {e})",
            dir.display()
        );
        return;
    }
    let mounted = match mount(kernel.clone(), &dir) {
        Ok(m) => m,
        Err(e) => {
            println!("fuse_read_over_inprocess_read=skipped (mount failed: {e})");
            let _ = std::fs::remove_dir(&dir);
            return;
        }
    };
    let (_p, _g) = kernel.enter("perf-fuse", Cred::USER);
    let file = match call::open("/scheme/dsmil/scan", O_RDONLY, 0) {
        Ok(fd) => {
            let _ = call::close(fd);
            "scan"
        }
        Err(_) => "version",
    };
    let reads = reads_per_open(file);
    let inproc = || {
        let mut buf = [0u8; CHUNK];
        let fd = call::open(format!("/scheme/dsmil/{file}"), O_RDONLY, 0).expect("open");
        for _ in 0..reads {
            std::hint::black_box(call::read(fd, &mut buf).expect("read"));
        }
        let _ = call::close(fd);
    };
    let path = dir.join("dsmil").join(file);
    let via_fuse = || fuse_reads(&path, reads);
    let mut best_in = f64::INFINITY;
    let mut best_fuse = f64::INFINITY;
    // Interleaved short rounds, best of each: drifting load on a shared machine
    // hits both alike, and the minimum filters out the rounds it spoiled.
    for _ in 0..15 {
        best_in = best_in.min(ns_per_op(1, 50, inproc) / reads as f64);
        best_fuse = best_fuse.min(ns_per_op(1, 50, via_fuse) / reads as f64);
    }
    println!("# 256-byte reads of /scheme/dsmil/{file}, {reads} per open");
    report("inprocess_chunk_read_ns", best_in);
    report("fuse_chunk_read_ns", best_fuse);
    report("fuse_read_over_inprocess_read", best_fuse / best_in);
    drop(_g);
    if let Err(e) = mounted.unmount() {
        eprintln!("perf fuse: unmount: {e}");
    }
    let _ = std::fs::remove_dir(&dir);
}

fn reads_per_open(file: &str) -> usize {
    if file == "scan" {
        dsmil::wire::SCAN_CHUNK_COUNT
    } else {
        1
    }
}

fn fuse_reads(path: &Path, reads: usize) {
    let mut buf = [0u8; CHUNK];
    let mut f = File::open(path).expect("open through the mount");
    for _ in 0..reads {
        std::hint::black_box(f.read(&mut buf).expect("read through the mount"));
    }
}
