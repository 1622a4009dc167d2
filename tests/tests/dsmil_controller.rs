//! The DSMIL PCI controller path end to end through the mocked kernel: dsmild's
//! `DsmilController` (driver-sys: pcid channel, MSI-X → MSI → INTx, IOMMU-mapped
//! DMA buffers) driving the simulated controller, with and without iommud and
//! the simulated AMD-Vi unit in front of it.

use std::sync::{Arc, Mutex};

use driver_sys::irq::{IrqMode, StepOutcome};
use driver_sys::pci::PciAddress;
use driver_sys::quirks::QuirkFlags;
use dsmil::controller::registers as reg;
use dsmil::controller::{ControllerConfig, DEVICE_DATA_LEN, DsmilController};
use dsmil::wire::{DEVICE_COUNT, DeviceAccess, DeviceState, QUARANTINED_TOKENS, Token};
use dsmil_tests as _;
use redox_host::boot::{self, RunningDaemon};
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::dsmil_controller::SimDsmilController;
use redox_host::hw::pci_function::{MSI_CAP_OFFSET, MSIX_CAP_OFFSET, SimFunctionSpec};
use redox_host::{ClockSource, Cred, Kernel, MachineConfig};
use syscall::error::{EACCES, EBUSY, EIO, ETIMEDOUT};

const ADDR: PciAddress = PciAddress::new(0, 6, 0);
const PAGE: usize = 4096;

// ---- log capture: what the driver (running on the test's own thread) logged ----

struct Capture;

static RECORDS: Mutex<Vec<(Option<String>, log::Level, String)>> = Mutex::new(Vec::new());
static LOGGER: Capture = Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let thread = std::thread::current().name().map(str::to_string);
        if let Ok(mut r) = RECORDS.lock() {
            r.push((thread, record.level(), record.args().to_string()));
        }
    }
    fn flush(&self) {}
}

fn capture_logs() {
    let _ = log::set_logger(&LOGGER);
    log::set_max_level(log::LevelFilter::Info);
}

/// Warnings and errors logged on this thread so far.
fn my_warnings() -> Vec<String> {
    let me = std::thread::current().name().map(str::to_string);
    RECORDS
        .lock()
        .map(|r| {
            r.iter()
                .filter(|(t, level, _)| *t == me && *level <= log::Level::Warn)
                .map(|(_, _, m)| m.clone())
                .collect()
        })
        .unwrap_or_default()
}

// ---- machines ----

struct Machine {
    k: Arc<Kernel>,
    ctrl: SimDsmilController,
    unit: Option<Arc<SimAmdVi>>,
    _iommud: Option<RunningDaemon>,
}

/// A machine whose clock moves only when a test advances it: a command's
/// completion racing its timeout (100 ms by default) on a loaded host would
/// otherwise decide a test's outcome.
fn machine(spec: SimFunctionSpec, with_iommu: bool) -> Machine {
    capture_logs();
    let k = Kernel::boot_with(MachineConfig {
        clock: ClockSource::Manual,
        ..MachineConfig::default()
    });
    let ctrl = SimDsmilController::new(&k, spec).expect("controller");
    let (unit, iommud) = if with_iommu {
        let unit = SimAmdVi::new(&k);
        unit.attach(ctrl.function());
        let d = boot::iommud(&k, iommu::Config::default(), &unit);
        (Some(unit), Some(d))
    } else {
        (None, None)
    };
    Machine {
        k,
        ctrl,
        unit,
        _iommud: iommud,
    }
}

fn controller_spec() -> SimFunctionSpec {
    SimDsmilController::spec(ADDR, 4)
}

