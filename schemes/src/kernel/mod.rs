//! The mocked Redox kernel: namespace, processes, descriptions, scheme IPC, events.
//!
//! One [`Kernel`] is one simulated machine. Tests boot one each, so tests running in
//! parallel threads never see each other's schemes.

pub mod call;
pub mod description;
pub mod event;
pub mod fdpass;
pub mod flags;
pub mod kscheme;
pub mod process;
pub mod syscall;
pub mod user_scheme;
pub mod wait;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ::syscall::error::{EEXIST, Error, Result};

use crate::hw::ivrs::IvmdUnity;
use crate::mock::acpi::{AcpiScheme, AcpiTables};
use crate::mock::clock::Clock;
pub use crate::mock::clock::ClockSource;
use crate::mock::phys::{PhysLayout, RamOrder};
use crate::mock::{
    irq::IrqScheme, memory::MemoryScheme, pci::PciScheme, phys::PhysArena, time::TimeScheme,
};
use description::{DescKind, Description};
use event::EventHub;
use kscheme::{EventPort, KernelScheme};
pub use process::{Context, Cred, EnterGuard, Process};
use wait::{Waitpoint, lock};

/// What a namespace name resolves to.
#[derive(Clone)]
pub(crate) enum NsEntry {
    /// A userspace scheme: the description of its root (what `register_scheme_to_ns` got).
    User(Arc<Description>),
    /// A scheme of the kernel itself.
    Kernel {
        scheme: Arc<dyn KernelScheme>,
        id: u64,
    },
}

/// Size of the simulated machine.
#[derive(Clone, Debug)]
pub struct MachineConfig {
    /// Number of CPUs (each with its own interrupt vectors).
    pub cpus: usize,
    /// Bytes of simulated RAM below 4 GiB.
    pub low_memory: usize,
    /// Bytes of simulated RAM above 4 GiB.
    pub high_memory: usize,
    /// Which RAM the kernel's frame allocator serves first (Redox promises no order).
    pub ram_order: RamOrder,
    /// A firmware-reserved range `(base, len)` outside RAM that every device must
    /// reach untranslated: `physical@` maps it, and the IVRS reports it as an IVMD
    /// unity range (page aligned; `None` = the firmware reserves nothing).
    pub reserved_memory: Option<(u64, usize)>,
    /// Where the monotonic clock's time comes from: the host's clock (default, as a
    /// real machine) or advances only ([`ClockSource::Manual`], for tests whose
    /// outcome must not depend on how fast the host runs).
    pub clock: ClockSource,
}

impl Default for MachineConfig {
    fn default() -> Self {
        Self {
            cpus: 4,
            low_memory: 64 << 20,
            high_memory: 512 << 20,
            ram_order: RamOrder::LowFirst,
            reserved_memory: None,
            clock: ClockSource::Host,
        }
    }
}

/// One simulated machine's kernel.
pub struct Kernel {
    ids: AtomicU64,
    pids: AtomicUsize,
    namespace: Mutex<HashMap<String, NsEntry>>,
    namespace_changed: Waitpoint,
    pub(crate) hub: Arc<EventHub>,
    clock: Arc<Clock>,
    phys: Arc<PhysArena>,
    irq: Arc<IrqScheme>,
    pci: Arc<PciScheme>,
    acpi: Arc<AcpiTables>,
    config: MachineConfig,
}

impl Kernel {
    /// Boots a machine of the default size.
    pub fn boot() -> Arc<Kernel> {
        Self::boot_with(MachineConfig::default())
    }

    /// Boots a machine: RAM, and the schemes `memory`, `irq`, `pci`, `acpi`, `time`.
    pub fn boot_with(config: MachineConfig) -> Arc<Kernel> {
        let hub = Arc::new(EventHub::default());
        let clock = Arc::new(Clock::with_source(config.clock));
        let phys = Arc::new(PhysArena::with_layout(&PhysLayout {
            low: config.low_memory,
            high: config.high_memory,
            order: config.ram_order,
            reserved: config.reserved_memory,
        }));
        let ids = AtomicU64::new(1);
        let irq_id = ids.fetch_add(1, Ordering::Relaxed);
        let time_id = ids.fetch_add(1, Ordering::Relaxed);
        let mem_id = ids.fetch_add(1, Ordering::Relaxed);
        let pci_id = ids.fetch_add(1, Ordering::Relaxed);
        let acpi_id = ids.fetch_add(1, Ordering::Relaxed);
        let pci = Arc::new(PciScheme::new());
        let unity = config
            .reserved_memory
            .filter(|&(base, len)| phys.kind(base, len).is_some())
            .map(|(start, len)| IvmdUnity {
                start,
                len: len as u64,
            });
        let acpi = Arc::new(AcpiTables::new(pci.clone(), unity.into_iter().collect()));
        let irq = Arc::new(IrqScheme::new(
            config.cpus,
            EventPort {
                hub: hub.clone(),
                scheme_id: irq_id,
            },
        ));
        let time = TimeScheme::new(
            clock.clone(),
            EventPort {
                hub: hub.clone(),
                scheme_id: time_id,
            },
        );
        let memory = Arc::new(MemoryScheme::new(phys.clone()));
        let mut ns: HashMap<String, NsEntry> = HashMap::new();
        ns.insert(
            "irq".into(),
            NsEntry::Kernel {
                scheme: irq.clone(),
                id: irq_id,
            },
        );
        ns.insert(
            "time".into(),
            NsEntry::Kernel {
                scheme: time,
                id: time_id,
            },
        );
        ns.insert(
            "memory".into(),
            NsEntry::Kernel {
                scheme: memory,
                id: mem_id,
            },
        );
        ns.insert(
            "pci".into(),
            NsEntry::Kernel {
                scheme: pci.clone(),
                id: pci_id,
            },
        );
        ns.insert(
            "acpi".into(),
            NsEntry::Kernel {
                scheme: Arc::new(AcpiScheme::new(acpi.clone())),
                id: acpi_id,
            },
        );
        Arc::new(Kernel {
            ids,
            pids: AtomicUsize::new(1),
            namespace: Mutex::new(ns),
            namespace_changed: Waitpoint::default(),
            hub,
            clock,
            phys,
            irq,
            pci,
            acpi,
            config,
        })
    }

