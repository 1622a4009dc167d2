//! DESIGN §6: once set up, iommud and dsmild enter the null namespace
//! (`setrens(0, 0)`, redox-real.md §7.2 step 8), so a compromised daemon can open
//! nothing new by path; what they open later (page-table pages, DMA memory) goes
//! through the memory scheme root opened before. The unmodified daemon loops run
//! in their own mocked processes, which the tests inspect and act as.

use std::sync::Arc;
use std::thread::JoinHandle;

use dsmil_tests as _;
use iommu::client::{IommuControl, IommuDomain};
use iommu::protocol::MapFlags;
use libredox::call;
use libredox::flag::{O_CLOEXEC, O_RDONLY};
use redox_host::hw::amdvi::SimAmdVi;
use redox_host::kernel::Process;
use redox_host::{Cred, Kernel};
use syscall::error::ENODEV;

const PAGE: u64 = 4096;

/// Runs `daemon` as process `name` and waits until it serves `scheme`.
fn start(
    k: &Arc<Kernel>,
    name: &str,
    scheme: &str,
    daemon: impl FnOnce() -> Result<(), String> + Send + 'static,
) -> (Arc<Process>, JoinHandle<Result<(), String>>) {
    let process = k.process(name, Cred::ROOT);
    let thread = k.spawn_in(&process, daemon);
    assert!(
        k.wait_for_scheme_while(scheme, || !thread.is_finished()),
        "{name} did not start: {:?}",
        thread.join()
    );
    (process, thread)
}

/// Acts as `process` (on this thread, until the guard drops: the daemon's
/// descriptors stay as they are) and tries a fresh open by path.
fn late_open_by(k: &Arc<Kernel>, process: &Arc<Process>, path: &str) -> Option<i32> {
    let _as_daemon = redox_host::kernel::process::enter(k, process);
    call::open(path, O_RDONLY | O_CLOEXEC, 0)
        .map(call::close)
        .err()
        .map(|e| e.errno())
}

fn stop(k: &Arc<Kernel>, scheme: &str, thread: JoinHandle<Result<(), String>>) {
    assert!(k.shutdown_scheme(scheme));
    assert_eq!(thread.join().expect("daemon thread"), Ok(()));
}

#[test]
fn iommud_serves_from_the_null_namespace() {
    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let mmio = unit.mmio();
    let (iommud, thread) = start(&k, "iommud", "iommu", move || {
        iommu::run(iommu::Config::default(), vec![mmio]).map_err(|e| e.to_string())
    });
    // Work that needs fresh page-table pages still succeeds: they come from
    // the memory root iommud opened before.
    {
        let (_client, _g) = k.enter("client", Cred::ROOT);
        let ctl = IommuControl::open().expect("control");
        let id = ctl.create_domain(None).expect("create a domain");
        let d = IommuDomain::open(id).expect("open the domain");
        let buf = k.phys().alloc(2 * PAGE as usize, false).expect("ram");
        // The domain's root and the map's lower-level tables are pages
        // allocated after startup.
        let iova = d
            .map(buf, 2 * PAGE, MapFlags::READ_WRITE, None)
            .expect("map");
        assert_eq!(d.translate(iova + 5).expect("translate"), buf + 5);
        d.unmap(iova).expect("unmap");
    }
    // Served, so past startup (the name is registered a moment before it ends).
    assert!(iommud.in_null_namespace(), "iommud entered it at startup");
    assert_eq!(
        late_open_by(&k, &iommud, "/scheme/time/4"),
        Some(ENODEV),
        "no new opens by path"
    );
    assert_eq!(
        late_open_by(&k, &iommud, "/scheme/irq"),
        Some(ENODEV),
        "no new opens by path"
    );

    stop(&k, "iommu", thread);
}

#[test]
fn dsmild_serves_from_the_null_namespace() {
    let k = Kernel::boot();
    let (dsmild, thread) = start(&k, "dsmild", "dsmil", || {
        dsmil::run(dsmil::Config::default(), dsmil::Hardware::minimal(50))
            .map_err(|e| e.to_string())
    });
    {
        let (_client, _g) = k.enter("client", Cred::ROOT);
        let fd = call::open("/scheme/dsmil/status", O_RDONLY | O_CLOEXEC, 0)
            .expect("dsmild still serves");
        let mut buf = [0u8; 4096];
        let n = call::read(fd, &mut buf).expect("read");
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.contains("temperature_celsius: 50"), "{text}");
        call::close(fd).expect("close");
    }
    // Served, so past startup (the name is registered a moment before it ends).
    assert!(dsmild.in_null_namespace(), "dsmild entered it at startup");
    assert_eq!(
        late_open_by(&k, &dsmild, "/scheme/time/4"),
        Some(ENODEV),
        "no new opens by path"
    );
    stop(&k, "dsmil", thread);
}
