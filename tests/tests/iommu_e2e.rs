//! iommud end to end: the unmodified daemon loop on a thread of the mocked
//! kernel, driving the simulated AMD-Vi unit, which translates the DMA of a
//! simulated PCI function. Clients are threads of the same kernel.

use std::sync::Arc;

use driver_sys::pci::PciAddress;
use dsmil_tests as _;
use iommu::client::{IommuControl, IommuDomain};
use iommu::protocol::{MapFlags, Opcode, RawRequest, Request, Response};
use iommu::scatter::{SgEntry, Source};
use iommu::unit::FaultCause;
use iommu::{Bdf, Invalidation, Vendor};
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::amdvi::{CommandExecution, SimAmdVi};
use redox_host::hw::pci_function::{COMMAND_BUS_MASTER, DmaFault, SimFunctionSpec, SimPciFunction};
use redox_host::{ClockSource, Cred, Kernel, MachineConfig};
use syscall::error::{EACCES, EBUSY, ENOENT, ENOSPC, EOPNOTSUPP};

const ADDR: PciAddress = PciAddress::new(0, 5, 0);
const PAGE: u64 = 4096;

struct Machine {
    k: Arc<Kernel>,
    unit: Arc<SimAmdVi>,
    dev: Arc<SimPciFunction>,
    _iommud: RunningDaemon,
}

fn bdf() -> Bdf {
    Bdf::new(0, 5, 0).expect("bdf")
}

/// A machine with iommud in front of one bus-mastering function.
/// The lazy flush timer is left out of the way (its deadline is on the
/// mocked clock, which follows real time): on a loaded machine 10 ms pass
/// between two steps of a test. The timer has its own test.
fn machine() -> Machine {
    machine_with(iommu::Config {
        flush_timeout_ms: 600_000,
        ..iommu::Config::default()
    })
}

fn machine_with(config: iommu::Config) -> Machine {
    machine_on(config, CommandExecution::Inline)
}

/// The machine's clock moves only when a test advances it: iommud's lazy flush
/// deadline (10 ms by default) must not pass just because the host was slow, or
/// a test's own flush finds the queue already empty.
fn machine_on(config: iommu::Config, execution: CommandExecution) -> Machine {
    let k = Kernel::boot_with(MachineConfig {
        clock: ClockSource::Manual,
        ..MachineConfig::default()
    });
    let unit = SimAmdVi::with_execution(&k, execution);
    let dev = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(ADDR, 4)).expect("function");
    dev.config_write_u32(0x04, u32::from(COMMAND_BUS_MASTER))
        .expect("bus master");
    unit.attach(&dev);
    let iommud = boot::iommud(&k, config, &unit);
    Machine {
        k,
        unit,
        dev,
        _iommud: iommud,
    }
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

fn stat(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}: ")))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {key} in\n{text}"))
}