    /// The machine's size.
    pub fn config(&self) -> &MachineConfig {
        &self.config
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn new_description(
        &self,
        kind: DescKind,
        flags: usize,
        positioned: bool,
    ) -> Arc<Description> {
        Arc::new(Description::new(
            self.next_id(),
            kind,
            flags,
            positioned,
            self.hub.clone(),
        ))
    }

    /// A new process (not yet running anywhere).
    pub fn process(&self, name: &str, cred: Cred) -> Arc<Process> {
        let pid = self.pids.fetch_add(1, Ordering::Relaxed);
        Arc::new(Process::new(pid, cred, name))
    }

    /// Makes the calling thread a new process of this kernel until the guard drops.
    pub fn enter(self: &Arc<Self>, name: &str, cred: Cred) -> (Arc<Process>, EnterGuard) {
        let p = self.process(name, cred);
        let g = process::enter(self, &p);
        (p, g)
    }

    /// Runs `f` on a new thread as a new process; its descriptors close when `f` returns.
    pub fn spawn<R: Send + 'static>(
        self: &Arc<Self>,
        name: &str,
        cred: Cred,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<R> {
        let p = self.process(name, cred);
        self.spawn_in(&p, f)
    }

    /// Runs `f` on a new thread of an existing process.
    pub fn spawn_in<R: Send + 'static>(
        self: &Arc<Self>,
        process: &Arc<Process>,
        f: impl FnOnce() -> R + Send + 'static,
    ) -> JoinHandle<R> {
        let k = self.clone();
        let p = process.clone();
        std::thread::Builder::new()
            .name(p.name.clone())
            .spawn(move || {
                let _g = process::enter(&k, &p);
                let r = f();
                p.close_all();
                r
            })
            .unwrap_or_else(|e| panic!("redox-host: cannot start a thread: {e}"))
    }

    pub(crate) fn lookup(&self, name: &str) -> Option<NsEntry> {
        lock(&self.namespace).get(name).cloned()
    }

    pub(crate) fn register_user_scheme(&self, name: &str, root: Arc<Description>) -> Result<()> {
        {
            let mut ns = lock(&self.namespace);
            if ns.contains_key(name) {
                return Err(Error::new(EEXIST));
            }
            ns.insert(name.to_string(), NsEntry::User(root));
        }
        self.namespace_changed.notify();
        Ok(())
    }

    /// Adds a scheme implemented by the host (simulated hardware, a test double).
    pub fn register_kernel_scheme(
        &self,
        name: &str,
        scheme: Arc<dyn KernelScheme>,
    ) -> Result<EventPort> {
        let id = self.next_id();
        {
            let mut ns = lock(&self.namespace);
            if ns.contains_key(name) {
                return Err(Error::new(EEXIST));
            }
            ns.insert(name.to_string(), NsEntry::Kernel { scheme, id });
        }
        self.namespace_changed.notify();
        Ok(self.event_port(id))
    }

    /// Puts `scheme` under `name` in place of whatever served it (guest mode swaps
    /// the simulated `memory` and `pci` schemes for ones over real hardware).
    pub fn replace_kernel_scheme(&self, name: &str, scheme: Arc<dyn KernelScheme>) -> EventPort {
        let id = self.next_id();
        lock(&self.namespace).insert(name.to_string(), NsEntry::Kernel { scheme, id });
        self.namespace_changed.notify();
        self.event_port(id)
    }

    /// An event port for a kernel scheme id.
    pub fn event_port(&self, scheme_id: u64) -> EventPort {
        EventPort {
            hub: self.hub.clone(),
            scheme_id,
        }
    }

