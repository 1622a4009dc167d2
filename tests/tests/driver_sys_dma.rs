//! driver-sys DMA against the mocked kernel and a simulated PCI function:
//! DmaBuffer, IommuDmaAllocator (passthrough, a fake in-process IOMMU, the iommu
//! wire client), DMA masks, the mapped-buffer pool, streaming DMA with bounces.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use driver_sys::dma::{
    DmaBuffer, DmaDirection, IommuDmaAllocator, IommuDomainMapper, IommuMapper, MapFlags,
    Passthrough, domain_mapper,
};
use driver_sys::memory::PhysMemory;
use driver_sys::pci::{PciAddress, PciFunction};
use driver_sys::quirks::QuirkFlags;
use dsmil_tests as _;
use iommu::protocol::{Opcode, RawRequest, Response};
use redox_host::hw::pci_function::{DmaAccess, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::kernel::kscheme::{Caller, KernelScheme};
use redox_host::mock::phys::RamOrder;
use redox_host::{Cred, Kernel, MachineConfig};
use syscall::error::{EBADF, EINVAL, ENOENT, ENOMEM, Error, Result};

const ADDR: PciAddress = PciAddress::new(0, 5, 0);
const FOUR_GIB: u64 = 1 << 32;

/// Boots a machine with a function (`dma_bits` wide), enters as the driver and
/// enables bus mastering through pcid.
fn machine(dma_bits: u8) -> (Arc<Kernel>, Arc<SimPciFunction>) {
    machine_with(dma_bits, MachineConfig::default())
}

/// [`machine`] with RAM laid out as `config` says.
fn machine_with(dma_bits: u8, config: MachineConfig) -> (Arc<Kernel>, Arc<SimPciFunction>) {
    let k = Kernel::boot_with(config);
    let mut spec = SimFunctionSpec::dsmil_like(ADDR, 4);
    spec.dma_address_bits = dma_bits;
    let f = SimPciFunction::new(&k, spec).expect("function");
    k.pci().add_function(f.clone()).expect("plug in");
    (k, f)
}

fn enable_bus_master() {
    PciFunction::connect(&ADDR)
        .and_then(|mut f| f.enable_device())
        .expect("enable device");
}

/// An in-process IOMMU: hands out IOVAs from `next`, counts MAP/UNMAP, and
/// translates for the simulated function.
#[derive(Default)]
struct FakeIommu {
    next: AtomicU64,
    maps: AtomicU64,
    unmaps: AtomicU64,
    table: Mutex<BTreeMap<u64, (u64, u64)>>,
}

impl FakeIommu {
    fn starting_at(iova: u64) -> Arc<Self> {
        Arc::new(Self {
            next: AtomicU64::new(iova),
            ..Self::default()
        })
    }

    fn translate(&self, iova: u64) -> Option<u64> {
        let t = self.table.lock().ok()?;
        let (&start, &(phys, size)) = t.range(..=iova).next_back()?;
        (iova < start + size).then(|| phys + (iova - start))
    }
}

struct SharedFake(Arc<FakeIommu>);

impl IommuMapper for SharedFake {
    fn map(&self, phys: u64, size: u64, _f: MapFlags, _hint: Option<u64>) -> Result<u64> {
        self.0.maps.fetch_add(1, Ordering::Relaxed);
        let iova = self.0.next.fetch_add(size, Ordering::Relaxed);
        self.0
            .table
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .insert(iova, (phys, size));
        Ok(iova)
    }
    fn unmap(&self, iova: u64) -> Result<u64> {
        self.0.unmaps.fetch_add(1, Ordering::Relaxed);
        let mut t = self.0.table.lock().map_err(|_| Error::new(EINVAL))?;
        t.remove(&iova).map(|(_, s)| s).ok_or(Error::new(ENOENT))
    }
    fn translates(&self) -> bool {
        true
    }
}

fn plug_iommu(f: &SimPciFunction, iommu: &Arc<FakeIommu>) {
    let i = iommu.clone();
    f.set_translation(Some(Arc::new(move |_rid, iova, _len, _a: DmaAccess| {
        i.translate(iova)
    })));
}

#[test]
fn dma_buffer_is_zeroed_typed_and_where_the_device_writes() {
    let (k, f) = machine(64);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let mut buf = DmaBuffer::<[u32; 16]>::zeroed().expect("buffer");
    assert!(buf.iter().all(|&w| w == 0));
    buf[3] = 7;
    assert_eq!(k.phys().read_u64(buf.phys() + 8), Some(7 << 32));
    f.dma_write(buf.phys() + 4, &0xDEAD_BEEFu32.to_le_bytes())
        .expect("dma");
    assert_eq!(buf[1], 0xDEAD_BEEF);
}

#[test]
fn passthrough_without_an_iommu_scheme_bus_address_is_phys() {
    let (k, f) = machine(64);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let mapper = domain_mapper(1, false).expect("falls back");
    assert!(!mapper.translates());
    let dma = IommuDmaAllocator::new(mapper, 64).expect("allocator");
    let mut a = dma.allocate(4096).expect("alloc");
    assert_eq!(a.iova(), a.phys());
    f.dma_write(a.iova() + 100, b"from the device")
        .expect("dma");
    assert_eq!(&a.as_slice()[100..115], b"from the device");
    a.as_mut_slice()[..5].copy_from_slice(b"to it");
    let mut got = [0u8; 5];
    f.dma_read(a.iova(), &mut got).expect("dma read");
    assert_eq!(&got, b"to it");
    // Without bus mastering the function cannot DMA at all.
    let _ = f.config_write_u32(0x04, 0);
    assert_eq!(
        f.dma_write(a.iova(), b"x"),
        Err(DmaFault::BusMasterDisabled)
    );
}

#[test]
fn dma_via_the_device_lands_at_the_iova_the_allocator_returned() {
    let (k, f) = machine(64);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let iommu = FakeIommu::starting_at(0x10_0000_0000);
    plug_iommu(&f, &iommu);
    let mem = PhysMemory::open().expect("memory");
    let dma = IommuDmaAllocator::with_memory(mem, Box::new(SharedFake(iommu.clone())), 64, 0)
        .expect("allocator");
    let a = dma.allocate(3 * 4096).expect("alloc");
    assert!(a.iova() >= 0x10_0000_0000 && a.iova() != a.phys());
    f.dma_write(a.iova() + 4090, b"crosses a page")
        .expect("dma");
    assert_eq!(&a.as_slice()[4090..4104], b"crosses a page");
    let iova = a.iova();
    drop(a);
    assert_eq!(iommu.unmaps.load(Ordering::Relaxed), 1, "no pool: unmapped");
    assert_eq!(f.dma_write(iova, b"late"), Err(DmaFault::Translation(iova)));
}

/// A machine whose kernel hands out RAM above 4 GiB first, with `high` bytes of it.
fn high_first(high: usize) -> MachineConfig {
    MachineConfig {
        high_memory: high,
        ram_order: RamOrder::HighFirst,
        ..MachineConfig::default()
    }
}

#[test]
fn a_32_bit_device_without_iommu_lands_below_4_gib_after_bounded_retries() {
    // 8 pages above 4 GiB come first: the allocator must see them, keep them while it
    // tries again, and end up below 4 GiB.
    let (k, f) = machine_with(32, high_first(8 * 4096));
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let before = k.phys().free_ram();
    let dma = IommuDmaAllocator::new(Box::new(Passthrough), 32).expect("allocator");
    let a = dma.allocate(4096).expect("low memory after retries");
    assert!(a.iova() + 4096 <= FOUR_GIB, "{:#x}", a.iova());
    assert_eq!(a.iova(), a.phys());
    f.dma_write(a.iova(), &[1; 8]).expect("reachable");
    assert_eq!(&a.as_slice()[..8], &[1; 8]);
    let after = k.phys().free_ram();
    assert_eq!(after.1, before.1, "the rejected high blocks went back");
    assert_eq!(after.0, before.0 - 4096, "only the low block is held");
}

#[test]
fn a_32_bit_device_without_iommu_fails_cleanly_when_only_high_memory_comes() {
    let (k, _f) = machine_with(32, high_first(512 << 20));
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let before = k.phys().free_ram();
    let dma = IommuDmaAllocator::new(Box::new(Passthrough), 32).expect("allocator");
    assert_eq!(dma.allocate(4096).map(|_| ()), Err(Error::new(ENOMEM)));
    assert_eq!(
        k.phys().free_ram(),
        before,
        "nothing kept after the failure"
    );
    // The same kernel still serves a device that can reach all of memory.
    let wide = IommuDmaAllocator::new(Box::new(Passthrough), 64).expect("allocator");
    assert!(wide.allocate(4096).expect("any memory").iova() >= FOUR_GIB);
}

#[test]
fn a_32_bit_device_never_gets_an_address_at_or_above_4_gib() {
    let (k, f) = machine_with(32, high_first(512 << 20));
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    // The same device with a 64-bit allocator gets high memory it cannot reach:
    // the mask is what keeps it working.
    let wide = IommuDmaAllocator::new(Box::new(Passthrough), 64).expect("allocator");
    let high = wide.allocate(4096).expect("alloc");
    assert!(high.iova() >= FOUR_GIB);
    assert!(matches!(
        f.dma_write(high.iova(), &[1]),
        Err(DmaFault::BeyondAddressWidth(_))
    ));
    // Through an IOMMU that hands out IOVAs above the mask: refused, and unmapped.
    let iommu = FakeIommu::starting_at(FOUR_GIB);
    let mem = PhysMemory::open().expect("memory");
    let bad = IommuDmaAllocator::with_memory(mem, Box::new(SharedFake(iommu.clone())), 32, 8)
        .expect("allocator");
    assert_eq!(bad.allocate(4096).map(|_| ()), Err(Error::new(ENOMEM)));
    assert_eq!(iommu.unmaps.load(Ordering::Relaxed), 1);
    // One that respects it works, and the device reaches the buffer by IOVA.
    let iommu = FakeIommu::starting_at(0x8000_0000);
    plug_iommu(&f, &iommu);
    let mem = PhysMemory::open().expect("memory");
    let ok =
        IommuDmaAllocator::with_memory(mem, Box::new(SharedFake(iommu)), 32, 8).expect("allocator");
    let a = ok.allocate(8192).expect("alloc");
    assert!(
        a.iova() < FOUR_GIB && a.phys() >= FOUR_GIB,
        "IOVA low, memory high"
    );
    f.dma_write(a.iova(), b"ok").expect("dma");
    assert_eq!(&a.as_slice()[..2], b"ok");
}

#[test]
fn pool_steady_state_makes_no_map_calls() {
    let (k, _f) = machine(64);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let iommu = FakeIommu::starting_at(0x1_0000_0000);
    let mem = PhysMemory::open().expect("memory");
    let dma = IommuDmaAllocator::with_memory(mem, Box::new(SharedFake(iommu.clone())), 64, 16)
        .expect("allocator");
    dma.prefill(4096, 4).expect("prefill");
    assert_eq!(dma.pooled(4096), 4);
    let maps = iommu.maps.load(Ordering::Relaxed);
    for round in 0..1000u32 {
        let mut a = dma.allocate(4096).expect("alloc");
        assert!(a.as_slice().iter().all(|&b| b == 0), "zeroed on reuse");
        a.as_mut_slice()[0] = round as u8 | 1;
        let b = dma.allocate(100).expect("same class");
        drop((a, b));
    }
    assert_eq!(
        iommu.maps.load(Ordering::Relaxed),
        maps,
        "no MAP in steady state"
    );
    assert_eq!(iommu.unmaps.load(Ordering::Relaxed), 0);
    assert_eq!(
        dma.stats().pool_misses.load(Ordering::Relaxed),
        4,
        "only the prefill"
    );
    // Beyond the pool bound buffers are unmapped, and dropping the allocator
    // unmaps whatever is pooled.
    let many: Vec<_> = (0..20)
        .map(|_| dma.allocate(4096).expect("alloc"))
        .collect();
    drop(many);
    assert_eq!(iommu.unmaps.load(Ordering::Relaxed), 4);
    drop(dma);
    assert_eq!(
        iommu.unmaps.load(Ordering::Relaxed),
        iommu.maps.load(Ordering::Relaxed)
    );
}

#[test]
fn bounce_buffers_copy_correctly_in_both_directions() {
    let (k, f) = machine(32);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    enable_bus_master();
    let dma = IommuDmaAllocator::new(Box::new(Passthrough), 32).expect("allocator");
    let stats = dma.stats();
    // To the device: the device reads what the CPU buffer held at map time.
    let out: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let mut scratch = vec![0u8; out.len()];
    let m = dma.map_single(&out, DmaDirection::ToDevice).expect("map");
    assert!(
        m.bus_address() + m.len() as u64 <= FOUR_GIB,
        "bounce below the mask"
    );
    let mut seen = vec![0u8; out.len()];
    f.dma_read(m.bus_address(), &mut seen)
        .expect("device reads");
    assert_eq!(seen, out);
    dma.unmap_single(m, &mut scratch).expect("unmap");
    assert!(
        scratch.iter().all(|&b| b == 0),
        "nothing copied back to-device"
    );

    // From the device: data appears in the CPU buffer at sync_for_cpu / unmap.
    let mut input = vec![0u8; 5000];
    let mut m = dma
        .map_single(&input, DmaDirection::FromDevice)
        .expect("map");
    f.dma_write(m.bus_address(), &[0xAB; 5000])
        .expect("device writes");
    dma.sync_for_cpu(&mut m, &mut input).expect("sync");
    assert!(input.iter().all(|&b| b == 0xAB));
    dma.sync_for_device(&mut m, &input).expect("back to device");
    f.dma_write(m.bus_address() + 10, &[0xCD; 10])
        .expect("device writes again");
    dma.unmap_single(m, &mut input)
        .expect("unmap copies what the device owned");
    assert_eq!(
        &input[8..22],
        &[
            0xAB, 0xAB, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xCD, 0xAB, 0xAB
        ]
    );

    // Both ways.
    let mut both = vec![1u8; 300];
    let mut m = dma
        .map_single(&both, DmaDirection::Bidirectional)
        .expect("map");
    let mut dev = [0u8; 300];
    f.dma_read(m.bus_address(), &mut dev).expect("read");
    assert!(dev.iter().all(|&b| b == 1));
    f.dma_write(m.bus_address(), &[2u8; 300]).expect("write");
    dma.sync_for_cpu(&mut m, &mut both).expect("sync");
    assert!(both.iter().all(|&b| b == 2));
    both.fill(3);
    dma.sync_for_device(&mut m, &both).expect("sync");
    f.dma_read(m.bus_address(), &mut dev).expect("read");
    assert!(dev.iter().all(|&b| b == 3));
    dma.unmap_single(m, &mut both).expect("unmap");

    assert_eq!(stats.bounce_maps.load(Ordering::Relaxed), 3);
    assert_eq!(
        stats.bounce_to_device_bytes.load(Ordering::Relaxed),
        10_000 + 300 + 300
    );
    assert_eq!(
        stats.bounce_to_cpu_bytes.load(Ordering::Relaxed),
        5000 + 5000 + 300 + 300,
        "the device owned the bidirectional buffer again at unmap"
    );
    assert_eq!(stats.bounce_in_use.load(Ordering::Relaxed), 0);
    // The pool grows to what is in flight at once.
    let a = dma.map_single(&[0; 64], DmaDirection::ToDevice).expect("a");
    let b = dma.map_single(&[0; 64], DmaDirection::ToDevice).expect("b");
    assert_ne!(a.bus_address(), b.bus_address());
    assert_eq!(stats.bounce_high_water.load(Ordering::Relaxed), 2);
    assert!(dma.map_single(&[], DmaDirection::ToDevice).is_err());
}

/// A minimal `iommu` scheme speaking the v1 wire format, to check the client.
#[derive(Default)]
struct WireIommu {
    answers: Mutex<BTreeMap<usize, [u8; 36]>>,
    next_iova: AtomicU64,
}

impl KernelScheme for WireIommu {
    fn open(&self, path: &str, _flags: usize, _c: &Caller) -> Result<usize> {
        match path.trim_matches('/') {
            "domain/7" => Ok(7),
            _ => Err(Error::new(ENOENT)),
        }
    }
    fn write(&self, h: usize, buf: &[u8], _f: usize, _c: &Caller) -> Result<usize> {
        let raw = RawRequest::decode(buf).map_err(|_| Error::new(EINVAL))?;
        let resp = match Opcode::from_u16(raw.opcode) {
            Some(Opcode::Map) => {
                let size = raw.arg2;
                let iova = self.next_iova.fetch_add(size, Ordering::Relaxed) + 0x4000_0000;
                Response::ok(Opcode::Map, 7, iova, size, 0)
            }
            Some(Opcode::Unmap) => Response::ok(Opcode::Unmap, 7, raw.arg1, 4096, 0),
            _ => Response::error(raw.opcode, EINVAL),
        };
        self.answers
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .insert(h, resp.encode());
        Ok(buf.len())
    }
    fn read(&self, h: usize, buf: &mut [u8], _f: usize, _c: &Caller) -> Result<usize> {
        let a = self
            .answers
            .lock()
            .map_err(|_| Error::new(EINVAL))?
            .remove(&h)
            .ok_or(Error::new(EBADF))?;
        let n = a.len().min(buf.len());
        buf[..n].copy_from_slice(&a[..n]);
        Ok(n)
    }
}

#[test]
fn iommu_domain_client_speaks_the_v1_wire_protocol() {
    let k = Kernel::boot();
    k.register_kernel_scheme("iommu", Arc::new(WireIommu::default()))
        .expect("register");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let m = IommuDomainMapper::open(7).expect("domain 7");
    assert_eq!(
        m.map(0x1_2345_0000, 8192, MapFlags::READ_WRITE, None),
        Ok(0x4000_0000)
    );
    assert_eq!(
        m.map(0x1_2346_0000, 4096, MapFlags::READ, None),
        Ok(0x4000_2000)
    );
    assert_eq!(m.unmap(0x4000_0000), Ok(4096));
    assert_eq!(m.round_trips(), 3);
    assert!(IommuDomainMapper::open(8).is_err());
    // domain_mapper picks the IOMMU when the scheme exists...
    assert!(domain_mapper(7, false).expect("mapper").translates());
    // ...and passthrough under the NO_IOMMU quirk.
    assert!(!domain_mapper(7, true).expect("mapper").translates());
    // Quirks reach the allocator a driver builds for its function.
    let a = IommuDmaAllocator::for_domain(7, QuirkFlags::empty(), 64).expect("iommu");
    assert!(a.translates() && a.address_limit() == u64::MAX);
    let q = QuirkFlags::NO_IOMMU | QuirkFlags::DMA_32BIT_ONLY;
    let b = IommuDmaAllocator::for_domain(7, q, 64).expect("passthrough");
    assert!(!b.translates());
    assert_eq!(b.address_limit(), FOUR_GIB - 1);
    let buf = b.allocate(4096).expect("low memory");
    assert!(buf.iova() < FOUR_GIB);
}
