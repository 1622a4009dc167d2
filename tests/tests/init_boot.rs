//! The simulated machine booted by the simulated base init from the repository's
//! real unit files and pcid-spawner config (as `recipe.toml` installs them):
//! iommud is registered by init from its capability before pcid-spawner starts
//! drivers; dsmild signals readiness under pcid-spawner and as a service; a
//! driver that never signals is reported, not waited on for ever.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use driver_sys::daemon::InitNotify;
use driver_sys::pci::PciAddress;
use libredox::call;
use libredox::flag::O_RDONLY;
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::hw::dsmil_controller::SimDsmilController;
use redox_host::hw::pci_function::{SimFunctionSpec, SimPciFunction};
use redox_host::hw::smm::SimulatedDsmil;
use redox_host::init::rootfs::Rootfs;
use redox_host::init::{self, Boot, BootEvent, InitOptions, Program};
use redox_host::{Cred, Kernel};

const CONTROLLER: PciAddress = PciAddress::new(0, 6, 0);
/// Generous: only a daemon that never signals ever reaches it.
const DEADLINE: Duration = Duration::from_secs(20);

fn rootfs() -> Rootfs {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("repo");
    let mut fs = Rootfs::from_recipe(repo).expect("recipe installs");
    init::base_units(&mut fs);
    fs
}

fn cat(path: &str) -> String {
    let fd = call::open(path, O_RDONLY, 0).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match call::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => panic!("read {path}: {e}"),
        }
    }
    let _ = call::close(fd);
    String::from_utf8_lossy(&out).into_owned()
}

fn at(boot: &Boot, what: &str, pred: impl Fn(&BootEvent) -> bool) -> usize {
    boot.position(pred)
        .unwrap_or_else(|| panic!("no {what} in {:#?}", boot.events()))
}

fn assert_clean(boot: &Boot) {
    for e in boot.events() {
        assert!(
            !matches!(
                e,
                BootEvent::NotReady { .. }
                    | BootEvent::Skipped { .. }
                    | BootEvent::Error(_)
                    | BootEvent::DriverNotReady { .. }
            ),
            "{e:?} in {:#?}",
            boot.events()
        );
    }
}

fn options() -> InitOptions {
    InitOptions {
        readiness_deadline: Some(DEADLINE),
    }
}

#[test]
fn boots_from_the_real_units_with_the_dsmil_pci_function() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let ctrl = SimDsmilController::new(&k, SimDsmilController::spec(CONTROLLER, 4)).expect("ctrl");
    let unit = SimAmdVi::new(&k);
    unit.attach(ctrl.function());
    let programs = init::programs::simulated_machine(&sim, k.phys(), &unit);
    let boot = init::boot(&k, rootfs(), programs, options()).expect("boot");
    assert_clean(&boot);

    let iommu = at(&boot, "iommu registered by init", |e| {
        matches!(e, BootEvent::SchemeRegistered { unit, scheme }
            if unit == "00_0iommud.service" && scheme == "iommu")
    });
    let spawner = at(
        &boot,
        "pcid-spawner started",
        |e| matches!(e, BootEvent::Started { unit, .. } if unit == "00_pcid-spawner.service"),
    );
    assert!(
        iommu < spawner,
        "iommud ready before pcid-spawner starts drivers"
    );
    let driver = at(
        &boot,
        "dsmild under pcid-spawner",
        |e| matches!(e, BootEvent::DriverStarted { path, .. } if path == "/usr/lib/drivers/dsmild"),
    );
    let driver_ready = at(
        &boot,
        "dsmild's readiness byte",
        |e| matches!(e, BootEvent::DriverReady { function } if function == &CONTROLLER.to_string()),
    );
    let service = at(
        &boot,
        "the dsmild service",
        |e| matches!(e, BootEvent::Started { unit, .. } if unit == "20_dsmild.service"),
    );
    let service_ready = at(
        &boot,
        "the dsmild service ready",
        |e| matches!(e, BootEvent::Ready { unit } if unit == "20_dsmild.service"),
    );
    assert!(spawner < driver && driver < driver_ready && driver_ready < service);
    assert!(service < service_ready);

    // Both daemons answer.
    {
        let (_me, _g) = k.enter("client", Cred::ROOT);
        let status = cat("/scheme/dsmil/status");
        assert!(status.contains("state: running"), "{status}");
        assert!(status.contains("temperature_celsius: 45"), "{status}");
        let stats = cat("/scheme/iommu/stats");
        assert!(!stats.is_empty());
    }
    boot.shutdown().expect("clean shutdown");
}

