//! iommud's bring-up on a machine whose firmware publishes an IVRS: the
//! table the simulated machine serves at `/scheme/acpi/tables/IVRS-…` is
//! parsed by iommud's own parser; iommud started with no register base finds
//! its unit there; devices no domain holds keep their DMA (passthrough) or
//! lose it (the blocking setting); IVMD ranges are identity mapped in every
//! domain their devices join.

use std::sync::Arc;

use driver_sys::pci::PciAddress;
use dsmil_tests as _;
use iommu::client::IommuDomain;
use iommu::config::UnassignedDevices;
use iommu::ivrs::{DeviceSet, Ivrs};
use iommu::protocol::MapFlags;
use iommu::topology::Topology;
use iommu::{Bdf, Config};
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::pci_function::{COMMAND_BUS_MASTER, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::kernel::MachineConfig;
use redox_host::{Cred, Kernel};
use syscall::error::EACCES;

const ADDR: PciAddress = PciAddress::new(0, 5, 0);
const OTHER: PciAddress = PciAddress::new(0, 7, 0);
const PAGE: u64 = 4096;
const RESERVED: u64 = 0xD000_0000;

struct Machine {
    k: Arc<Kernel>,
    unit: Arc<SimAmdVi>,
    dev: Arc<SimPciFunction>,
    other: Arc<SimPciFunction>,
    _iommud: Option<RunningDaemon>,
}

fn function(k: &Arc<Kernel>, unit: &Arc<SimAmdVi>, addr: PciAddress) -> Arc<SimPciFunction> {
    let f = SimPciFunction::new(k, SimFunctionSpec::dsmil_like(addr, 1)).expect("function");
    f.config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .expect("bus master");
    k.pci().add_function(f.clone()).expect("plug in");
    unit.attach(&f);
    f
}

/// A machine with one AMD-Vi unit in front of two functions and a firmware
/// reserved range; iommud started from the firmware (no arguments) if `config`.
fn machine(config: Option<Config>) -> Machine {
    let k = Kernel::boot_with(MachineConfig {
        reserved_memory: Some((RESERVED, 2 * PAGE as usize)),
        ..MachineConfig::default()
    });
    let unit = SimAmdVi::new(&k);
    let dev = function(&k, &unit, ADDR);
    let other = function(&k, &unit, OTHER);
    let iommud = config.map(|c| boot::iommud_from_firmware(&k, c, std::slice::from_ref(&unit)));
    Machine {
        k,
        unit,
        dev,
        other,
        _iommud: iommud,
    }
}

#[test]
fn the_published_ivrs_parses_into_the_machine_it_describes() {
    let m = machine(None);
    let (_p, _g) = m.k.enter("reader", Cred::USER);
    let bytes = iommu::acpi::read_table(b"IVRS").expect("acpid serves an IVRS");
    let ivrs = Ivrs::parse(&bytes).expect("our parser takes the firmware's table");
    assert_eq!(
        ivrs.ivhd_type(),
        Some(0x11),
        "the newest type the firmware lists"
    );
    let units: Vec<_> = ivrs.units().collect();
    assert_eq!(units.len(), 1);
    let placement = m.unit.placement();
    assert_eq!(units[0].base, placement.mmio_base);
    assert_eq!(units[0].device_id, placement.device_id);
    let t = Topology::from_ivrs(&ivrs);
    for addr in [ADDR, OTHER] {
        assert_eq!(
            t.unit_of(addr.requester_id()),
            Some(0),
            "{addr:?} is behind it"
        );
    }
    assert_eq!(t.unit_of(PciAddress::new(3, 0, 0).requester_id()), None);
    assert_eq!(t.unity.len(), 1);
    let r = t.unity[0];
    assert_eq!(
        (r.devices, r.start, r.length),
        (DeviceSet::All, RESERVED, 2 * PAGE)
    );
}

#[test]
fn iommud_without_arguments_finds_its_unit_and_unassigned_devices_keep_working() {
    let m = machine(Some(Config::default()));
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let ram = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    // Nobody assigned anything: the upstream driver's physical address works.
    m.other.dma_write(ram, b"ahcid").expect("passthrough DMA");
    let mut got = [0u8; 5];
    assert!(m.k.phys().read(ram, &mut got));
    assert_eq!(&got, b"ahcid");
    // A domain confines its device; the other one keeps its passthrough.
    let d = IommuDomain::open_new().expect("domain");
    d.assign(Bdf::from_requester_id(ADDR.requester_id()))
        .expect("assign");
    let iova = d.map(ram, PAGE, MapFlags::READ_WRITE, None).expect("map");
    assert_ne!(iova, ram);
    m.dev.dma_write(iova, b"in dom").expect("translated DMA");
    assert_eq!(m.dev.dma_write(ram, b"x"), Err(DmaFault::Translation(ram)));
    m.other
        .dma_write(ram + 8, b"still")
        .expect("the other is untouched");
    // Unassigned again: back to passthrough, not blocked.
    d.unassign(Bdf::from_requester_id(ADDR.requester_id()))
        .expect("unassign");
    m.dev.dma_write(ram + 16, b"pt").expect("passthrough again");
}

#[test]
fn the_blocking_setting_blocks_unassigned_devices() {
    let m = machine(Some(Config {
        unassigned: UnassignedDevices::Blocked,
        ..Config::default()
    }));
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let ram = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    m.k.phys().write(ram, &[0u8; 8]);
    assert!(matches!(
        m.other.dma_write(ram, b"nope"),
        Err(DmaFault::Translation(_))
    ));
    let mut got = [0xFFu8; 4];
    assert!(m.k.phys().read(ram, &mut got));
    assert_eq!(got, [0; 4], "nothing was written");
}

#[test]
fn ivmd_ranges_are_identity_mapped_in_every_domain_their_devices_join() {
    let m = machine(Some(Config::default()));
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open_new().expect("domain");
    assert!(
        d.translate(RESERVED).is_err(),
        "nothing before a device joins"
    );
    d.assign(Bdf::from_requester_id(ADDR.requester_id()))
        .expect("assign");
    assert_eq!(
        d.translate(RESERVED + 0x10).expect("identity"),
        RESERVED + 0x10
    );
    assert_eq!(
        d.translate(RESERVED + PAGE).expect("identity"),
        RESERVED + PAGE
    );
    // The device reaches the firmware's range at its own address.
    m.dev.dma_write(RESERVED + 0x20, b"fw").expect("unity DMA");
    let mut got = [0u8; 2];
    assert!(m.k.phys().read(RESERVED + 0x20, &mut got));
    assert_eq!(&got, b"fw");
    // The owner cannot take it away while the device is there.
    assert_eq!(d.unmap(RESERVED).unwrap_err().errno, EACCES);
    // A second domain the other device joins gets its own identity map.
    let d2 = IommuDomain::open_new().expect("domain 2");
    d2.assign(Bdf::from_requester_id(OTHER.requester_id()))
        .expect("assign");
    assert_eq!(d2.translate(RESERVED).expect("identity"), RESERVED);
    m.other
        .dma_read(RESERVED + 0x20, &mut got)
        .expect("unity DMA");
    assert_eq!(&got, b"fw");
}
