//! A simulated base `init`: boots the simulated machine from the repository's
//! real unit files and pcid-spawner config, as a Redox image that installed
//! `recipe.toml` would (redox-real.md §4.4–4.5, §5).
//!
//! * [`rootfs::Rootfs`] holds what the recipe installs; [`base_units`] adds the few
//!   base units the boot passes through (`00_runtime.target`, `00_base.target`,
//!   `00_pcid-spawner.service`), shaped as base's own.
//! * [`boot`] runs base init's sequence: the runtime target from the initfs
//!   directory, then switchroot to `/usr` and `/etc`, every unit of
//!   `/usr/lib/init.d` and `/etc/init.d` scheduled in name order and run strictly
//!   one after another ([`scheduler`]), each service with a cleared environment
//!   (its `inherit_envs`, the base environment, its `envs`) and `INIT_NOTIFY`
//!   ([`spawn`]). `scheme` services send their root capability, which init
//!   registers under the unit's name; units with unknown keys are skipped with an
//!   error.
//! * The program `pcid-spawner` is base's, simulated ([`pcid_spawner`]); every
//!   other binary maps to an in-process `run()` the caller supplies ([`Program`]).
//!
//! The initfs phase is not run: the kernel's `pci` and `acpi` schemes stand for
//! what hwd, acpid and pcid provide by then. Real init waits for readiness for
//! ever; [`InitOptions::readiness_deadline`] (off by default) bounds the waits so
//! a test reports a daemon that never signals instead of hanging.

mod pcid_spawner;
pub mod programs;
pub mod rootfs;
mod scheduler;
mod spawn;
pub mod unit;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use driver_sys::daemon::Startup;

use crate::kernel::Kernel;
use crate::kernel::description::DescKind;
use crate::kernel::wait::lock;
use crate::mock::pipe::PipeScheme;
use rootfs::{Entry, Rootfs};
use scheduler::{Scheduler, UnitStore};
use spawn::{ExitSignal, Readiness};
use unit::{Service, ServiceType};

/// An in-process program: what runs when the simulated init or pcid-spawner
/// executes a binary (its `main` after reading the environment).
pub type Program = Arc<dyn Fn(Startup) -> Result<(), String> + Send + Sync>;

/// Options of the simulated init.
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    /// Test only: give up waiting for a service's or driver's readiness after this
    /// long (reported as [`BootEvent::NotReady`] / [`BootEvent::DriverNotReady`]).
    /// `None`, as on Redox: wait for ever. A `oneshot` is waited for until it ends
    /// either way (pcid-spawner's own driver waits are the bounded ones).
    pub readiness_deadline: Option<Duration>,
}

/// What happened during the boot, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BootEvent {
    /// A service was started.
    Started {
        /// Unit file name.
        unit: String,
        /// The program path.
        path: String,
    },
    /// A `notify` service wrote its byte, a `scheme` service sent its capability
    /// (registered), or a `oneshot` ended.
    Ready {
        /// Unit file name.
        unit: String,
    },
    /// init registered a scheme from a service's capability.
    SchemeRegistered {
        /// Unit file name.
        unit: String,
        /// The scheme name from the unit.
        scheme: String,
    },
    /// A service did not become ready.
    NotReady {
        /// Unit file name.
        unit: String,
        /// Why.
        why: String,
    },
    /// A unit could not be loaded (unknown key, bad TOML) and was skipped.
    Skipped {
        /// Unit file name.
        unit: String,
        /// init's error.
        why: String,
    },
    /// A target was reached.
    TargetReached(String),
    /// pcid-spawner started a driver for a function.
    DriverStarted {
        /// The function (`bus:dev.fn`).
        function: String,
        /// The driver's path.
        path: String,
    },
    /// The driver wrote its readiness byte.
    DriverReady {
        /// The function.
        function: String,
    },
    /// The driver did not.
    DriverNotReady {
        /// The function.
        function: String,
        /// Why.
        why: String,
    },
    /// Anything else init or pcid-spawner printed as an error.
    Error(String),
}

struct Child {
    name: String,
    exit: Arc<ExitSignal>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

/// What init and its programs share.
struct Shared {
    kernel: Arc<Kernel>,
    rootfs: Rootfs,
    programs: BTreeMap<String, Program>,
    pipe: Arc<PipeScheme>,
    pipe_id: u64,
    options: InitOptions,
    env: Mutex<BTreeMap<String, String>>,
    events: Mutex<Vec<BootEvent>>,
    children: Mutex<Vec<Child>>,
}

impl Shared {
    fn event(&self, event: BootEvent) {
        lock(&self.events).push(event);
    }

