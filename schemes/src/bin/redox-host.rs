//! `redox-host`: the simulated Redox machine on Linux.
//!
//! * `redox-host demo` boots it, starts the daemons, and shows them answering.
//! * `redox-host mount <dir>` boots it, starts dsmild and iommud, and exposes `/scheme` at
//!   `<dir>` through FUSE until Ctrl-C (or SIGTERM), then unmounts cleanly; if
//!   someone else unmounts `<dir>` first, it notices, stops the daemons and exits 0.

use std::path::Path;
use std::process::ExitCode;

use redox_host as _;

/// Blocks SIGINT and SIGTERM in this thread — and so in every thread started
/// after it — so they can be taken synchronously with `sigwait`.
fn block_stop_signals() -> libc::sigset_t {
    // SAFETY: sigset manipulation on a local, zero-initialised set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    }
}

/// How often `mount` looks whether its mount point was unmounted from outside
/// (between two looks it sleeps in `sigtimedwait`, so a signal ends it at once).
const UNMOUNT_CHECK_MS: i64 = 200;

/// What ended `redox-host mount`.
enum Stop {
    /// SIGINT or SIGTERM.
    Signal(i32),
    /// The mount point was unmounted by someone else.
    UnmountedOutside,
}

/// Waits for SIGINT/SIGTERM, or for `mounted`'s session to end on its own.
fn wait_for_stop(set: &libc::sigset_t, mounted: &redox_host::fuse::Mounted) -> Stop {
    let timeout = libc::timespec {
        tv_sec: 0,
        tv_nsec: UNMOUNT_CHECK_MS * 1_000_000,
    };
    loop {
        // SAFETY: `set` and `timeout` are initialised; a null info pointer is allowed.
        let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &timeout) };
        if sig > 0 {
            return Stop::Signal(sig);
        }
        if mounted.session_ended() {
            return Stop::UnmountedOutside;
        }
    }
}

fn mount(dir: &Path) -> ExitCode {
    // Before any thread exists, so all of them inherit the mask.
    let signals = block_stop_signals();
    let kernel = redox_host::Kernel::boot();
    // The simulated platform (SMM firmware, thermal sensor) outlives dsmild.
    let sim = redox_host::hw::smm::SimulatedDsmil::new(47);
    let dsmild = redox_host::boot::dsmild_simulated(&kernel, dsmil::Config::default(), &sim);
    // iommud in front of the simulated AMD-Vi unit, so `<dir>/iommu` is there too.
    let amdvi = redox_host::hw::amdvi::SimAmdVi::new(&kernel);
    let iommud = redox_host::boot::iommud(&kernel, iommu::Config::default(), &amdvi);
    let mounted = match redox_host::fuse::mount(kernel.clone(), dir) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("redox-host mount: cannot mount {}: {e}", dir.display());
            if let Some(why) = redox_host::fuse::unavailable_reason() {
                eprintln!("redox-host mount: {why}");
            }
            return ExitCode::FAILURE;
        }
    };
    println!(
        "redox-host: /scheme ({}) mounted at {}; Ctrl-C to unmount",
        kernel.scheme_names().join(", "),
        dir.display()
    );
    match wait_for_stop(&signals, &mounted) {
        Stop::Signal(sig) => eprintln!("redox-host: signal {sig}, unmounting {}", dir.display()),
        Stop::UnmountedOutside => eprintln!(
            "redox-host: {} was unmounted from outside, stopping",
            dir.display()
        ),
    }
    let mut code = ExitCode::SUCCESS;
    if let Err(e) = mounted.unmount() {
        eprintln!("redox-host mount: unmount {}: {e}", dir.display());
        code = ExitCode::FAILURE;
    }
    for daemon in [dsmild, iommud] {
        let name = daemon.scheme().to_string();
        if let Err(e) = daemon.stop() {
            eprintln!("redox-host mount: {name}: {e}");
            code = ExitCode::FAILURE;
        }
    }
    code
}

fn main() -> ExitCode {
    // The daemons' warnings on stderr, as redox-log formats them on Redox.
    let _ = redox_log::RedoxLogger::new()
        .with_output(
            redox_log::OutputBuilder::stderr()
                .with_filter(log::LevelFilter::Warn)
                .build(),
        )
        .enable();
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("demo") => match redox_host::demo::run() {
            Ok(report) => {
                print!("{report}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("redox-host demo: {e}");
                ExitCode::FAILURE
            }
        },
        Some("mount") if args.len() == 3 => mount(Path::new(&args[2])),
        _ => {
            eprintln!("usage: redox-host demo\n       redox-host mount <dir>");
            ExitCode::from(2)
        }
    }
}