#[test]
fn every_opcode_from_a_client_thread() {
    let m = machine();
    let (_p, _g) = m.k.enter("client", Cred::ROOT);
    let ctl = IommuControl::open().expect("control");
    let q = ctl.exchange(&Request::Query).expect("query");
    assert_eq!((q.arg0, q.arg1, q.arg2, q.arg3), (1, 0, 0, 1));
    let init = ctl
        .exchange(&Request::InitUnits { unit: None })
        .expect("init");
    assert_eq!(
        (init.arg0, init.arg1, init.arg2),
        (0, 1, 1),
        "already initialised at start"
    );
    let id = ctl.create_domain(None).expect("create");
    assert_eq!(id, 1);
    assert_eq!(
        ctl.create_domain(Some(1))
            .expect("a taken id is only a request"),
        2,
        "iommud hands out a free id instead"
    );
    ctl.destroy_domain(2).expect("destroy the second");

    let d = IommuDomain::open(id).expect("open domain");
    let info = d.query().expect("query domain");
    assert!(
        info.root != 0 && info.levels == 3 && info.mappings == 0,
        "{info:?}"
    );
    let buf = m.k.phys().alloc(2 * PAGE as usize, false).expect("ram");
    let iova = d
        .map(buf, 2 * PAGE, MapFlags::READ_WRITE, None)
        .expect("map");
    assert_eq!(d.translate(iova + 0x123).expect("translate"), buf + 0x123);
    let space = d.space().expect("space");
    assert_eq!(space.mappings, 1);
    assert!(space.free_bytes > 0 && space.windows > 0, "{space:?}");
    let (start, end, free) = d.window(0).expect("window 0");
    assert!(start < end && free <= end - start);
    // BATCH (a `call`): two ranges mapped in one request, then unmapped.
    let sg: Vec<SgEntry> = (0..2)
        .map(|i| SgEntry {
            addr: buf + i * PAGE,
            size: PAGE,
            iova: 0,
        })
        .collect();
    let done = d
        .map_sg(&sg, MapFlags::READ, Source::Physical)
        .expect("batch map");
    assert_eq!(d.translate(done[1].iova).expect("translate"), buf + PAGE);
    let iovas = [done[0].iova, done[1].iova];
    assert_eq!(d.unmap_sg(&iovas).expect("batch unmap"), 2 * PAGE);
    d.set_invalidation(Invalidation::Lazy).expect("lazy");
    d.set_quota(1 << 30).expect("quota");
    d.assign(bdf()).expect("assign");
    let dev = libredox::Fd::open("/scheme/iommu/device/00:05.0", libredox::flag::O_RDWR, 0)
        .expect("device");
    dev.write(&Request::Query.encode()).expect("query device");
    let mut r = [0u8; 36];
    dev.read(&mut r).expect("response");
    let r = Response::decode(&r).expect("decode");
    assert_eq!((r.arg0, r.arg1, r.arg2), (u32::from(id), 0, 0x28));
    assert_eq!(d.unmap(iova).expect("unmap"), 2 * PAGE);
    assert_eq!(
        d.flush().expect("flush"),
        1,
        "the deferred IOVA is released"
    );
    d.unassign(bdf()).expect("unassign");
    let drained = ctl.drain_events(None).expect("drain");
    assert_eq!((drained.count, drained.first), (0, None));
    ctl.destroy_domain(id).expect("destroy");
    // Every opcode answered on its handle, echoing its kind.
    assert_eq!(Opcode::ALL.len(), 16);
}

#[test]
fn requests_on_the_wrong_handle_are_eopnotsupp() {
    let m = machine();
    let (_p, _g) = m.k.enter("client", Cred::ROOT);
    let ctl = IommuControl::open().expect("control");
    let e = ctl
        .exchange(&Request::Map {
            flags: MapFlags::READ,
            phys: 0x1000,
            size: 0x1000,
            iova: None,
        })
        .unwrap_err();
    assert_eq!(e.errno, EOPNOTSUPP);
    let d = IommuDomain::open(4).expect("domain");
    assert_eq!(
        d.exchange(&Request::DestroyDomain { id: 4 })
            .unwrap_err()
            .errno,
        EOPNOTSUPP
    );
}

#[test]
fn device_dma_reaches_the_mapped_page() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(7).expect("domain");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    assert_ne!(
        iova, buf,
        "the device sees an IOVA, not the physical address"
    );
    // A device no domain holds is in passthrough: its bus address is physical.
    m.dev.dma_write(buf, b"pt").expect("passthrough DMA");
    let mut pt = [0u8; 2];
    assert!(m.k.phys().read(buf, &mut pt));
    assert_eq!(&pt, b"pt");
    d.assign(bdf()).expect("assign");
    m.dev.dma_write(iova + 16, b"hello iommu").expect("dma");
    let mut got = [0u8; 11];
    assert!(m.k.phys().read(buf + 16, &mut got));
    assert_eq!(&got, b"hello iommu");
    let mut back = [0u8; 11];
    m.dev.dma_read(iova + 16, &mut back).expect("dma read");
    assert_eq!(&back, b"hello iommu");
}