    /// The base environment (`RUST_BACKTRACE=1`, and `PATH`/`LD_LIBRARY_PATH` of
    /// the current root).
    fn base_env(&self) -> BTreeMap<String, String> {
        lock(&self.env).clone()
    }

    fn program(&self, path: &str) -> Result<Program, String> {
        match self.rootfs.entry(path) {
            Some(Entry::Program(name)) => self.programs.get(name).cloned().ok_or(format!(
                "failed to execute {path}: no program {name} on this machine"
            )),
            Some(Entry::File(_)) => Err(format!("failed to execute {path}: not a program")),
            None => Err(format!("failed to execute {path}: no such file")),
        }
    }

    /// `Service::spawn` and the wait its type asks for.
    fn run_service(self: &Arc<Self>, id: &str, service: &Service) {
        // A relative cmd is looked up on PATH (`<root>/bin`).
        let path = if service.cmd.starts_with('/') {
            service.cmd.clone()
        } else {
            let bin = self.base_env().get("PATH").cloned().unwrap_or_default();
            format!("{bin}/{}", service.cmd)
        };
        // Cleared, then inherit_envs (init has none of its own), the base
        // environment, then envs.
        let mut env = self.base_env();
        env.extend(service.envs.clone());
        let args = service
            .args
            .iter()
            .map(|a| match a.strip_prefix('$') {
                Some(var) => self.base_env().get(var).cloned().unwrap_or_default(),
                None => a.clone(),
            })
            .collect();
        let name = service.cmd.rsplit('/').next().unwrap_or(&service.cmd);
        let started = match self.spawn(name, &path, args, env, None) {
            Ok(started) => started,
            Err(why) => {
                self.event(BootEvent::NotReady {
                    unit: id.to_string(),
                    why,
                });
                return;
            }
        };
        self.event(BootEvent::Started {
            unit: id.to_string(),
            path,
        });
        let unit = id.to_string();
        match &service.type_ {
            ServiceType::OneshotAsync => {}
            ServiceType::Oneshot => {
                if self.wait_exit(started) {
                    self.event(BootEvent::Ready { unit });
                } else {
                    self.event(BootEvent::NotReady {
                        unit,
                        why: "still running at the test deadline".into(),
                    });
                }
            }
            ServiceType::Notify | ServiceType::Scheme(_) => {
                let want_fd = matches!(service.type_, ServiceType::Scheme(_));
                match (self.wait_ready(&started, want_fd), &service.type_) {
                    (Readiness::Byte, _) => self.event(BootEvent::Ready { unit }),
                    (Readiness::Capability(cap), ServiceType::Scheme(scheme)) => {
                        if !matches!(cap.kind, DescKind::UserFile { .. }) {
                            self.event(BootEvent::NotReady {
                                unit,
                                why: "sent an fd that is not a scheme capability".into(),
                            });
                        } else if let Err(e) = self.kernel.register_user_scheme(scheme, cap) {
                            self.event(BootEvent::NotReady {
                                unit,
                                why: format!("registering {scheme}: {e}"),
                            });
                        } else {
                            self.event(BootEvent::SchemeRegistered {
                                unit: unit.clone(),
                                scheme: scheme.clone(),
                            });
                            self.event(BootEvent::Ready { unit });
                        }
                    }
                    (Readiness::Capability(_), _) => self.event(BootEvent::Ready { unit }),
                    (Readiness::Eof, _) => self.event(BootEvent::NotReady {
                        unit,
                        why: "exited without notifying readiness".into(),
                    }),
                    (Readiness::TimedOut, _) => self.event(BootEvent::NotReady {
                        unit,
                        why: "no readiness before the test deadline".into(),
                    }),
                }
            }
        }
    }

