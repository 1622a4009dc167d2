//! The holes of issue 11, tried against the unmodified iommud loop through
//! the mocked kernel, by an unprivileged process and by a second root
//! driver: each is refused, and afterwards nothing was mapped or assigned.
//! And ASSIGN by pcid channel: the channel passed for device A assigns A,
//! never B.

use std::sync::Arc;

use driver_sys::pci::PciAddress;
use dsmil_tests as _;
use iommu::client::{IommuControl, IommuDomain};
use iommu::protocol::{MapFlags, Request, Response};
use iommu::{Bdf, Config};
use libredox::{Fd, flag};
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::pci_function::{COMMAND_BUS_MASTER, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::{Cred, Kernel};
use syscall::error::{EACCES, EBUSY, ENOENT, ENOLCK};

const A: PciAddress = PciAddress::new(0, 5, 0);
const B: PciAddress = PciAddress::new(0, 6, 0);
const PAGE: u64 = 4096;
const SQUATTED: u16 = 0x0D5A;
const UNPRIVILEGED: Cred = Cred {
    uid: 1000,
    gid: 1000,
};

struct Machine {
    k: Arc<Kernel>,
    a: Arc<SimPciFunction>,
    b: Arc<SimPciFunction>,
    _unit: Arc<SimAmdVi>,
    _iommud: RunningDaemon,
}

fn function(k: &Arc<Kernel>, unit: &Arc<SimAmdVi>, addr: PciAddress) -> Arc<SimPciFunction> {
    let f = SimPciFunction::new(k, SimFunctionSpec::dsmil_like(addr, 1)).expect("function");
    f.config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .expect("bus master");
    k.pci().add_function(f.clone()).expect("plug in");
    unit.attach(&f);
    f
}

fn machine() -> Machine {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let a = function(&k, &unit, A);
    let b = function(&k, &unit, B);
    let iommud = boot::iommud_from_firmware(&k, Config::default(), std::slice::from_ref(&unit));
    Machine {
        k,
        a,
        b,
        _unit: unit,
        _iommud: iommud,
    }
}

fn channel(addr: PciAddress) -> syscall::Result<Fd> {
    let path = format!("/scheme/pci/{}/channel", addr.scheme_name());
    Fd::open(&path, flag::O_RDWR, 0).map_err(|e| syscall::Error::new(e.errno()))
}

fn bdf(addr: PciAddress) -> Bdf {
    Bdf::from_requester_id(addr.requester_id())
}

/// The domain device `addr` is assigned to (0: none), asked by anyone.
fn holder(addr: PciAddress) -> u32 {
    let fd = Fd::open(
        &format!("/scheme/iommu/device/{}", bdf(addr)),
        flag::O_RDWR,
        0,
    )
    .expect("device handle");
    fd.write(&Request::Query.encode()).expect("query");
    let mut r = [0u8; 36];
    fd.read(&mut r).expect("response");
    Response::decode(&r).expect("decode").arg0
}

/// The driver of A: its own domain, A assigned by its channel, one mapping.
struct Driver {
    domain: IommuDomain,
    _channel: Fd,
    buffer: u64,
    iova: u64,
}

fn driver_of_a(m: &Machine) -> Driver {
    let ch = channel(A).expect("the driver's channel");
    let domain = IommuDomain::open_new().expect("domain");
    domain.assign_channel(ch.raw()).expect("assign by channel");
    let buffer = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let iova = domain
        .map(buffer, PAGE, MapFlags::READ_WRITE, None)
        .expect("map");
    Driver {
        domain,
        _channel: ch,
        buffer,
        iova,
    }
}

#[test]
fn a_channel_passed_for_device_a_assigns_a_never_b() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver-a", Cred::ROOT);
    let d = driver_of_a(&m);
    assert_eq!(holder(A), u32::from(d.domain.id()));
    assert_eq!(holder(B), 0, "B is untouched");
    m.a.dma_write(d.iova, b"A via channel")
        .expect("A is translated");
    let mut got = [0u8; 13];
    assert!(m.k.phys().read(d.buffer, &mut got));
    assert_eq!(&got, b"A via channel");
    // B is still in passthrough: its bus address is physical, not the IOVA.
    m.b.dma_write(d.buffer, b"B").expect("B passthrough");
    // A second domain of the same driver, handed B's channel, gets B only.
    let ch_b = channel(B).expect("B's channel");
    let other = IommuDomain::open_new().expect("second domain");
    other.assign_channel(ch_b.raw()).expect("assign B");
    assert_eq!(holder(B), u32::from(other.id()));
    assert_eq!(holder(A), u32::from(d.domain.id()), "A did not move");
    // Something that is not a channel proves nothing.
    let memory = Fd::open("/scheme/memory/zeroed", flag::O_RDWR, 0).expect("memory");
    let third = IommuDomain::open_new().expect("third domain");
    assert!(third.assign_channel(memory.raw()).is_err());
    assert_eq!(
        (holder(A), holder(B)),
        (u32::from(d.domain.id()), u32::from(other.id()))
    );
}