#[test]
fn rogue_dma_faults_logs_and_writes_nothing() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(2).expect("domain");
    d.assign(bdf()).expect("assign");
    // Three contiguous pages: canary, buffer, canary. Only the middle is mapped.
    let ram = m.k.phys().alloc(4 * PAGE as usize, false).expect("ram");
    assert!(m.k.phys().fill(ram, 4 * PAGE as usize, 0xCC));
    let buf = ram + PAGE;
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    let junk = [0x55u8; 64];
    assert!(m.dev.dma_write(iova + PAGE, &junk).is_err(), "past the end");
    assert!(
        m.dev.dma_write(iova - PAGE, &junk).is_err(),
        "before the start"
    );
    assert!(
        m.dev.dma_write(iova + PAGE - 8, &junk[..16]).is_err(),
        "straddling the end: nothing at all is written"
    );
    assert!(m.dev.dma_write(0xdead_0000, &junk).is_err(), "anywhere");
    let mut all = vec![0u8; 4 * PAGE as usize];
    assert!(m.k.phys().read(ram, &mut all));
    assert!(all.iter().all(|&b| b == 0xCC), "canaries and buffer intact");

    // The client reads it vendor-neutral: an AMD-Vi IO_PAGE_FAULT (code 2)
    // whose entry had no PR flag is a missing translation.
    let drained = d.drain_events().expect("drain");
    assert_eq!(drained.count, 4);
    let first = drained.first.expect("first event");
    assert_eq!(
        (first.device, first.address, first.write),
        (Bdf::from_requester_id(0x28), iova + PAGE, true)
    );
    assert_eq!(first.cause, FaultCause::NotPresent);
    assert_eq!(
        (first.vendor, first.unit, first.code),
        (Some(Vendor::AmdVi), Some(0), 2)
    );
    let faults = read_text("/scheme/iommu/faults");
    let line = format!("0 00:05.0 2 {:#x} write not-present", iova - PAGE);
    assert!(faults.contains(&line), "{faults}");
    let stats = read_text("/scheme/iommu/stats");
    assert_eq!(stat(&stats, "faults"), 4);
    assert_eq!(
        m.unit
            .stats
            .faults
            .load(std::sync::atomic::Ordering::Relaxed),
        4
    );
}

#[test]
fn write_through_a_read_only_mapping_faults() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(3).expect("domain");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    assert!(m.k.phys().fill(buf, PAGE as usize, 0x11));
    let iova = d.map(buf, PAGE, MapFlags::READ, None).expect("map");
    let mut got = [0u8; 4];
    m.dev.dma_read(iova, &mut got).expect("reads are allowed");
    assert_eq!(got, [0x11; 4]);
    assert_eq!(
        m.dev.dma_write(iova, b"no"),
        Err(DmaFault::Translation(iova))
    );
    m.k.phys().read(buf, &mut got);
    assert_eq!(got, [0x11; 4], "nothing written");
    let faults = read_text("/scheme/iommu/faults");
    assert!(
        faults.contains(&format!("0 00:05.0 3 {iova:#x} write permission")),
        "{faults}"
    );
    // A v1 client (DRAIN_EVENTS with arg1 = 0) gets the v1 answer exactly:
    // the AMD event code, the requester id, the address, nothing more.
    let ctl = IommuControl::open().expect("control");
    let v1 = ctl
        .exchange(&Request::DrainEvents {
            unit: None,
            neutral: false,
        })
        .expect("v1 drain");
    assert_eq!(
        (v1.arg0, v1.arg1, v1.arg2, v1.arg3),
        (1, 2, 0x28, iova),
        "the v1 answer"
    );
    // The client asks for the neutral fields: the PR flag of the entry makes
    // it a permission fault, in domain 3, on AMD-Vi unit 0.
    assert_eq!(
        m.dev.dma_write(iova + 8, b"no"),
        Err(DmaFault::Translation(iova + 8))
    );
    let drained = ctl.drain_events(None).expect("drain");
    let first = drained.first.expect("the fault");
    assert_eq!(drained.count, 1);
    assert_eq!(
        (first.cause, first.write, first.domain_id),
        (FaultCause::Permission, true, 3)
    );
    assert_eq!(
        (first.device, first.address),
        (Bdf::from_requester_id(0x28), iova + 8)
    );
    assert_eq!(
        (first.vendor, first.unit, first.code),
        (Some(Vendor::AmdVi), Some(0), 2)
    );
}

#[test]
fn strict_unmap_never_leaves_a_stale_iotlb_entry() {
    strict_unmap_on(CommandExecution::Inline);
}

/// The unit runs its command ring on its own thread: UNMAP must really wait
/// for the completion store, or the device would still hit the IOTLB.
#[test]
fn strict_unmap_waits_for_a_unit_running_beside_the_cpu() {
    strict_unmap_on(CommandExecution::Concurrent);
}

fn strict_unmap_on(execution: CommandExecution) {
    let m = machine_on(iommu::Config::default(), execution);
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
    let m = machine();
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
    // The IOTLB still holds the old translation: the simulated unit serves it.
    m.dev
        .dma_write(iova, b"b")
        .expect("stale IOTLB entry served");
    let mut got = [0u8];
    m.k.phys().read(buf, &mut got);
    assert_eq!(&got, b"b");
    // The IOVA is not handed out again before the flush.
    let other = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    assert_ne!(other, iova);
    assert_eq!(d.flush().expect("flush"), 1);
    assert_eq!(
        m.dev.dma_write(iova, b"c"),
        Err(DmaFault::Translation(iova))
    );
}