    fn switch_root(&self, store: &mut UnitStore, prefix: &str, etc: &str) {
        let mut env = lock(&self.env);
        env.insert("PATH".into(), format!("{prefix}/bin"));
        env.insert("LD_LIBRARY_PATH".into(), format!("{prefix}/lib"));
        store.config_dirs = vec![format!("{prefix}/lib/init.d"), format!("{etc}/init.d")];
    }
}

/// base's own units the boot passes through, as files of the simulated root
/// (shapes of base `init.initfs.d/00_runtime.target`, `init.d/00_base.target` and
/// `init.d/00_pcid-spawner.service`; the runtime target's own services are the
/// kernel's schemes here, so it requires nothing).
pub fn base_units(rootfs: &mut Rootfs) {
    rootfs.add_file(
        "/scheme/initfs/lib/init.d/00_runtime.target",
        "[unit]\ndescription = \"Runtime\"\ndefault_dependencies = false\n",
    );
    rootfs.add_file(
        "/usr/lib/init.d/00_base.target",
        "[unit]\ndescription = \"Basic services\"\nrequires_weak = [\"00_pcid-spawner.service\"]\n",
    );
    rootfs.add_file(
        "/usr/lib/init.d/00_pcid-spawner.service",
        "[unit]\ndescription = \"PCI driver spawner\"\n\n[service]\ncmd = \"pcid-spawner\"\ntype = \"oneshot\"\n",
    );
    rootfs.add_program("/usr/bin/pcid-spawner", "pcid-spawner");
}

/// A booted machine: the log of the boot, and the programs still running.
pub struct Boot {
    shared: Arc<Shared>,
    before: Vec<String>,
}

impl Boot {
    /// What happened, in order.
    pub fn events(&self) -> Vec<BootEvent> {
        lock(&self.shared.events).clone()
    }

    /// Position of the first event `pred` accepts.
    pub fn position(&self, pred: impl Fn(&BootEvent) -> bool) -> Option<usize> {
        self.events().iter().position(pred)
    }

    /// Unregisters every scheme the boot's daemons serve (they read EOF and
    /// return) and joins the programs that ended; a program still running after
    /// that (one the test keeps blocked) is named in the error.
    pub fn shutdown(self) -> Result<(), String> {
        // Every scheme that appeared since the boot began: init registered some,
        // notify daemons registered theirs themselves.
        for name in self.shared.kernel.scheme_names() {
            if !self.before.contains(&name) {
                self.shared.kernel.shutdown_scheme(&name);
            }
        }
        let children = std::mem::take(&mut *lock(&self.shared.children));
        let mut errors = Vec::new();
        for mut child in children {
            if !child.exit.wait(
                self.shared
                    .options
                    .readiness_deadline
                    .map(|d| std::time::Instant::now() + d),
            ) {
                errors.push(format!("{} is still running", child.name));
                continue;
            }
            if let Some(Ok(Err(e))) = child.thread.take().map(JoinHandle::join) {
                errors.push(format!("{}: {e}", child.name));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors.join("; "))
        }
    }
}

/// Boots `kernel` from `rootfs` as base init does (see the module documentation).
/// `programs` maps installed binary names (`iommud`, `dsmild`) to their in-process
/// `main`; `pcid-spawner` is provided.
pub fn boot(
    kernel: &Arc<Kernel>,
    rootfs: Rootfs,
    mut programs: BTreeMap<String, Program>,
    options: InitOptions,
) -> Result<Boot, String> {
    let before = kernel.scheme_names();
    let pipe = Arc::new(PipeScheme::default());
    let port = kernel
        .register_kernel_scheme("pipe", pipe.clone())
        .map_err(|e| format!("init: the pipe scheme: {e}"))?;
    let shared = Arc::new_cyclic(|me| {
        programs.insert("pcid-spawner".into(), pcid_spawner::program(me.clone()));
        Shared {
            kernel: kernel.clone(),
            rootfs,
            programs,
            pipe,
            pipe_id: port.scheme_id,
            options,
            env: Mutex::new(BTreeMap::from([("RUST_BACKTRACE".into(), "1".into())])),
            events: Mutex::new(Vec::new()),
            children: Mutex::new(Vec::new()),
        }
    });
    let mut store = UnitStore::new();
    let mut scheduler = Scheduler::new();
    shared.switch_root(&mut store, "/scheme/initfs", "/scheme/initfs/etc");
    scheduler.schedule(&mut store, &shared, "00_runtime.target");
    store.set_runtime_target("00_runtime.target");
    scheduler.step(&store, &shared);

    shared.switch_root(&mut store, "/usr", "/etc");
    let dirs: Vec<String> = store.config_dirs.clone();
    let dirs: Vec<&str> = dirs.iter().map(String::as_str).collect();
    for entry in shared.rootfs.config_for_dirs(&dirs) {
        let name = entry.rsplit('/').next().unwrap_or(&entry).to_string();
        scheduler.schedule(&mut store, &shared, &name);
    }
    scheduler.step(&store, &shared);
    Ok(Boot { shared, before })
}
