//! driver-sys against the mocked kernel: the pcid channel of a simulated function,
//! MSI-X/MSI/INTx programmed by driver-sys and raised by the simulated function,
//! vectors without probing, affinity, and the degradation chain under quirks.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use driver_sys::irq::{
    InterruptVectors, IrqHandle, IrqMode, StepOutcome, enable_interrupts, function_quirks,
};
use driver_sys::msi::Mmio;
use driver_sys::pci::pcid_wire::{PciFeature, PciFeatureInfo};
use driver_sys::pci::{
    CAP_ID_MSI, CAP_ID_MSIX, ConfigSpace, PciAddress, PciFunction, PcidBar, PcidError,
};
use driver_sys::quirks::QuirkFlags;
use driver_sys::vector::CpuMask;
use dsmil_tests as _;
use event::EventQueue;
use libredox::{call, flag};
use redox_host::hw::pci_function::{InterruptOutcome, SimFunctionSpec, SimPciFunction};
use redox_host::{Cred, Kernel, MachineConfig};
use syscall::error::{EEXIST, ENOLCK};

const ADDR: PciAddress = PciAddress::new(0, 3, 0);

/// One read of a handle that must have fired: its count.
fn fired(h: &IrqHandle) -> u64 {
    h.pending()
        .expect("read")
        .expect("the interrupt is pending")
}

fn machine(cpus: usize, vectors: u16) -> (Arc<Kernel>, Arc<SimPciFunction>) {
    let k = Kernel::boot_with(MachineConfig {
        cpus,
        ..MachineConfig::default()
    });
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(ADDR, vectors)).expect("function");
    k.pci().add_function(f.clone()).expect("plug in");
    (k, f)
}

