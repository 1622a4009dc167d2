//! BATCH end to end: the unmodified iommud loop through the mocked kernel, a
//! simulated AMD-Vi unit and device. A driver maps a scatter list with
//! driver-sys `map_sg` and its device's DMA lands in every page; queued
//! unmaps go 64 to a request (and on flush and drop), after which the
//! device faults. An unprivileged process batches parts of its own ALLOC
//! buffer and nothing else; a second root driver cannot touch the first's.

use std::sync::Arc;

use driver_sys::dma::{IommuDomainMapper, IommuMapper, MapFlags};
use driver_sys::pci::PciAddress;
use dsmil_tests as _;
use iommu::Config;
use iommu::client::IommuDomain;
use iommu::scatter::{MAX_RANGES, SgEntry, Source};
use libredox::{Fd, flag};
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::pci_function::{COMMAND_BUS_MASTER, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::{Cred, Kernel};
use syscall::error::{E2BIG, EACCES, EFAULT, ENOENT};

const A: PciAddress = PciAddress::new(0, 5, 0);
const PAGE: u64 = 4096;
const UNPRIVILEGED: Cred = Cred {
    uid: 1000,
    gid: 1000,
};

struct Machine {
    k: Arc<Kernel>,
    a: Arc<SimPciFunction>,
    _unit: Arc<SimAmdVi>,
    _iommud: RunningDaemon,
}

fn machine() -> Machine {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let a = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(A, 1)).expect("function");
    a.config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .expect("bus master");
    k.pci().add_function(a.clone()).expect("plug in");
    unit.attach(&a);
    let iommud = boot::iommud_from_firmware(&k, Config::default(), std::slice::from_ref(&unit));
    Machine {
        k,
        a,
        _unit: unit,
        _iommud: iommud,
    }
}

fn channel(addr: PciAddress) -> Fd {
    let path = format!("/scheme/pci/{}/channel", addr.scheme_name());
    Fd::open(&path, flag::O_RDWR, 0).expect("the driver's channel")
}

/// `n` pages of RAM, as `(phys, size)` ranges.
fn ranges(k: &Kernel, n: u64) -> Vec<(u64, u64)> {
    let phys = k.phys().alloc((n * PAGE) as usize, false).expect("ram");
    (0..n).map(|i| (phys + i * PAGE, PAGE)).collect()
}

#[test]
fn map_sg_reaches_the_device_and_queued_unmaps_go_in_batches() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver-a", Cred::ROOT);
    let ch = channel(A);
    let mapper = IommuDomainMapper::open_new().expect("domain");
    mapper.assign_channel(ch.raw()).expect("assign by channel");
    // 100 ranges: two BATCH requests (64 + 36), not 100 MAPs.
    let list = ranges(&m.k, 100);
    let before = mapper.round_trips();
    let iovas = mapper.map_sg(&list, MapFlags::READ_WRITE).expect("map_sg");
    assert_eq!(mapper.round_trips() - before, 2);
    assert_eq!(iovas.len(), 100);
    for (i, (&iova, &(phys, _))) in iovas.iter().zip(&list).enumerate() {
        let tag = (i as u32).to_le_bytes();
        m.a.dma_write(iova, &tag)
            .expect("the device reaches its page");
        let mut got = [0u8; 4];
        assert!(m.k.phys().read(phys, &mut got));
        assert_eq!(got, tag, "page {i}");
    }
    // Queued unmaps: nothing is sent until 64 wait; the 64th sends them.
    let before = mapper.round_trips();
    for &iova in &iovas[..MAX_RANGES - 1] {
        mapper.queue_unmap(iova).expect("queue");
    }
    assert_eq!(mapper.round_trips(), before);
    assert_eq!(mapper.queued_unmaps(), MAX_RANGES - 1);
    m.a.dma_write(iovas[0], b"still mapped")
        .expect("queued, not yet sent");
    mapper.queue_unmap(iovas[MAX_RANGES - 1]).expect("queue");
    assert_eq!(mapper.round_trips(), before + 1, "one BATCH for 64 unmaps");
    assert_eq!(mapper.queued_unmaps(), 0);
    assert_eq!(
        m.a.dma_write(iovas[0], b"x"),
        Err(DmaFault::Translation(iovas[0]))
    );
    // An explicit flush sends what is queued...
    mapper.queue_unmap(iovas[64]).expect("queue");
    assert_eq!(mapper.flush_unmaps(), Ok(1));
    assert!(m.a.dma_write(iovas[64], b"x").is_err());
    // ...and so does dropping the mapper (its domain stays: A is in it).
    for &iova in &iovas[65..] {
        mapper.queue_unmap(iova).expect("queue");
    }
    m.a.dma_write(iovas[99], b"queued").expect("still mapped");
    drop(mapper);
    assert_eq!(
        m.a.dma_write(iovas[99], b"x"),
        Err(DmaFault::Translation(iovas[99]))
    );
}