    /// Blocks until a scheme called `name` is registered (a daemon finished starting).
    pub fn wait_for_scheme(&self, name: &str) {
        loop {
            let seen = self.namespace_changed.epoch();
            if lock(&self.namespace).contains_key(name) {
                return;
            }
            self.namespace_changed.wait_past(seen, None);
        }
    }

    /// Like [`Kernel::wait_for_scheme`], but gives up (returning false) once `alive()`
    /// says the daemon that should register it has ended — a daemon that fails to start
    /// must fail the test, not hang it.
    pub fn wait_for_scheme_while(&self, name: &str, alive: impl Fn() -> bool) -> bool {
        loop {
            let seen = self.namespace_changed.epoch();
            if lock(&self.namespace).contains_key(name) {
                return true;
            }
            if !alive() {
                return lock(&self.namespace).contains_key(name);
            }
            // A thread ending does not touch the namespace: re-check it now and then.
            let recheck = std::time::Instant::now() + std::time::Duration::from_millis(20);
            self.namespace_changed.wait_past(seen, Some(recheck));
        }
    }

    /// Names registered in the namespace, sorted.
    pub fn scheme_names(&self) -> Vec<String> {
        let mut v: Vec<String> = lock(&self.namespace).keys().cloned().collect();
        v.sort();
        v
    }

    /// Unregisters a userspace scheme and gives its daemon EOF on the socket, so the
    /// unmodified request loop ends cleanly (tests stop daemons this way).
    pub fn shutdown_scheme(&self, name: &str) -> bool {
        let entry = lock(&self.namespace).remove(name);
        self.namespace_changed.notify();
        match entry {
            Some(NsEntry::User(root)) => {
                if let DescKind::UserFile { socket, .. } = &root.kind {
                    socket.shutdown();
                }
                true
            }
            Some(e @ NsEntry::Kernel { .. }) => {
                lock(&self.namespace).insert(name.to_string(), e);
                false
            }
            None => false,
        }
    }

    fn user_sockets(&self) -> Vec<Arc<user_scheme::SchemeSocket>> {
        lock(&self.namespace)
            .values()
            .filter_map(|entry| match entry {
                NsEntry::User(root) => match &root.kind {
                    DescKind::UserFile { socket, .. } => Some(socket.clone()),
                    _ => None,
                },
                NsEntry::Kernel { .. } => None,
            })
            .collect()
    }

    /// Interrupts process `pid`'s calls blocked on userspace schemes (a signal on
    /// Redox): the kernel sends each scheme a `Cancel` for the request, and the
    /// caller returns `EINTR` once the scheme answers it with `ECANCELED`.
    /// Returns how many calls were interrupted (0 if none was in flight yet).
    pub fn interrupt(&self, pid: usize) -> usize {
        self.user_sockets().iter().map(|s| s.interrupt(pid)).sum()
    }

    /// SIGKILLs process `pid`'s calls blocked on the userspace scheme `name`: they
    /// return `EINTR` without an answer, the only way out on Redox for a caller
    /// whose scheme died (see [`user_scheme::SchemeSocket::sigkill`]). Tests use it
    /// to end a caller they proved is hung. Returns how many calls were released.
    pub fn sigkill(&self, name: &str, pid: usize) -> usize {
        self.user_socket(name).map_or(0, |s| s.sigkill(pid))
    }

    /// Callers blocked on the userspace scheme `name` (of process `pid`, or of any).
    /// A dead scheme never wakes its callers: this is how a test observes them hung.
    pub fn blocked_callers(&self, name: &str, pid: Option<usize>) -> usize {
        self.user_socket(name).map_or(0, |s| s.blocked_callers(pid))
    }

    /// Daemon threads parked in a blocking read of the userspace scheme `name`'s
    /// socket: a test waits for one before proving that a request wakes it.
    pub fn parked_scheme_readers(&self, name: &str) -> usize {
        self.user_socket(name).map_or(0, |s| s.parked_readers())
    }

    fn user_socket(&self, name: &str) -> Option<Arc<user_scheme::SchemeSocket>> {
        match self.lookup(name)? {
            NsEntry::User(root) => match &root.kind {
                DescKind::UserFile { socket, .. } => Some(socket.clone()),
                _ => None,
            },
            NsEntry::Kernel { .. } => None,
        }
    }

    /// The simulated monotonic clock (tests may advance it).
    pub fn clock(&self) -> &Arc<Clock> {
        &self.clock
    }

    /// Simulated physical memory.
    pub fn phys(&self) -> &Arc<PhysArena> {
        &self.phys
    }

    /// The PCI bus: plug simulated functions in with [`PciScheme::add_function`].
    pub fn pci(&self) -> &Arc<PciScheme> {
        &self.pci
    }

    /// The firmware's ACPI tables (publish tables, place AMD-Vi units).
    pub fn acpi(&self) -> &Arc<AcpiTables> {
        &self.acpi
    }

    /// The interrupt controller side of the `irq` scheme (raise interrupts from the host).
    pub fn irq(&self) -> &Arc<IrqScheme> {
        &self.irq
    }
}