#[test]
fn a_full_flush_queue_flushes_by_itself() {
    // A timeout that never fires during the test: only a full queue flushes.
    let m = machine_with(iommu::Config {
        flush_timeout_ms: 3_600_000,
        ..iommu::Config::default()
    });
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(8).expect("domain");
    d.set_invalidation(Invalidation::Lazy).expect("lazy");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    for _ in 0..255 {
        let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
        d.unmap(iova).expect("unmap");
    }
    let stats = read_text("/scheme/iommu/stats");
    assert_eq!(stat(&stats, "lazy_flushes"), 0, "{stats}");
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    d.unmap(iova).expect("the 256th unmap fills the queue");
    let stats = read_text("/scheme/iommu/stats");
    assert_eq!(stat(&stats, "lazy_flushes"), 1, "{stats}");
    assert_eq!(stat(&stats, "deferred_unmaps"), 256);
    assert_eq!(stat(&stats, "invalidations_strict"), 0);
}

#[test]
fn the_flush_timeout_runs_from_the_time_scheme() {
    let m = machine_with(iommu::Config::default());
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(9).expect("domain");
    d.set_invalidation(Invalidation::Lazy).expect("lazy");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let iova = d.map(buf, PAGE, MapFlags::READ_WRITE, None).expect("map");
    let armed = m.k.clock().armed();
    d.unmap(iova).expect("unmap");
    // iommud arms its flush deadline once it has no requests left: wait for that,
    // then move the clock to the deadline (moving it first would move the deadline).
    m.k.clock().wait_armed(armed + 1);
    assert_eq!(stat(&read_text("/scheme/iommu/stats"), "lazy_flushes"), 0);
    m.k.clock()
        .advance(std::time::Duration::from_millis(u64::from(
            iommu::Config::default().flush_timeout_ms,
        )));
    // The flush happens on the daemon thread when it takes the timer's event.
    while stat(&read_text("/scheme/iommu/stats"), "lazy_flushes") == 0 {
        std::thread::yield_now();
    }
    assert_eq!(stat(&read_text("/scheme/iommu/stats"), "lazy_flushes"), 1);
}

#[test]
fn growing_tables_rewrite_the_device_entry() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(10).expect("domain");
    d.assign(bdf()).expect("assign");
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let low = d
        .map(buf, PAGE, MapFlags::READ_WRITE, Some(0x10_0000))
        .expect("map");
    m.dev.dma_write(low, b"1").expect("3-level walk");
    assert_eq!(d.query().expect("q").levels, 3);
    // Beyond 39 bits: a fourth level, a new root, a new device table entry.
    let high = d
        .map(buf, PAGE, MapFlags::READ_WRITE, Some(1 << 40))
        .expect("map high");
    assert_eq!(d.query().expect("q").levels, 4);
    m.dev
        .dma_write(high, b"2")
        .expect("4-level walk through the new root");
    m.dev
        .dma_write(low, b"3")
        .expect("old mapping still reachable");
    let mut got = [0u8];
    m.k.phys().read(buf, &mut got);
    assert_eq!(&got, b"3");
}

#[test]
fn destroying_a_domain_with_devices_is_ebusy() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let ctl = IommuControl::open().expect("control");
    let d = IommuDomain::open(11).expect("domain");
    d.assign(bdf()).expect("assign");
    assert_eq!(ctl.destroy_domain(11).unwrap_err().errno, EBUSY);
    d.unassign(bdf()).expect("unassign");
    ctl.destroy_domain(11).expect("destroy");
    assert_eq!(ctl.destroy_domain(11).unwrap_err().errno, ENOENT);
}