#[test]
fn a_map_sg_that_fails_leaves_nothing_mapped() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver-a", Cred::ROOT);
    let domain = IommuDomain::open_new().expect("domain");
    let list = ranges(&m.k, 4);
    let mut entries: Vec<SgEntry> = list
        .iter()
        .map(|&(addr, size)| SgEntry {
            addr,
            size,
            iova: 0,
        })
        .collect();
    // The last range asks for the IOVA the first one gets.
    entries[0].iova = 0x10_0000_0000;
    entries[3].iova = 0x10_0000_0000;
    let err = domain
        .map_sg(&entries, MapFlags::READ_WRITE, Source::Physical)
        .unwrap_err();
    assert_eq!(err.errno, syscall::error::EEXIST);
    assert_eq!(domain.query().expect("query").mappings, 0);
    let too_many = vec![entries[1]; MAX_RANGES + 1];
    let err = domain
        .map_sg(&too_many, MapFlags::READ_WRITE, Source::Physical)
        .unwrap_err();
    assert_eq!(err.errno, E2BIG);
    // Unmapping a range never mapped unmaps none of the others.
    let done = domain
        .map_sg(&entries[..3], MapFlags::READ_WRITE, Source::Physical)
        .expect("map");
    let iovas = [done[0].iova, done[1].iova, 0x20_0000_0000];
    assert_eq!(domain.unmap_sg(&iovas).unwrap_err().errno, ENOENT);
    assert_eq!(domain.query().expect("query").mappings, 3);
}

#[test]
fn unprivileged_batches_only_its_buffers_and_a_second_driver_nothing() {
    let m = machine();
    let (_dp, _dg) = m.k.enter("driver-a", Cred::ROOT);
    let ch = channel(A);
    let driver = IommuDomain::open_new().expect("driver's domain");
    driver.assign_channel(ch.raw()).expect("assign");
    let list = ranges(&m.k, 2);
    // Far from where other domains' allocators start, so "the driver's IOVA"
    // cannot be a buffer IOVA of the other process's own domain by chance
    // (IOVA spaces are per domain).
    let entries: Vec<SgEntry> = list
        .iter()
        .zip(0u64..)
        .map(|(&(addr, size), i)| SgEntry {
            addr,
            size,
            iova: 0x30_0000_0000 + i * PAGE,
        })
        .collect();
    let mapped = driver
        .map_sg(&entries, MapFlags::READ_WRITE, Source::Physical)
        .expect("root maps raw memory");
    let theirs: Vec<u64> = mapped.iter().map(|e| e.iova).collect();
    let dom = driver.id();
    for (who, cred) in [
        ("unprivileged", UNPRIVILEGED),
        ("second root driver", Cred::ROOT),
    ] {
        std::thread::scope(|s| {
            s.spawn(|| {
                let (_p, _g) = m.k.enter(who, cred);
                let own = IommuDomain::open_new().expect("its own domain");
                let raw = own.map_sg(&entries, MapFlags::READ_WRITE, Source::Physical);
                match raw {
                    Err(e) => assert_eq!((cred.uid != 0, e.errno), (true, EACCES), "{who}"),
                    // Root may map raw memory (the v1 rule), into its own
                    // domain only: taking it away there leaves the driver's.
                    Ok(done) => {
                        assert_eq!(cred.uid, 0, "{who}: raw phys is root's");
                        let iovas: Vec<u64> = done.iter().map(|e| e.iova).collect();
                        assert_eq!(own.unmap_sg(&iovas), Ok(2 * PAGE));
                    }
                }
                // Its own ALLOC buffer, in pieces, at IOVAs of its choosing.
                let base = own.alloc(2 * PAGE, MapFlags::READ_WRITE).expect("alloc");
                let piece = [SgEntry {
                    addr: base + PAGE,
                    size: PAGE,
                    iova: 0,
                }];
                let alias = own
                    .map_sg(&piece, MapFlags::READ, Source::Buffer)
                    .expect("a piece of its buffer");
                assert_eq!(
                    own.translate(alias[0].iova).expect("translate"),
                    own.translate(base + PAGE).expect("translate"),
                    "{who}: the alias shows the buffer's page"
                );
                // The driver's IOVAs are not buffers of its domain.
                let theirs_as_source = [SgEntry {
                    addr: theirs[0],
                    size: PAGE,
                    iova: 0,
                }];
                let err = own
                    .map_sg(&theirs_as_source, MapFlags::READ_WRITE, Source::Buffer)
                    .unwrap_err();
                assert!(matches!(err.errno, EFAULT), "{who}: {}", err.errno);
                assert_eq!(own.unmap_sg(&theirs).unwrap_err().errno, ENOENT, "{who}");
                // And the driver's domain has no handle for it.
                assert_eq!(IommuDomain::open(dom).unwrap_err().errno, EACCES, "{who}");
            });
        });
    }
    // The driver's mappings and its device's DMA are as before.
    assert_eq!(driver.query().expect("query").mappings, 2);
    for (&iova, &(phys, _)) in theirs.iter().zip(&list) {
        m.a.dma_write(iova, b"mine").expect("the driver's page");
        let mut got = [0u8; 4];
        assert!(m.k.phys().read(phys, &mut got));
        assert_eq!(&got, b"mine");
    }
    assert_eq!(driver.unmap_sg(&theirs), Ok(2 * PAGE));
}
