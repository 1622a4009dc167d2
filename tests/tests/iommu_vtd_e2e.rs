//! iommud on an Intel VT-d machine, end to end: the unmodified daemon finds
//! its unit in the DMAR the simulated firmware publishes (no arguments),
//! brings it up, and translates a simulated PCI function's DMA through
//! VT-d root, context and second-level tables. Clients are threads of the
//! same kernel, as in `iommu_e2e.rs` for AMD-Vi.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use driver_sys::pci::PciAddress;
use dsmil_tests as _;
use iommu::client::IommuDomain;
use iommu::config::UnassignedDevices;
use iommu::protocol::MapFlags;
use iommu::unit::FaultCause;
use iommu::vtd::gcmd;
use iommu::{Bdf, Invalidation, Vendor};
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::pci_function::{COMMAND_BUS_MASTER, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::hw::vtd::{SimVtd, SimVtdConfig};
use redox_host::{Cred, Kernel, MachineConfig};
use syscall::error::ENOENT;

const ADDR: PciAddress = PciAddress::new(0, 5, 0);
const PAGE: u64 = 4096;

struct Machine {
    k: Arc<Kernel>,
    unit: Arc<SimVtd>,
    dev: Arc<SimPciFunction>,
    _iommud: RunningDaemon,
}

fn bdf() -> Bdf {
    Bdf::new(0, 5, 0).expect("bdf")
}

fn machine_on(machine: MachineConfig, unit: SimVtdConfig, config: iommu::Config) -> Machine {
    let k = Kernel::boot_with(machine);
    let unit = SimVtd::with_config(&k, unit);
    let dev = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(ADDR, 4)).expect("function");
    dev.config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .expect("bus master");
    unit.attach(&dev);
    let iommud = boot::iommud_vtd(&k, config, &unit);
    Machine {
        k,
        unit,
        dev,
        _iommud: iommud,
    }
}

fn machine_with(unit: SimVtdConfig) -> Machine {
    machine_on(MachineConfig::default(), unit, iommu::Config::default())
}

fn machine() -> Machine {
    machine_with(SimVtdConfig::default())
}

fn read_text(path: &str) -> String {
    let fd = libredox::Fd::open(path, libredox::flag::O_RDONLY, 0).expect("open");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = fd.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(out).expect("utf8")
}

#[test]
fn iommud_finds_the_unit_in_the_dmar_and_enables_it() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    // Translation and queued invalidation on, root table latched.
    let gsts = m.unit.gsts();
    assert_eq!(
        gsts & (gcmd::TE | gcmd::QIE | gcmd::SRTP),
        gcmd::TE | gcmd::QIE | gcmd::SRTP
    );
    // The SRTP was followed by global context and IOTLB invalidations and a wait.
    assert!(m.unit.stats.descriptors.load(Ordering::Relaxed) >= 3);
    let stats = read_text("/scheme/iommu/stats");
    assert!(stats.contains("vt-d"), "{stats}");
}

#[test]
fn device_dma_in_and_out_of_a_mapping_with_canaries() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(7).expect("domain");
    let ram = m.k.phys().alloc(4 * PAGE as usize, false).expect("ram");
    assert!(m.k.phys().fill(ram, 4 * PAGE as usize, 0xCC));
    let buf = ram + PAGE;
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    assert_ne!(iova, buf);
    // Not assigned yet: a pass-through context entry, bus address = physical.
    m.dev.dma_write(buf + 8, b"pt").expect("passthrough DMA");
    let mut got = [0u8; 2];
    assert!(m.k.phys().read(buf + 8, &mut got));
    assert_eq!(&got, b"pt");
    assert!(m.k.phys().fill(buf, PAGE as usize, 0xCC));
    d.assign(bdf()).expect("assign");
    m.dev.dma_write(iova + 16, b"hello vt-d").expect("dma in");
    let mut back = [0u8; 10];
    m.dev.dma_read(iova + 16, &mut back).expect("dma out");
    assert_eq!(&back, b"hello vt-d");
    let junk = [0x55u8; 64];
    assert!(m.dev.dma_write(iova + PAGE, &junk).is_err(), "past the end");
    assert!(
        m.dev.dma_write(iova - PAGE, &junk).is_err(),
        "before the start"
    );
    assert!(
        m.dev.dma_write(iova + PAGE - 8, &junk[..16]).is_err(),
        "straddling"
    );
    let mut all = vec![0u8; 4 * PAGE as usize];
    assert!(m.k.phys().read(ram, &mut all));
    let (head, rest) = all.split_at(PAGE as usize);
    let (page, tail) = rest.split_at(PAGE as usize);
    assert!(
        head.iter().chain(tail).all(|&b| b == 0xCC),
        "canaries intact"
    );
    assert_eq!(&page[16..26], b"hello vt-d");
    assert!(page[..16].iter().chain(&page[26..]).all(|&b| b == 0xCC));
}