#[test]
fn boots_the_smi_service_on_a_laptop_without_the_pci_function() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(52);
    let unit = SimAmdVi::new(&k);
    let programs = init::programs::simulated_machine(&sim, k.phys(), &unit);
    let boot = init::boot(&k, rootfs(), programs, options()).expect("boot");
    assert_clean(&boot);
    assert!(
        boot.position(|e| matches!(e, BootEvent::DriverStarted { .. }))
            .is_none(),
        "no function, no driver"
    );
    at(
        &boot,
        "the dsmild service ready",
        |e| matches!(e, BootEvent::Ready { unit } if unit == "20_dsmild.service"),
    );
    {
        let (_me, _g) = k.enter("client", Cred::USER);
        let thermal = cat("/scheme/dsmil/thermal");
        assert!(thermal.contains("temperature_celsius: 52"), "{thermal}");
        let fd = call::open("/scheme/dsmil/device/0x8001", O_RDONLY, 0).expect("device read");
        let mut chunk = [0u8; 256];
        assert_eq!(call::read(fd, &mut chunk), Ok(256));
    }
    assert!(sim.firmware.reads(0x8001) > 0, "through the SMI path");
    boot.shutdown().expect("clean shutdown");
}

/// A driver that takes its channel and then never writes its readiness byte,
/// until the test lets it go.
fn silent_driver(release: Arc<Mutex<mpsc::Receiver<()>>>) -> Program {
    Arc::new(move |startup| {
        let _notify = InitNotify::from_startup(&startup, "silent");
        let _ = release.lock().map(|r| r.recv());
        Ok(())
    })
}

#[test]
fn a_driver_that_never_signals_is_reported_and_the_boot_goes_on() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let unit = SimAmdVi::new(&k);
    let other = PciAddress::new(0, 7, 0);
    let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(other, 2)).expect("function");
    k.pci().add_function(f).expect("plug in");
    let mut fs = rootfs();
    fs.add_file(
        "/etc/pcid.d/silent.toml",
        "[[drivers]]\nname = \"never ready\"\nvendor = 0x1028\ndevice = 0xD511\ncommand = [\"silent\"]\n",
    );
    fs.add_program("/usr/lib/drivers/silent", "silent");
    let (release, wait) = mpsc::channel();
    let mut programs = init::programs::simulated_machine(&sim, k.phys(), &unit);
    programs.insert("silent".into(), silent_driver(Arc::new(Mutex::new(wait))));
    let boot = init::boot(
        &k,
        fs,
        programs,
        InitOptions {
            // Every wait shares it, so it must leave the real daemons room to
            // start on a loaded machine; only the silent driver ever reaches it.
            readiness_deadline: Some(Duration::from_secs(5)),
        },
    )
    .expect("boot");
    let silent = at(&boot, "the silent driver reported", |e| {
        matches!(e, BootEvent::DriverNotReady { function, why }
            if function == &other.to_string() && why.contains("deadline"))
    });
    let service = at(
        &boot,
        "the boot went on",
        |e| matches!(e, BootEvent::Ready { unit } if unit == "20_dsmild.service"),
    );
    assert!(silent < service);
    drop(release);
    boot.shutdown().expect("clean shutdown");
}