#[test]
fn pcid_channel_round_trips() {
    let (k, sim) = machine(4, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    assert_eq!(f.address(), ADDR);
    assert_eq!(f.identity().vendor, 0x1028);
    assert_eq!(f.identity().class, 0x088000);
    let (bar0, size0) = sim.bar(0).expect("bar0");
    assert_eq!(
        f.bar(0),
        Some(PcidBar::Memory32 {
            addr: bar0 as u32,
            size: size0 as u32
        })
    );
    assert_eq!(f.bar(1), Some(PcidBar::None));

    // Config reads and writes.
    assert_eq!(f.read_u32(0).expect("id"), 0xD511_1028);
    f.write_u32(0xC0, 0x1234_5678).expect("write");
    assert_eq!(f.read_u32(0xC0).expect("read back"), 0x1234_5678);
    assert_eq!(f.read_u16(0xC2).expect("narrow"), 0x1234);
    assert!(f.read_u32(2).is_err(), "misaligned");

    // Capabilities, features.
    let ids: Vec<u8> = f
        .capabilities()
        .expect("caps")
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(ids, vec![CAP_ID_MSI, CAP_ID_MSIX]);
    assert_eq!(
        f.features().expect("features"),
        vec![PciFeature::Msi, PciFeature::MsiX]
    );
    match f.feature_info(PciFeature::MsiX).expect("msix info") {
        PciFeatureInfo::MsiX(m) => {
            assert_eq!((m.table_size, m.table_bar, m.pba_bar), (8, 2, 2));
            assert_eq!(m.pba_offset, 0x800);
        }
        other => panic!("{other:?}"),
    }
    f.enable_device().expect("enable");
    assert_eq!(f.read_u16(0x04).expect("command") & 0b111, 0b111);

    // BAR mapping through physical@uc reaches the function's registers.
    let bar = f.map_bar(0).expect("map bar0");
    bar.write_u32(0x10, 0xCAFE_F00D).expect("mmio write");
    assert_eq!(
        k.phys().read_u64(bar0 + 0x10).map(|v| v as u32),
        Some(0xCAFE_F00D)
    );
    assert!(bar.read_u32(size0 as usize).is_err(), "past the BAR");
    assert!(matches!(f.map_bar(1), Err(PcidError::NotMemoryBar(1))));

    // One channel per function, as pcid.
    let path = format!("/scheme/pci/{}/channel", ADDR.scheme_name());
    assert_eq!(
        call::open(&path, flag::O_RDWR, 0),
        Err(libredox::error::Error::new(ENOLCK))
    );
    drop(f);
    // A channel fd handed over (what pcid-spawner passes in PCID_CLIENT_CHANNEL).
    let fd = call::open(&path, flag::O_RDWR, 0).expect("reopen after close");
    let g = PciFunction::from_channel_fd(fd).expect("from fd");
    assert_eq!(g.identity().device, 0xD511);
}

#[test]
fn pci_scheme_lists_functions_and_refuses_users() {
    let (k, _sim) = machine(1, 1);
    {
        let (_p, _g) = k.enter("user", Cred::USER);
        assert!(PciFunction::connect(&ADDR).is_err());
    }
    let (_p, _g) = k.enter("lister", Cred::ROOT);
    // pcid lists its functions by getdents only (base `drivers/pcid/src/scheme.rs`).
    let fd = call::open("/scheme/pci", flag::O_RDONLY | flag::O_DIRECTORY, 0).expect("root");
    let mut buf = [0u8; 256];
    assert_eq!(
        call::read(fd, &mut buf),
        Err(libredox::error::Error::new(syscall::error::EISDIR))
    );
    let n = call::getdents(fd, &mut buf, 0).expect("list");
    let names: Vec<Vec<u8>> = syscall::dirent::DirentIter::new(&buf[..n])
        .filter_map(|e| e.ok())
        .map(|(_, name)| name.split(|&b| b == 0).next().unwrap_or_default().to_vec())
        .collect();
    assert_eq!(names, vec![b"0000--00--03.0".to_vec()]);
    assert!(PciFunction::connect(&PciAddress::new(0, 4, 0)).is_err());
}

#[test]
fn msix_vector_programmed_by_driver_sys_arrives_as_irq_and_event() {
    let (k, sim) = machine(4, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    let vectors = InterruptVectors::open().expect("vectors");
    assert_eq!(vectors.cpu_count(), 4);
    assert_eq!(vectors.bsp_apic_id(), 0);
    let setup = enable_interrupts(
        &mut f,
        &vectors,
        4,
        QuirkFlags::empty(),
        &vectors.all_cpus(),
    )
    .expect("interrupts");
    assert_eq!(setup.mode, IrqMode::MsiX);
    assert_eq!(setup.handles.len(), 4);
    assert!(!setup.is_degraded());
    // Spread round-robin: four different CPUs.
    let mut cpus: Vec<u32> = setup.handles.iter().filter_map(|h| h.cpu()).collect();
    cpus.sort_unstable();
    assert_eq!(cpus, vec![0, 1, 2, 3]);
    // The kernel counts per IRQ number across CPUs: the four must not share one,
    // or each would hear the others' interrupts.
    let mut irqs: Vec<u8> = setup
        .handles
        .iter()
        .filter_map(|h| h.vector().irq_number())
        .collect();
    irqs.sort_unstable();
    irqs.dedup();
    assert_eq!(irqs.len(), 4, "distinct IRQ numbers");
    assert!(
        irqs.iter().all(|&n| n >= 16),
        "none shares a legacy line's counter"
    );
    for h in &setup.handles {
        let irq = h.vector().irq_number().expect("device vector");
        assert!(
            k.irq()
                .is_reserved(h.cpu().expect("cpu") as usize, usize::from(irq))
        );
    }

    let queue = EventQueue::<usize>::new().expect("queue");
    for (i, h) in setup.handles.iter().enumerate() {
        h.subscribe(&queue, i).expect("subscribe");
    }
    let h2 = &setup.handles[2];
    assert_eq!(
        sim.signal_msix(2),
        InterruptOutcome::Delivered {
            cpu: h2.apic_id() as usize,
            vector: h2.vector().0,
            claimed: true
        }
    );
    assert_eq!(queue.next_event().expect("event").user_data, 2);
    let count = fired(h2);
    assert_eq!(count, 1);
    assert!(h2.ack(count).expect("ack"));
    assert_eq!(h2.pending().expect("read"), None, "acknowledged");

    // A masked entry sets its PBA bit instead; unmasking delivers it.
    let msix = setup.msix.as_ref().expect("msix");
    msix.table.mask(1).expect("mask");
    assert_eq!(sim.signal_msix(1), InterruptOutcome::Pending);
    assert!(msix.pba.is_pending(1).expect("pba"));
    let h1 = &setup.handles[1];
    assert_eq!(h1.pending().expect("read"), None, "nothing reached the CPU");
    msix.table.unmask(1).expect("unmask");
    assert_eq!(sim.deliver_pending(), 1);
    assert!(!msix.pba.is_pending(1).expect("pba"));
    assert_eq!(fired(h1), 1, "delivered after unmask");
}

#[test]
fn affinity_moves_the_vector_and_keeps_the_old_one_in_the_pool() {
    let (k, sim) = machine(4, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    let vectors = InterruptVectors::open().expect("vectors");
    let mut setup = enable_interrupts(
        &mut f,
        &vectors,
        1,
        QuirkFlags::empty(),
        &CpuMask::single(0),
    )
    .expect("interrupts");
    let old = setup.handles[0].vector();
    assert_eq!(setup.handles[0].cpu(), Some(0));
    let calls = vectors.stats().kernel_reserves.load(Ordering::Relaxed);
    setup.set_affinity(&mut f, 0, 3).expect("move");
    let h = &setup.handles[0];
    assert_eq!((h.cpu(), h.apic_id()), (Some(3), 3));
    let irq = usize::from(h.vector().irq_number().expect("irq"));
    assert!(k.irq().is_reserved(3, irq), "reserved cpu-03/NN");
    assert_eq!(
        vectors.stats().kernel_reserves.load(Ordering::Relaxed),
        calls + 1,
        "one kernel reservation on the new CPU"
    );
    // The kernel never takes the old vector back: it waits in our pool.
    let old_irq = usize::from(old.irq_number().expect("irq"));
    assert!(k.irq().is_reserved(0, old_irq));
    assert_eq!(vectors.idle_vectors(0), vec![old]);
    // The entry was reprogrammed: the device's interrupt now arrives on CPU 3.
    assert!(matches!(
        sim.signal_msix(0),
        InterruptOutcome::Delivered {
            cpu: 3,
            claimed: true,
            ..
        }
    ));
    assert_eq!(fired(&setup.handles[0]), 1, "on cpu 3");
    // The pooled vector serves the next request for CPU 0 without the kernel.
    let again = vectors.reserve(&CpuMask::single(0)).expect("reuse");
    assert_eq!(again.vector(), old);
    assert_eq!(
        vectors.stats().kernel_reserves.load(Ordering::Relaxed),
        calls + 1
    );
}

#[test]
fn exhausted_cpu_spills_to_another_with_affinity_broken() {
    let (k, _sim) = machine(2, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let vectors = InterruptVectors::open().expect("vectors");
    // Someone else takes every vector of CPU 0 after we read the listings: our
    // matrix believes they are free, the kernel says EEXIST.
    let held: Vec<usize> = (16..224)
        .filter_map(|n| {
            call::open(
                format!("/scheme/irq/cpu-00/{n}"),
                flag::O_RDWR | flag::O_CREAT,
                0,
            )
            .ok()
        })
        .collect();
    assert_eq!(held.len(), 202, "the BSP's IRQs 18-31 and 36-223");
    let h = vectors.reserve(&CpuMask::single(0)).expect("spill");
    assert_eq!(h.cpu(), Some(1));
    assert!(h.affinity_broken(), "reported");
    let irq = usize::from(h.vector().irq_number().expect("irq"));
    assert!(k.irq().is_reserved(1, irq), "reserved in the real scheme");
    assert_eq!(
        vectors.stats().collisions.load(Ordering::Relaxed),
        186,
        "each candidate of CPU 0 (IRQs 18-31, 36-207) cost one EEXIST, then it counted as full"
    );
    assert_eq!(vectors.free_count(0).expect("cpu0"), 0);
    assert_eq!(
        call::open("/scheme/irq/cpu-00/18", flag::O_RDWR | flag::O_CREAT, 0),
        Err(libredox::error::Error::new(EEXIST))
    );
}

#[test]
fn released_vectors_are_recycled_without_kernel_calls() {
    let (k, _sim) = machine(2, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let vectors = InterruptVectors::open().expect("vectors");
    let h = vectors.reserve(&CpuMask::single(1)).expect("reserve");
    let v = h.vector();
    drop(h);
    let irq = usize::from(v.irq_number().expect("irq"));
    assert!(
        k.irq().is_reserved(1, irq),
        "kept reserved in the idle pool"
    );
    let calls = vectors.stats().kernel_reserves.load(Ordering::Relaxed);
    let again = vectors.reserve(&CpuMask::single(1)).expect("again");
    assert_eq!(again.vector(), v);
    assert_eq!(
        vectors.stats().kernel_reserves.load(Ordering::Relaxed),
        calls
    );
}

fn steps_modes(setup: &driver_sys::irq::InterruptSetup) -> Vec<(IrqMode, u32, bool)> {
    setup
        .steps
        .iter()
        .map(|s| (s.mode, s.vectors, s.outcome == StepOutcome::Granted))
        .collect()
}

#[test]
fn degradation_chain_under_each_quirk() {
    // NO_MSIX: MSI with a 4-vector aligned block; message 3 reaches handle 3.
    {
        let (k, sim) = machine(2, 8);
        let (_p, _g) = k.enter("driver", Cred::ROOT);
        let mut f = PciFunction::connect(&ADDR).expect("connect");
        let vectors = InterruptVectors::open().expect("vectors");
        let s = enable_interrupts(
            &mut f,
            &vectors,
            4,
            QuirkFlags::NO_MSIX,
            &vectors.all_cpus(),
        )
        .expect("msi");
        assert_eq!(s.mode, IrqMode::Msi);
        assert!(matches!(s.steps[0].outcome, StepOutcome::SkippedByQuirk(_)));
        assert_eq!(s.handles.len(), 4);
        assert_eq!(s.handles[0].vector().0 % 4, 0, "aligned block");
        assert!(matches!(
            sim.signal_msi(3),
            InterruptOutcome::Delivered { claimed: true, .. }
        ));
        assert_eq!(s.handles[3].pending().expect("read").expect("message 3"), 1);
    }
    // NO_MSI | NO_MSIX, and FORCE_LEGACY_IRQ: INTx on the routed line.
    for q in [
        QuirkFlags::NO_MSI | QuirkFlags::NO_MSIX,
        QuirkFlags::FORCE_LEGACY_IRQ,
    ] {
        let (k, sim) = machine(2, 8);
        let (_p, _g) = k.enter("driver", Cred::ROOT);
        let mut f = PciFunction::connect(&ADDR).expect("connect");
        let vectors = InterruptVectors::open().expect("vectors");
        let s = enable_interrupts(&mut f, &vectors, 4, q, &vectors.all_cpus()).expect("intx");
        assert_eq!(s.mode, IrqMode::Intx, "{q}");
        assert_eq!(
            steps_modes(&s),
            vec![
                (IrqMode::MsiX, 0, false),
                (IrqMode::Msi, 0, false),
                (IrqMode::Intx, 1, true)
            ]
        );
        assert!(matches!(
            sim.signal_intx(),
            InterruptOutcome::Delivered { claimed: true, .. }
        ));
        assert_eq!(s.handles[0].pending().expect("read").expect("intx"), 1);
        // MSI-X was never enabled, so the function cannot use it.
        assert_eq!(sim.signal_msix(0), InterruptOutcome::Dropped);
    }
    // Too few vectors: MSI-X 8 and 4 refused, 2 granted.
    {
        let (k, sim) = machine(1, 8);
        let (_p, _g) = k.enter("driver", Cred::ROOT);
        // Another driver holds all but IRQs 206 and 207 of the device range.
        let held: Vec<usize> = (16..206)
            .filter_map(|n| {
                call::open(
                    format!("/scheme/irq/cpu-00/{n}"),
                    flag::O_RDWR | flag::O_CREAT,
                    0,
                )
                .ok()
            })
            .collect();
        assert_eq!(held.len(), 184, "IRQs 18-31 and 36-205");
        let mut f = PciFunction::connect(&ADDR).expect("connect");
        let vectors = InterruptVectors::open().expect("vectors");
        let s = enable_interrupts(
            &mut f,
            &vectors,
            8,
            QuirkFlags::empty(),
            &vectors.all_cpus(),
        )
        .expect("fewer");
        assert_eq!(
            steps_modes(&s),
            vec![
                (IrqMode::MsiX, 8, false),
                (IrqMode::MsiX, 4, false),
                (IrqMode::MsiX, 2, true)
            ]
        );
        assert!(s.is_degraded());
        assert!(matches!(
            sim.signal_msix(1),
            InterruptOutcome::Delivered { claimed: true, .. }
        ));
        assert_eq!(s.handles[1].pending().expect("read").expect("entry 1"), 1);
    }
}

#[test]
fn quirks_from_a_toml_directory_reach_the_chain() {
    let dir = std::env::temp_dir().join(format!("driver-sys-quirks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(
        dir.join("50-dsmil.toml"),
        "[[quirk]]\nvendor = 0x1028\ndevice = 0xd511\nflags = [\"NO_MSIX\"]\nreason = \"test\"\n",
    )
    .expect("write");
    let (k, _sim) = machine(2, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    let q = function_quirks(&f, Some(&dir));
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(q, QuirkFlags::NO_MSIX);
    let vectors = InterruptVectors::open().expect("vectors");
    let s = enable_interrupts(&mut f, &vectors, 2, q, &vectors.all_cpus()).expect("msi");
    assert_eq!(s.mode, IrqMode::Msi);
}

#[test]
fn channel_protocol_edges_answer_errors_not_panics() {
    use driver_sys::pci::pcid_wire::{self, PcidClientRequest, PcidClientResponse};
    let (k, _sim) = machine(1, 1);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let path = format!("/scheme/pci/{}/channel", ADDR.scheme_name());
    let fd = call::open(&path, flag::O_RDWR, 0).expect("channel");
    let einval = Err(libredox::error::Error::new(syscall::error::EINVAL));
    let mut buf = [0u8; 64];
    assert_eq!(call::read(fd, &mut buf), einval, "no request yet");
    assert_eq!(call::write(fd, &[0xFF; 7]), einval, "garbage");
    assert_eq!(call::write(fd, &[]), einval, "empty");
    let req = pcid_wire::encode(&PcidClientRequest::ReadConfig(0)).expect("encode");
    assert_eq!(call::write(fd, &req), Ok(req.len()));
    assert_eq!(call::write(fd, &req), einval, "answer not read yet");
    // The answer can be read in pieces: 8-byte length, then the body.
    let mut len = [0u8; 8];
    assert_eq!(call::read(fd, &mut len[..3]), Ok(3));
    assert_eq!(call::read(fd, &mut len[3..]), Ok(5));
    let n = u64::from_le_bytes(len) as usize;
    let mut body = vec![0u8; n];
    assert_eq!(call::read(fd, &mut body), Ok(n));
    assert_eq!(
        pcid_wire::decode::<PcidClientResponse>(&body),
        Ok(PcidClientResponse::ReadConfig(0xD511_1028))
    );
    // Out-of-range and misaligned offsets are pcid errors, not crashes.
    for bad in [
        PcidClientRequest::ReadConfig(4096),
        PcidClientRequest::WriteConfig(3, 0),
    ] {
        let req = pcid_wire::encode(&bad).expect("encode");
        call::write(fd, &req).expect("write");
        let mut out = [0u8; 64];
        let got = call::read(fd, &mut out).expect("read");
        let resp = pcid_wire::decode::<PcidClientResponse>(&out[8..got]).expect("decode");
        assert!(matches!(resp, PcidClientResponse::Error(_)), "{resp:?}");
    }
}

#[test]
fn msix_table_and_pba_in_different_bars_end_to_end() {
    use redox_host::hw::pci_function::SimMsix;
    let k = Kernel::boot();
    let mut spec = SimFunctionSpec::dsmil_like(ADDR, 16);
    spec.bar_sizes = [0x4000, 0, 0x1000, 0, 0x1000, 0];
    spec.msix = Some(SimMsix {
        table_size: 16,
        table: (2, 0x100),
        pba: (4, 0x40),
    });
    let sim = SimPciFunction::new(&k, spec).expect("function");
    k.pci().add_function(sim.clone()).expect("plug in");
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    let vectors = InterruptVectors::open().expect("vectors");
    let s = enable_interrupts(
        &mut f,
        &vectors,
        16,
        QuirkFlags::empty(),
        &vectors.all_cpus(),
    )
    .expect("msix");
    assert_eq!((s.mode, s.handles.len()), (IrqMode::MsiX, 16));
    let msix = s.msix.as_ref().expect("msix");
    assert_eq!((msix.capability.table.bir, msix.capability.pba.bir), (2, 4));
    msix.table.mask(15).expect("mask");
    assert_eq!(sim.signal_msix(15), InterruptOutcome::Pending);
    assert!(msix.pba.is_pending(15).expect("pba in BAR4"));
    let (bar4, _) = sim.bar(4).expect("bar4");
    let mut w = [0u8; 4];
    assert!(k.phys().read(bar4 + 0x40, &mut w));
    assert_eq!(
        u32::from_le_bytes(w),
        1 << 15,
        "the bit lives in BAR4 at 0x40"
    );
    assert!(matches!(
        sim.signal_msix(14),
        InterruptOutcome::Delivered { claimed: true, .. }
    ));
    assert_eq!(s.handles[14].pending().expect("read").expect("entry 14"), 1);
}

#[test]
fn threads_reserving_at_once_never_share_a_vector() {
    let k = Kernel::boot();
    let (p, _g) = k.enter("driver", Cred::ROOT);
    let vectors = InterruptVectors::open().expect("vectors");
    // Four threads of the same process (their fds must outlive the threads).
    let all: Vec<_> = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (v, k, p) = (vectors.clone(), k.clone(), p.clone());
                scope.spawn(move || {
                    let _in = redox_host::kernel::process::enter(&k, &p);
                    let mask = if t % 2 == 0 {
                        v.all_cpus()
                    } else {
                        CpuMask::single(1)
                    };
                    (0..60)
                        .map(|_| v.reserve(&mask).map_err(|e| e.errno))
                        .collect::<Result<Vec<_>, _>>()
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().expect("thread").expect("reserve"))
            .collect()
    });
    let mut seen = std::collections::HashSet::new();
    for h in &all {
        let cpu = h.cpu().expect("cpu") as usize;
        let irq = usize::from(h.vector().irq_number().expect("irq"));
        assert!(seen.insert((cpu, irq)), "({cpu}, {irq}) handed out twice");
        assert!(k.irq().is_reserved(cpu, irq));
    }
    assert_eq!(seen.len(), 240);
    assert_eq!(k.irq().reserved_vectors(), 240);
}

#[test]
fn msi_block_skips_a_vector_taken_inside_it() {
    let (k, _sim) = machine(1, 1);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let vectors = InterruptVectors::open().expect("vectors");
    // After our listing: someone takes IRQ 21 (vector 0x35), inside the first
    // aligned block of 4 the matrix will choose (0x34..=0x37; the BSP's vectors
    // 0x30 and 0x31 are the kernel's).
    let held = call::open("/scheme/irq/cpu-00/21", flag::O_RDWR | flag::O_CREAT, 0).expect("take");
    let block = vectors
        .reserve_block(&CpuMask::single(0), 4)
        .expect("block");
    let v: Vec<u8> = block.iter().map(|h| h.vector().0).collect();
    assert_eq!(v, vec![0x38, 0x39, 0x3A, 0x3B], "next aligned block");
    // 0x34 was opened before the collision: the kernel keeps it reserved for good,
    // so it waits in our pool; 0x36 and 0x37 were never asked for.
    assert!(k.irq().is_reserved(0, 0x34 - 32));
    assert_eq!(
        vectors.idle_vectors(0),
        vec![driver_sys::vector::Vector(0x34)]
    );
    assert!(!k.irq().is_reserved(0, 0x36 - 32) && !k.irq().is_reserved(0, 0x37 - 32));
    drop(block);
    let again = vectors
        .reserve_block(&CpuMask::single(0), 2)
        .expect("block of 2");
    assert_eq!(again[0].vector().0, 0x32, "the lowest free aligned pair");
    let _ = call::close(held);
}

#[test]
fn an_interrupt_from_before_the_subscription_is_seen_by_the_first_read() {
    let (k, sim) = machine(2, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    let mut f = PciFunction::connect(&ADDR).expect("connect");
    let vectors = InterruptVectors::open().expect("vectors");
    let s = enable_interrupts(
        &mut f,
        &vectors,
        1,
        QuirkFlags::empty(),
        &vectors.all_cpus(),
    )
    .expect("msix");
    // The device fires before the driver subscribed: the kernel posts no event
    // at subscription, so only the read after subscribing catches it.
    assert!(matches!(
        sim.signal_msix(0),
        InterruptOutcome::Delivered { claimed: true, .. }
    ));
    let queue = EventQueue::<usize>::new().expect("queue");
    s.handles[0].subscribe(&queue, 0).expect("subscribe");
    let count = fired(&s.handles[0]);
    assert_eq!(count, 1);
    assert!(s.handles[0].ack(count).expect("ack"));
    assert_eq!(s.handles[0].pending().expect("read"), None);
}

#[test]
fn a_restarted_driver_gets_a_different_vector() {
    let (k, _sim) = machine(2, 8);
    let start = |k: &Arc<Kernel>| {
        k.spawn("driver", Cred::ROOT, || {
            let mut f = PciFunction::connect(&ADDR).expect("connect");
            let vectors = InterruptVectors::open().expect("vectors");
            let s = enable_interrupts(
                &mut f,
                &vectors,
                1,
                QuirkFlags::empty(),
                &CpuMask::single(0),
            )
            .expect("msix");
            let collisions = vectors.stats().collisions.load(Ordering::Relaxed);
            (s.handles[0].vector(), collisions)
        })
        .join()
        .expect("driver run")
    };
    // The first run ends: its process closes every handle it had.
    let (first, _) = start(&k);
    let first_irq = usize::from(first.irq_number().expect("irq"));
    assert!(k.irq().is_reserved(0, first_irq), "the kernel kept it");
    let (second, collisions) = start(&k);
    assert_ne!(second, first, "the restart cannot have the leaked vector");
    assert_eq!(collisions, 0, "the listing already left the leaked one out");
}

#[test]
fn new_vectors_avoid_irq_numbers_another_driver_uses_on_another_cpu() {
    let (k, _sim) = machine(2, 8);
    let (_p, _g) = k.enter("driver", Cred::ROOT);
    // Another driver holds IRQ 18 on CPU 1: the kernel's counter for 18 is theirs.
    let theirs =
        call::open("/scheme/irq/cpu-01/18", flag::O_RDWR | flag::O_CREAT, 0).expect("other driver");
    let vectors = InterruptVectors::open().expect("vectors");
    let ours = vectors.reserve(&CpuMask::single(0)).expect("reserve");
    assert_eq!(
        ours.vector().irq_number(),
        Some(19),
        "IRQ 18 is free on CPU 0 but would share the other driver's counter"
    );
    let _ = call::close(theirs);
}