#[test]
fn read_only_mappings_refuse_device_writes_and_the_fault_is_drained() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(3).expect("domain");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    assert!(m.k.phys().fill(buf, PAGE as usize, 0x11));
    let iova = d.map(buf, PAGE, MapFlags::READ, None).expect("map");
    let mut got = [0u8; 4];
    m.dev.dma_read(iova, &mut got).expect("reads allowed");
    assert_eq!(got, [0x11; 4]);
    assert_eq!(
        m.dev.dma_write(iova, b"no"),
        Err(DmaFault::Translation(iova))
    );
    m.k.phys().read(buf, &mut got);
    assert_eq!(got, [0x11; 4], "nothing written");
    // The unit recorded it in its fault-recording register; DRAIN_EVENTS
    // reads it out: SID 00:05.0, reason 5 (write), the page. The client reads
    // it vendor-neutral: a write the tables do not permit (VT-d says reason 5
    // for a missing page and a missing permission alike).
    let drained = d.drain_events().expect("drain");
    assert_eq!(drained.count, 1);
    let first = drained.first.expect("fault");
    assert_eq!(
        (first.device, first.address, first.write),
        (Bdf::from_requester_id(0x28), iova, true)
    );
    assert_eq!((first.cause, first.domain_id), (FaultCause::Permission, 3));
    assert_eq!(
        (first.vendor, first.unit, first.code),
        (Some(Vendor::Vtd), Some(0), 5)
    );
    let faults = read_text("/scheme/iommu/faults");
    assert!(
        faults.contains(&format!("0 00:05.0 3 {iova:#x} write permission")),
        "{faults}"
    );
    // Drained: the record was cleared, so the next fault is recorded too.
    assert_eq!(
        m.dev.dma_write(iova + 8, b"no"),
        Err(DmaFault::Translation(iova + 8))
    );
    assert_eq!(d.drain_events().expect("drain").count, 1);
    // A read where nothing is mapped: reason 6, a read, the same cause.
    let mut byte = [0u8; 1];
    assert!(m.dev.dma_read(iova + 4 * PAGE, &mut byte).is_err());
    let drained = d.drain_events().expect("drain");
    let first = drained.first.expect("fault");
    assert_eq!(
        (first.cause, first.write, first.code, first.domain_id),
        (FaultCause::Permission, false, 6, 3)
    );
    assert_eq!(first.address, iova + 4 * PAGE);
}

#[test]
fn strict_unmap_never_leaves_a_stale_iotlb_entry() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(5).expect("domain");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    for round in 0..50u8 {
        let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
        m.dev.dma_write(iova, &[round]).expect("dma while mapped");
        assert!(
            m.unit.iotlb_entries() > 0,
            "the unit cached the translation"
        );
        d.unmap(iova).expect("unmap");
        assert_eq!(
            m.dev.dma_write(iova, &[0xEE]),
            Err(DmaFault::Translation(iova)),
            "round {round}: reachable after UNMAP returned"
        );
    }
    let mut b = [0u8];
    m.k.phys().read(buf, &mut b);
    assert_eq!(b, [49]);
}

#[test]
fn lazy_unmap_leaves_a_window_until_the_flush() {
    // A flush timeout that never fires during the test: only FLUSH flushes.
    let m = machine_on(
        MachineConfig::default(),
        SimVtdConfig::default(),
        iommu::Config {
            flush_timeout_ms: 3_600_000,
            ..iommu::Config::default()
        },
    );
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(6).expect("domain");
    d.set_invalidation(Invalidation::Lazy).expect("lazy");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    m.dev.dma_write(iova, b"a").expect("dma");
    d.unmap(iova).expect("unmap");
    assert_eq!(
        d.translate(iova).unwrap_err().errno,
        ENOENT,
        "tables cleared"
    );
    m.dev
        .dma_write(iova, b"b")
        .expect("stale IOTLB entry served");
    let other = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    assert_ne!(other, iova, "the IOVA waits for the flush");
    assert_eq!(d.flush().expect("flush"), 1);
    assert_eq!(
        m.dev.dma_write(iova, b"c"),
        Err(DmaFault::Translation(iova))
    );
}

/// With caching mode the unit caches misses: a page DMA'd before it was
/// mapped would stay unreachable unless MAP invalidates the new range, and
/// a context entry installed after a refused DMA needs the DID-0 context
/// invalidation.
#[test]
fn caching_mode_needs_invalidation_after_making_entries_present() {
    let m = machine_on(
        MachineConfig::default(),
        SimVtdConfig {
            caching_mode: true,
            aw_bits: 48,
            ..SimVtdConfig::default()
        },
        iommu::Config {
            unassigned: UnassignedDevices::Blocked,
            ..iommu::Config::default()
        },
    );
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(4).expect("domain");
    // Refused while unassigned (blocked): the unit caches the missing
    // context entry.
    let probe = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    assert_eq!(
        m.dev.dma_write(probe, b"x"),
        Err(DmaFault::Translation(probe))
    );
    assert!(m.unit.context_entries() > 0, "the miss is cached");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    // Touch the IOVA iommud will hand out next before it is mapped.
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    d.unmap(iova).expect("unmap");
    assert!(m.dev.dma_write(iova, b"y").is_err(), "miss cached under CM");
    let again = d
        .map(buf, PAGE, MapFlags::READ_WRITE, Some(iova))
        .expect("map");
    assert_eq!(again, iova);
    m.dev
        .dma_write(iova, b"z")
        .expect("MAP invalidated the cached miss");
    let mut got = [0u8];
    m.k.phys().read(buf, &mut got);
    assert_eq!(&got, b"z");
}

#[test]
fn rmrr_ranges_are_identity_mapped_in_the_device_domain() {
    let reserved = 0xF000_0000u64;
    let m = machine_on(
        MachineConfig {
            reserved_memory: Some((reserved, 2 * PAGE as usize)),
            ..MachineConfig::default()
        },
        SimVtdConfig::default(),
        iommu::Config::default(),
    );
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(9).expect("domain");
    d.assign(bdf()).expect("assign");
    assert_eq!(
        d.translate(reserved + 0x123).expect("identity"),
        reserved + 0x123
    );
    m.dev
        .dma_write(reserved + PAGE, b"fw")
        .expect("DMA to the RMRR");
    let mut got = [0u8; 2];
    assert!(m.k.phys().read(reserved + PAGE, &mut got));
    assert_eq!(&got, b"fw");
}