#[test]
fn unknown_keys_skip_the_unit_and_a_byte_is_no_capability() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let unit = SimAmdVi::new(&k);
    let mut fs = rootfs();
    // `after` is systemd's, not base's: init refuses the whole unit.
    fs.add_file(
        "/etc/init.d/30_bad.service",
        "[unit]\nafter = [\"00_base.target\"]\n[service]\ncmd = \"iommud\"\ntype = \"notify\"\n",
    );
    // A scheme service that writes a byte instead of sending its capability: the
    // pipe keeps fds apart from bytes, so init never gets one.
    fs.add_file(
        "/etc/init.d/40_bytes.service",
        "[unit]\n[service]\ncmd = \"bytes\"\ntype = { scheme = \"bytes\" }\n",
    );
    fs.add_program("/usr/bin/bytes", "bytes");
    let mut programs: BTreeMap<String, Program> =
        init::programs::simulated_machine(&sim, k.phys(), &unit);
    programs.insert(
        "bytes".into(),
        Arc::new(|startup| {
            InitNotify::from_startup(&startup, "bytes")
                .ready()
                .map_err(|e| e.to_string())
        }),
    );
    let boot = init::boot(&k, fs, programs, options()).expect("boot");
    at(
        &boot,
        "the bad unit skipped",
        |e| matches!(e, BootEvent::Skipped { unit, why } if unit == "30_bad.service" && why.contains("after")),
    );
    at(
        &boot,
        "the byte-writing scheme daemon not ready",
        |e| matches!(e, BootEvent::NotReady { unit, .. } if unit == "40_bytes.service"),
    );
    assert!(!k.scheme_names().contains(&"bytes".to_string()));
    boot.shutdown().expect("clean shutdown");
}

#[test]
fn requires_weak_runs_a_later_named_unit_first_one_at_a_time() {
    let k = Kernel::boot();
    let sim = SimulatedDsmil::new(45);
    let unit = SimAmdVi::new(&k);
    let mut fs = rootfs();
    // 05_first names 30_second: init queues 05 first (name order) but moves it
    // behind 30 while 30 is still queued.
    fs.add_file(
        "/etc/init.d/05_first.service",
        "[unit]\nrequires_weak = [\"30_second.service\"]\n[service]\ncmd = \"first\"\ntype = \"notify\"\n",
    );
    fs.add_file(
        "/etc/init.d/30_second.service",
        "[unit]\n[service]\ncmd = \"second\"\ntype = \"notify\"\nenvs = { WHO = \"second\" }\n",
    );
    fs.add_program("/usr/bin/first", "first");
    fs.add_program("/usr/bin/second", "second");
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut programs = init::programs::simulated_machine(&sim, k.phys(), &unit);
    for name in ["first", "second"] {
        let order = order.clone();
        programs.insert(
            name.into(),
            Arc::new(move |startup: driver_sys::daemon::Startup| {
                // What init gave it: a cleared environment plus the unit's envs.
                let who = startup.var("WHO").unwrap_or(name).to_string();
                assert!(startup.var("PATH").is_some_and(|p| p == "/usr/bin"));
                if let Ok(mut o) = order.lock() {
                    o.push(who);
                }
                InitNotify::from_startup(&startup, name)
                    .ready()
                    .map_err(|e| e.to_string())
            }),
        );
    }
    let boot = init::boot(&k, fs, programs, options()).expect("boot");
    assert_clean(&boot);
    assert_eq!(*order.lock().expect("order"), ["second", "first"]);
    let second = at(
        &boot,
        "30 ready",
        |e| matches!(e, BootEvent::Ready { unit } if unit == "30_second.service"),
    );
    let first = at(
        &boot,
        "05 started",
        |e| matches!(e, BootEvent::Started { unit, .. } if unit == "05_first.service"),
    );
    assert!(
        second < first,
        "strictly one after another: 30 was ready before 05 started"
    );
    boot.shutdown().expect("clean shutdown");
}

#[test]
fn a_missing_or_bad_init_notify_is_no_panic_and_no_waiter() {
    use driver_sys::daemon::{INIT_NOTIFY, Startup};
    let none = Startup::new(Vec::new(), Vec::new());
    assert!(!InitNotify::from_startup(&none, "test").is_awaited());
    let bad = Startup::new(Vec::new(), [(INIT_NOTIFY.to_string(), "pipe".to_string())]);
    assert!(!InitNotify::from_startup(&bad, "test").is_awaited());
    // Nobody waits: being ready is a no-op, not an error.
    assert_eq!(InitNotify::none().ready(), Ok(()));
}
