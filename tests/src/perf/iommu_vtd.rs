//! `perf -- iommu`, the Intel VT-d lines (run after the AMD-Vi ones, which
//! stay as they were):
//!
//! * `map_unmap_4k_ns_vtd`: the `map_unmap_4k_ns` round (MAP + UNMAP of
//!   4 KiB in a domain holding 1k mappings, tables freed as iommud frees
//!   them) on VT-d second-level tables of 3 levels (QEMU's default 39-bit
//!   AW; the AMD-Vi domain's IOVAs need 3 levels too, so both walk the
//!   same depth), interleaved with the same round on
//!   AMD-Vi v1 tables (`map_unmap_4k_ns_amd_same_run`) so the two compare
//!   under the same load; `vtd_over_amd_map_unmap` is their ratio.
//! * `lazy_over_strict_throughput_vtd`: MAP + UNMAP pairs through iommud's
//!   state on the simulated VT-d unit, strict (every UNMAP waits for a PSI +
//!   invalidation wait) against lazy (a DSI + wait once per 256 unmaps). The
//!   simulated VT-d unit runs its queue inside the IQT write as QEMU does, so
//!   the AMD-Vi line to compare with is `..._inline_unit`.

use std::hint::black_box;

use iommu::page_table::PAGE_4K;
use iommu::vtd::format::format_for;
use iommu::{Domain, DomainConfig, MapFlags, TableArena};

use super::iommu::{Bench, interleaved, map_unmap_round, strict_and_lazy};
use super::report;

fn filled(
    format: Option<&'static dyn iommu::format::PageTableFormat>,
    mem: &mut TableArena,
) -> Domain {
    let mut d = match format {
        Some(f) => Domain::with_format(1, DomainConfig::default(), f, mem),
        None => Domain::new(1, DomainConfig::default(), mem),
    }
    .unwrap_or_else(|e| panic!("domain: {e}"));
    for i in 0..1_000u64 {
        d.map(mem, i * PAGE_4K, PAGE_4K, MapFlags::READ_WRITE, None)
            .unwrap_or_else(|e| panic!("map: {e}"));
    }
    d
}

fn tables_suite() {
    let mut mem_amd = TableArena::new(0x1_0000_0000, 1 << 20);
    let mut amd = filled(None, &mut mem_amd);
    let mut mem_vtd = TableArena::new(0x1_0000_0000, 1 << 20);
    let mut vtd = filled(Some(format_for(3, true, true)), &mut mem_vtd);
    let mut benches: Vec<Bench<'_>> = vec![
        ("amd", Box::new(|| map_unmap_round(&mut amd, &mut mem_amd))),
        ("vtd", Box::new(|| map_unmap_round(&mut vtd, &mut mem_vtd))),
    ];
    interleaved(&mut benches, 1);
    let best = interleaved(&mut benches, 5);
    if let [amd_ns, vtd_ns] = best[..] {
        report("map_unmap_4k_ns_vtd", vtd_ns);
        report("map_unmap_4k_ns_amd_same_run", amd_ns);
        report("vtd_over_amd_map_unmap", vtd_ns / amd_ns);
    }
}

fn invalidation_suite() {
    use redox_host::hw::vtd::SimVtd;
    use redox_host::{Cred, Kernel};

    let k = Kernel::boot();
    let unit = SimVtd::new(&k);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let iommu = iommu::vtd::discovery::build_vtd(iommu::Config::default(), vec![unit.mmio()])
        .unwrap_or_else(|e| panic!("iommud state: {e}"));
    let phys = k
        .phys()
        .alloc(PAGE_4K as usize, false)
        .unwrap_or_else(|e| panic!("ram: {e}"));
    let (strict, lazy) = strict_and_lazy(iommu, phys);
    report("map_unmap_strict_ns_vtd", strict);
    report("map_unmap_lazy_ns_vtd", lazy);
    report("lazy_over_strict_throughput_vtd", strict / lazy);
    black_box(&unit);
}

/// Runs the VT-d lines.
pub fn run() {
    tables_suite();
    invalidation_suite();
}