/// Every hole, tried by `who` while the driver of A is running.
fn holes_are_closed_for(who: &str, cred: Cred) {
    let m = machine();
    let (_dp, _dg) = m.k.enter("driver-a", Cred::ROOT);
    let d = driver_of_a(&m);
    let dom = d.domain.id();
    let (mappings_before, iova, buffer) =
        (d.domain.query().expect("query").mappings, d.iova, d.buffer);
    std::thread::scope(|s| {
        s.spawn(|| {
            let (_p, _g) = m.k.enter(who, cred);
            // Squatting: a fixed id is only a request, and the driver's is taken.
            let ctl = IommuControl::open().expect("control");
            let squat = ctl.create_domain(Some(SQUATTED)).expect("create");
            let own = IommuDomain::open(squat).expect("its own domain");
            // Someone else's device: by BDF (held, and root-only), by channel (pcid).
            assert!(matches!(
                own.assign(bdf(A)).unwrap_err().errno,
                EBUSY | EACCES
            ));
            let ch = channel(A).err().map_or(0, |e| e.errno);
            assert!(ch == ENOLCK || ch == EACCES, "{who}: channel of A: {ch}");
            if cred.uid != 0 {
                // No channel can come from it, so its fds are not even looked at.
                let stats = Fd::open("/scheme/iommu/stats", flag::O_RDONLY, 0).expect("stats");
                assert_eq!(own.assign_channel(stats.raw()).unwrap_err().errno, EACCES);
            }
            // Physical page 0 and 2 MiB of arbitrary memory, in its own domain...
            for (phys, size) in [(0, PAGE), (0x10_0000, 2 << 20)] {
                let r = own.map(phys, size, MapFlags::READ_WRITE, None);
                if cred.uid != 0 {
                    assert_eq!(r.unwrap_err().errno, EACCES, "{who}: raw phys {phys:#x}");
                }
                // Root may map raw memory into its own domain (the v1 rule), but
                // A is not in that domain, so A's DMA never reaches it.
            }
            // ...and in the driver's domain: no handle to send it on.
            assert_eq!(IommuDomain::open(dom).unwrap_err().errno, EACCES, "{who}");
            // The driver's translation.
            let ro = Fd::open(&format!("/scheme/iommu/domain/{dom}"), flag::O_RDONLY, 0);
            match ro {
                Ok(fd) => {
                    assert_eq!(cred.uid, 0, "only root gets a read-only handle");
                    fd.write(&Request::Translate { iova }.encode())
                        .expect("write");
                    let mut r = [0u8; 36];
                    fd.read(&mut r).expect("read");
                    let r = Response::decode(&r).expect("decode");
                    assert_eq!({ r.status }, -EACCES, "{who}: TRANSLATE");
                    assert_eq!({ r.arg2 }, 0, "no physical address leaked");
                }
                Err(e) => assert_eq!(e.errno(), EACCES, "{who}"),
            }
            // Its own domain does not lead to the driver's buffer either.
            assert_ne!(own.translate(iova).ok(), Some(buffer), "{who}");
            if cred.uid != 0 {
                assert_eq!(own.translate(iova).unwrap_err().errno, ENOENT);
            }
        });
    });
    // Nothing was mapped or assigned: the driver's domain and device are as before.
    assert_eq!(holder(A), u32::from(dom));
    assert_eq!(holder(B), 0);
    assert_eq!(d.domain.query().expect("query").mappings, mappings_before);
    assert_eq!(d.domain.translate(iova).expect("translate"), d.buffer);
    // A's DMA reaches only what its driver mapped.
    assert_eq!(m.a.dma_write(0, b"x"), Err(DmaFault::Translation(0)));
    m.a.dma_write(iova, b"ok").expect("the driver's buffer");
    // The driver (dsmild's path) got an id from iommud; the squatter got its own.
    assert_ne!(dom, SQUATTED);
}