fn config() -> ControllerConfig {
    ControllerConfig {
        // No quirk files on the host: only the built-in table and what a test adds.
        quirks_dir: Some(std::env::temp_dir().join("dsmil-controller-test-no-quirks")),
        ..ControllerConfig::default()
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

fn token(raw: u16) -> Token {
    Token::new(raw).expect("token")
}

/// The device table the driver decoded is the simulated controller's: 108
/// devices in token order, exactly the five quarantined ones flagged.
fn assert_full_table(m: &Machine, ctrl: &mut DsmilController) {
    let devices = ctrl.read_device_table().expect("device table");
    assert_eq!(devices.len(), DEVICE_COUNT);
    for (d, t) in devices.iter().zip(Token::all()) {
        assert_eq!(d.device_id, t.raw());
        let quarantined = QUARANTINED_TOKENS.contains(&t.raw());
        assert_eq!(d.is_quarantined, quarantined, "{t}");
        if quarantined {
            assert_eq!(
                (d.state, d.access),
                (DeviceState::Quarantined, DeviceAccess::None)
            );
        } else {
            assert_eq!((d.state, d.access), (DeviceState::Safe, DeviceAccess::Read));
            assert_eq!(d.last_response, 0x5000_0000 | u32::from(t.raw()));
        }
        assert_eq!(d.thermal_celsius, 45);
    }
    let flagged: Vec<u16> = devices
        .iter()
        .filter(|d| d.is_quarantined)
        .map(|d| d.device_id)
        .collect();
    assert_eq!(flagged, QUARANTINED_TOKENS);
    assert_eq!(m.ctrl.register(reg::XFER_LEN) as usize, DEVICE_COUNT * 40);
}

#[test]
fn device_table_dmad_through_the_iommu_completes_by_msix() {
    let m = machine(controller_spec(), true);
    let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
    let mut ctrl = DsmilController::connect(&ADDR, &config()).expect("bind");
    assert_eq!(ctrl.interrupt_mode(), IrqMode::MsiX);
    assert!(!ctrl.interrupts().is_degraded());
    assert!(ctrl.dma_translated(), "buffers are mapped through iommud");
    let f = m.ctrl.function();
    let msix_control = f.config_read_u32(u16::from(MSIX_CAP_OFFSET)).expect("cfg");
    assert!(msix_control & (1 << 31) != 0, "MSI-X enabled");
    let unit = m.unit.as_ref().expect("unit");
    let walks_before = unit
        .stats
        .translations
        .load(std::sync::atomic::Ordering::Relaxed);

    assert_full_table(&m, &mut ctrl);

    // The DMA went through the IOMMU, to the IOVA the allocator handed out,
    // and the completion came as an MSI-X message the driver's vector received.
    assert!(
        unit.stats
            .translations
            .load(std::sync::atomic::Ordering::Relaxed)
            > walks_before
    );
    let iova = ctrl.table_buffer_iova();
    let programmed = u64::from(m.ctrl.register(reg::DMA_ADDR_LO))
        | (u64::from(m.ctrl.register(reg::DMA_ADDR_HI)) << 32);
    assert_eq!(programmed, iova);
    assert!(
        f.stats
            .interrupts
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
    let stats = ctrl.stats();
    assert_eq!((stats.commands, stats.errors, stats.timeouts), (1, 0, 0));
    assert!(stats.interrupts >= 1);
    assert_eq!(
        m.ctrl.register(reg::IRQ_STATUS),
        0,
        "acknowledged at the device"
    );

    // Device data: a live block, re-read after the value changed.
    let t = token(0x8001);
    assert_eq!(
        ctrl.read_device_data(t).expect("data"),
        m.ctrl.device_data(t)
    );
    m.ctrl.set_value(t, 0xABCD_0123);
    let data = ctrl.read_device_data(t).expect("data again");
    assert_eq!(data.len(), DEVICE_DATA_LEN);
    assert_eq!(&data[..4], &0xABCD_0123u32.to_le_bytes());
    assert_eq!(data, m.ctrl.device_data(t));

    // Quarantined tokens never reach the device.
    let commands = m
        .ctrl
        .stats()
        .commands
        .load(std::sync::atomic::Ordering::Relaxed);
    for raw in QUARANTINED_TOKENS {
        assert_eq!(ctrl.read_device_data(token(raw)).unwrap_err().errno, EACCES);
    }
    assert_eq!(
        m.ctrl
            .stats()
            .commands
            .load(std::sync::atomic::Ordering::Relaxed),
        commands
    );
    assert!(my_warnings().is_empty(), "{:?}", my_warnings());
}

#[test]
fn without_an_iommu_scheme_dma_is_passthrough_with_a_warning() {
    let m = machine(controller_spec(), false);
    let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
    let mut ctrl = DsmilController::connect(&ADDR, &config()).expect("bind");
    assert!(!ctrl.dma_translated());
    assert_eq!(ctrl.interrupt_mode(), IrqMode::MsiX);
    let warnings = my_warnings();
    assert!(
        warnings.iter().any(|w| w.contains("passthrough")),
        "driver-sys warns: {warnings:?}"
    );
    assert!(
        warnings.iter().any(|w| w.contains("no IOMMU isolation")),
        "the controller warns: {warnings:?}"
    );
    assert_full_table(&m, &mut ctrl);
    let t = token(0x806B);
    assert_eq!(
        ctrl.read_device_data(t).expect("data"),
        m.ctrl.device_data(t)
    );
}

#[test]
fn without_msix_completion_falls_back_to_msi_then_intx() {
    // The NO_MSIX quirk: driver-sys skips MSI-X and takes MSI.
    {
        let m = machine(controller_spec(), true);
        let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
        let cfg = ControllerConfig {
            extra_quirks: QuirkFlags::NO_MSIX,
            ..config()
        };
        let mut ctrl = DsmilController::connect(&ADDR, &cfg).expect("bind");
        assert_eq!(ctrl.interrupt_mode(), IrqMode::Msi);
        let first = &ctrl.interrupts().steps[0];
        assert_eq!(first.mode, IrqMode::MsiX);
        assert!(
            matches!(first.outcome, StepOutcome::SkippedByQuirk(_)),
            "{first:?}"
        );
        let f = m.ctrl.function();
        let msi = f.config_read_u32(u16::from(MSI_CAP_OFFSET)).expect("cfg");
        assert!(msi & (1 << 16) != 0, "MSI enabled");
        let msix = f.config_read_u32(u16::from(MSIX_CAP_OFFSET)).expect("cfg");
        assert!(msix & (1 << 31) == 0, "MSI-X left off");
        assert_full_table(&m, &mut ctrl);
        assert!(ctrl.stats().interrupts >= 1);
    }
    // A function without an MSI-X capability at all.
    {
        let mut spec = controller_spec();
        spec.msix = None;
        let m = machine(spec, true);
        let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
        let mut ctrl = DsmilController::connect(&ADDR, &config()).expect("bind");
        assert_eq!(ctrl.interrupt_mode(), IrqMode::Msi);
        assert_full_table(&m, &mut ctrl);
    }
    // Neither MSI-X nor MSI allowed: the legacy INTx line.
    {
        let m = machine(controller_spec(), true);
        let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
        let cfg = ControllerConfig {
            extra_quirks: QuirkFlags::NO_MSIX | QuirkFlags::NO_MSI,
            ..config()
        };
        let mut ctrl = DsmilController::connect(&ADDR, &cfg).expect("bind");
        assert_eq!(ctrl.interrupt_mode(), IrqMode::Intx);
        assert_full_table(&m, &mut ctrl);
    }
}

#[test]
fn rogue_dma_is_blocked_by_the_iommu_and_the_driver_gets_eio() {
    let m = machine(controller_spec(), true);
    let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
    let mut ctrl = DsmilController::connect(&ADDR, &config()).expect("bind");
    // A canary page of RAM nobody mapped for the device.
    let canary = m.k.phys().alloc(PAGE, false).expect("ram");
    assert!(m.k.phys().fill(canary, PAGE, 0xCC));
    m.ctrl.inject_rogue_dma(canary);
    assert_eq!(ctrl.read_device_table().unwrap_err().errno, EIO);

    let mut page = vec![0u8; PAGE];
    assert!(m.k.phys().read(canary, &mut page));
    assert!(page.iter().all(|&b| b == 0xCC), "canary intact");
    assert_eq!(
        m.ctrl
            .stats()
            .dma_faults
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    let unit = m.unit.as_ref().expect("unit");
    assert!(unit.stats.faults.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    let faults = read_text("/scheme/iommu/faults");
    assert!(
        faults.contains(&format!(
            "00:06.0 {} {canary:#x} write",
            ctrl.iommu_domain().expect("translated")
        )),
        "the IOMMU logged the fault: {faults}"
    );
    assert!(
        my_warnings()
            .iter()
            .any(|w| w.contains(&format!("DMA blocked at bus address {canary:#x}"))),
        "{:?}",
        my_warnings()
    );
    assert_eq!(ctrl.stats().errors, 1);
    // The next command, aimed at the driver's own buffer, works.
    assert_full_table(&m, &mut ctrl);
}

#[test]
fn a_device_that_never_completes_times_out_and_a_short_table_is_eio() {
    let m = machine(controller_spec(), false);
    let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
    let cfg = ControllerConfig {
        command_timeout_ms: 20,
        ..config()
    };
    let mut ctrl = DsmilController::connect(&ADDR, &cfg).expect("bind");
    // A short transfer is refused, not decoded.
    m.ctrl.set_table_entries(100);
    assert_eq!(ctrl.read_device_table().unwrap_err().errno, EIO);
    m.ctrl.set_table_entries(DEVICE_COUNT);
    assert_full_table(&m, &mut ctrl);

    m.ctrl.set_unresponsive(true);
    // The deadline passes when the clock is moved past it, once the driver set it.
    let clock = m.k.clock().clone();
    let armed = clock.armed();
    let mover = std::thread::spawn(move || {
        clock.wait_armed(armed + 1);
        clock.advance(std::time::Duration::from_millis(20));
    });
    assert_eq!(ctrl.read_device_table().unwrap_err().errno, ETIMEDOUT);
    mover.join().expect("clock mover");
    assert_eq!(ctrl.stats().timeouts, 1);
    // Still working on it: the driver does not pile another command on top.
    assert_eq!(
        ctrl.read_device_data(token(0x8000)).unwrap_err().errno,
        EBUSY
    );
}

/// dsmild with the controller as the source of device data blocks: a client's
/// READ_DEVICE carries the block the controller DMA'd (through the IOMMU).
#[test]
fn dsmild_read_sessions_capture_blocks_dmad_by_the_controller() {
    let m = machine(controller_spec(), true);
    let platform = redox_host::hw::smm::SimulatedDsmil::new(40);
    let mut hardware = platform.hardware();
    let config = dsmil::Config::default();
    let scheme = config.scheme_name.clone();
    // The controller is bound inside dsmild's process: its fds are dsmild's.
    let daemon = m.k.spawn("dsmild", Cred::ROOT, move || {
        let ctrl = DsmilController::connect(&ADDR, &self::config()).map_err(|e| e.to_string())?;
        hardware.device_memory = Some(Box::new(ctrl));
        dsmil::run(config, hardware).map_err(|e| e.to_string())
    });
    assert!(
        m.k.wait_for_scheme_while(&scheme, || !daemon.is_finished()),
        "dsmild ended: {:?}",
        daemon.join()
    );
    let t = token(0x8002);
    m.ctrl.set_value(t, 0xC0DE_8002);
    let commands = m
        .ctrl
        .stats()
        .commands
        .load(std::sync::atomic::Ordering::Relaxed);
    {
        let (_p, _g) = m.k.enter("client", Cred::USER);
        let ctl = dsmil::client::fast::ControlChannel::open(format!("/scheme/{scheme}"))
            .expect("control");
        let reply = ctl.read_device(t).expect("READ_DEVICE");
        // value (4) + record (40) + block (700)
        assert_eq!(reply.len(), 4 + 40 + DEVICE_DATA_LEN);
        assert_eq!(&reply[44..], m.ctrl.device_data(t).as_slice());
        assert_eq!(&reply[44..48], &0xC0DE_8002u32.to_le_bytes());
    }
    assert!(
        m.ctrl
            .stats()
            .commands
            .load(std::sync::atomic::Ordering::Relaxed)
            > commands
    );
    m.k.shutdown_scheme(&scheme);
    assert_eq!(daemon.join().expect("dsmild thread"), Ok(()));
}

#[test]
fn a_squatted_domain_id_does_not_capture_dsmild() {
    let m = machine(controller_spec(), true);
    // 0x0D5A was dsmild's fixed domain id: another process takes it first.
    let (_sp, _sg) = m.k.enter(
        "squatter",
        Cred {
            uid: 1000,
            gid: 1000,
        },
    );
    let squat = iommu::client::IommuDomain::open(0x0D5A).expect("a free id is created");
    let (_p, _g) = m.k.enter("dsmild", Cred::ROOT);
    let mut ctrl = DsmilController::connect(&ADDR, &config()).expect("bind");
    let id = ctrl.iommu_domain().expect("translated");
    assert_ne!(id, 0x0D5A, "iommud handed dsmild an id of its own");
    assert_full_table(&m, &mut ctrl);
    drop(_g);
    assert_eq!(
        squat.query().expect("query").mappings,
        0,
        "the squatter got nothing"
    );
}