#[test]
fn only_the_owner_changes_or_reads_a_domain() {
    let m = machine();
    let buf = m.k.phys().alloc(PAGE as usize, false).expect("ram");
    let (_owner_p, _owner_g) = m.k.enter("owner", Cred::ROOT);
    let owner = IommuDomain::open(12).expect("domain");
    let iova = owner
        .map(buf, PAGE, MapFlags::READ_WRITE, None)
        .expect("owner maps");
    let intruders = [
        (
            "unprivileged",
            Cred {
                uid: 1001,
                gid: 1001,
            },
        ),
        ("second root driver", Cred::ROOT),
    ];
    std::thread::scope(|scope| {
        for (who, cred) in intruders {
            let k = &m.k;
            scope.spawn(move || {
                let (_p, _g) = k.enter(who, cred);
                assert_eq!(
                    IommuDomain::open(12).unwrap_err().errno,
                    EACCES,
                    "{who}: another process's domain"
                );
                let ctl = IommuControl::open().expect("control");
                assert_eq!(ctl.destroy_domain(12).unwrap_err().errno, EACCES, "{who}");
                let ro = libredox::Fd::open("/scheme/iommu/domain/12", libredox::flag::O_RDONLY, 0);
                if cred.uid == 0 {
                    let fd = ro.expect("root may open it read-only");
                    let ask = |req: Request| {
                        fd.write(&req.encode()).expect("write");
                        let mut r = [0u8; 36];
                        fd.read(&mut r).expect("read");
                        Response::decode(&r).expect("decode")
                    };
                    let q = ask(Request::Query);
                    assert_eq!(({ q.status }, q.arg3), (0, 1), "{who}: QUERY answered");
                    for req in [
                        Request::Translate { iova },
                        Request::Unmap { iova },
                        Request::Map {
                            flags: MapFlags::READ_WRITE,
                            phys: 0,
                            size: PAGE,
                            iova: None,
                        },
                        Request::SetQuota { bytes: 1 },
                    ] {
                        assert_eq!({ ask(req).status }, -EACCES, "{who}: {req:?}");
                    }
                } else {
                    assert_eq!(
                        ro.err().map(|e| e.errno()),
                        Some(EACCES),
                        "{who}: not even read-only"
                    );
                }
            });
        }
    });
    assert_eq!(owner.query().expect("query").mappings, 1, "nothing changed");
    assert_eq!(owner.translate(iova).expect("the owner translates"), buf);
    owner.unmap(iova).expect("the owner unmaps");
}

#[test]
fn the_quota_limits_mapped_bytes() {
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let d = IommuDomain::open(13).expect("domain");
    d.set_quota(2 * PAGE).expect("quota");
    let buf = m.k.phys().alloc(4 * PAGE as usize, false).expect("ram");
    d.map(buf, 2 * PAGE, MapFlags::READ_WRITE, None)
        .expect("within");
    assert_eq!(
        d.map(buf, PAGE, MapFlags::READ_WRITE, None)
            .unwrap_err()
            .errno,
        ENOSPC
    );
}

#[test]
fn malformed_requests_get_errno_responses_through_the_kernel() {
    let m = machine();
    let (_p, _g) = m.k.enter("client", Cred::USER);
    let fd =
        libredox::Fd::open("/scheme/iommu/control", libredox::flag::O_RDWR, 0).expect("control");
    let mut bad = RawRequest::new(Opcode::Query, 0, 0, 0, 0);
    bad.version = 9;
    assert_eq!(fd.write(&bad.encode()).expect("accepted"), 32);
    let mut r = [0u8; 36];
    assert_eq!(fd.read(&mut r).expect("response"), 36);
    let r = Response::decode(&r).expect("decode");
    assert_eq!({ r.status }, -syscall::error::EINVAL);
}

#[test]
fn the_demo_shows_a_mapping_a_translation_and_a_blocked_rogue_dma() {
    let k = Kernel::boot();
    let (_p, _g) = k.enter("demo", Cred::ROOT);
    let mut out = String::new();
    redox_host::demo::iommu_demo(&k, &mut out).expect("demo");
    for needle in [
        "MAP phys",
        "TRANSLATE",
        "holds \"DMA through the IOMMU\"",
        "blocked (Translation(",
        "DRAIN_EVENTS: 1 event(s)",
        "00:06.0 1",
        "write not-present",
        "iommud stopped cleanly",
    ] {
        assert!(out.contains(needle), "{needle:?} missing in\n{out}");
    }
}

#[test]
fn driver_sys_allocates_through_iommud_and_the_device_dmas_there() {
    use driver_sys::dma::IommuDmaAllocator;
    let m = machine();
    let (_p, _g) = m.k.enter("driver", Cred::ROOT);
    let domain = IommuDomain::open(20).expect("domain");
    domain.assign(bdf()).expect("assign");
    let allocator = IommuDmaAllocator::new(Box::new(domain), 64).expect("allocator");
    assert!(allocator.translates());
    let buf = allocator.allocate(8192).expect("allocate");
    assert_ne!(
        buf.iova(),
        buf.phys(),
        "the device gets an IOVA from iommud"
    );
    m.dev
        .dma_write(buf.iova() + 4096, b"via driver-sys")
        .expect("dma");
    assert_eq!(&buf.as_slice()[4096..4110], b"via driver-sys");
}