#[test]
fn holes_are_closed_for_an_unprivileged_process() {
    holes_are_closed_for("unprivileged", UNPRIVILEGED);
}

#[test]
fn holes_are_closed_for_a_second_root_driver() {
    holes_are_closed_for("second root driver", Cred::ROOT);
}

#[test]
fn a_squatted_id_does_not_capture_the_driver() {
    for (who, cred) in [
        ("unprivileged", UNPRIVILEGED),
        ("second root driver", Cred::ROOT),
    ] {
        let m = machine();
        let squatted = std::sync::Barrier::new(2);
        let driven = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                let (_p, _g) = m.k.enter(who, cred);
                let mine = IommuDomain::open(SQUATTED).expect("opening a free id creates it");
                squatted.wait();
                driven.wait();
                // Its squat got it nothing: no device, no mapping of the driver's.
                assert_eq!(mine.query().expect("query").mappings, 0, "{who}");
                assert_ne!(holder(A), u32::from(SQUATTED), "{who}");
            });
            squatted.wait();
            let (_p, _g) = m.k.enter("driver-a", Cred::ROOT);
            let d = driver_of_a(&m);
            assert_ne!(
                d.domain.id(),
                SQUATTED,
                "iommud handed the driver another id"
            );
            assert_eq!(IommuDomain::open(SQUATTED).unwrap_err().errno, EACCES);
            assert_eq!(holder(A), u32::from(d.domain.id()));
            driven.wait();
        });
    }
}

#[test]
fn iommud_reads_the_address_from_pcids_own_config_answer() {
    use driver_sys::pci::pcid_wire::{
        self, PcidClientRequest, PcidClientResponse, SubdriverArguments,
    };
    let k = Kernel::boot();
    let f = SimPciFunction::new(
        &k,
        SimFunctionSpec::dsmil_like(PciAddress::new(0x12, 0x1f, 7), 1),
    )
    .expect("function");
    let answer = PcidClientResponse::Config(SubdriverArguments { func: f.info() });
    let body = pcid_wire::encode(&answer).expect("encode");
    assert_eq!(
        iommu::pcid_channel::decode_config_address(&body),
        Ok(Bdf::new(0x12, 0x1f, 7).expect("bdf"))
    );
    assert_eq!(
        pcid_wire::encode(&PcidClientRequest::RequestConfig).expect("encode"),
        iommu::pcid_channel::REQUEST_CONFIG.to_vec()
    );
}

#[test]
fn an_alloc_buffer_is_what_the_device_reaches() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver-a", Cred::ROOT);
    let ch = channel(A).expect("channel");
    let d = IommuDomain::open_new().expect("domain");
    d.assign_channel(ch.raw()).expect("assign");
    let iova = d.alloc(2 * PAGE, MapFlags::READ_WRITE).expect("alloc");
    m.a.dma_write(iova + PAGE, b"into iommud's buffer")
        .expect("dma");
    let phys = d.translate(iova + PAGE).expect("translate");
    let mut got = [0u8; 20];
    assert!(m.k.phys().read(phys, &mut got));
    assert_eq!(&got, b"into iommud's buffer");
    assert_eq!(d.unmap(iova).expect("unmap"), 2 * PAGE);
    assert_eq!(m.a.dma_write(iova, b"x"), Err(DmaFault::Translation(iova)));
}
