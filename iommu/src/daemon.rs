//! iommud's request loop: a scheme socket and a `time` scheme deadline on one
//! event queue (the Redox daemon pattern). The deadline is armed only while a
//! lazy domain has deferred unmaps, and bounds how long they wait for their
//! flush ([`Config::flush_timeout_ms`]).

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use event::{EventFlags, EventQueue};
use redox_scheme::Socket;
use redox_scheme::scheme::SchemeSync;
use redox_scheme::wrappers::ReadinessBased;

use crate::amdvi::{AmdViMmio, AmdViUnit, DeviceTableEntry};
use crate::config::{Config, UnassignedDevices};
use crate::contiguous::ContiguousAllocator;
use crate::scheme::IommuScheme;
use crate::service::Iommu;
pub use crate::startup::DaemonError;
use crate::startup::{DeadlineTimer, InitNotify, sys};
use crate::table_memory::SchemeTableMemory;
use crate::unit::IommuUnit;

const BATCH: usize = 32;

event::user_data! {
    enum Source {
        Scheme,
        FlushTimeout,
    }
}

/// The flush deadline and whether it is set.
struct FlushTimer {
    timer: DeadlineTimer,
    armed: bool,
}

impl FlushTimer {
    fn open() -> libredox::error::Result<Self> {
        Ok(Self {
            timer: DeadlineTimer::open()?,
            armed: false,
        })
    }

    fn arm(&mut self, after_ms: u32) -> libredox::error::Result<()> {
        self.timer.arm(after_ms)?;
        self.armed = true;
        Ok(())
    }
}

/// Builds the served state for AMD-Vi units behind `units` (register
/// interfaces): see [`build_with`]. Every device table entry starts as
/// `config.unassigned` says (passthrough unless configured to block).
pub fn build(config: Config, units: Vec<Box<dyn AmdViMmio>>) -> Result<Iommu, DaemonError> {
    let default = match config.unassigned {
        UnassignedDevices::Passthrough => DeviceTableEntry::PASSTHROUGH,
        UnassignedDevices::Blocked => DeviceTableEntry::BLOCKED,
    };
    build_with(config, |memory| {
        let mut drivers: Vec<Box<dyn IommuUnit>> = Vec::with_capacity(units.len());
        for mmio in units {
            drivers.push(Box::new(AmdViUnit::with_default_entry(
                mmio, memory, default,
            )?));
        }
        Ok(drivers)
    })
}

/// Builds the served state: `make_units` allocates each unit's tables and
/// queues from the memory scheme (any vendor), then the units are brought
/// up (every device in the state its unit starts it in) and page-table
/// memory is set up. Needs root (the `translation` handle). The units must
/// start every device as `config.unassigned` says (the AMD-Vi constructor
/// [`build`] uses does).
pub fn build_with(
    config: Config,
    make_units: impl FnOnce(&ContiguousAllocator) -> syscall::Result<Vec<Box<dyn IommuUnit>>>,
) -> Result<Iommu, DaemonError> {
    let memory = sys("opening the memory scheme", ContiguousAllocator::open())?;
    let drivers = sys("allocating the units' tables", make_units(&memory))?;
    let tables = SchemeTableMemory::new(memory, config.max_page_tables);
    let mut iommu = Iommu::new(config, drivers, tables);
    sys("initialising the units", iommu.init_units(None))?;
    Ok(iommu)
}

/// Registers scheme `config.scheme_name` over `units` itself and serves it until
/// the socket reports EOF (iommud started by hand, and tests).
pub fn run(config: Config, units: Vec<Box<dyn AmdViMmio>>) -> Result<(), DaemonError> {
    serve(build(config, units)?, InitNotify::none())
}

/// Serves scheme `iommu` over `iommu` (built by [`build`] or
/// [`crate::discovery::discover`]: the units are up, every device blocked or
/// in passthrough) as init's `type = { scheme = "iommu" }` service: once the
/// socket exists and the queue is subscribed, the root capability goes to
/// init over `notify` and init registers the name (the daemon registers
/// `config.scheme_name` itself only when nobody waits). Readiness is thus
/// never signalled before iommud can serve: requests queued from then on are
/// read by the loop below.
pub fn serve(iommu: Iommu, notify: InitNotify) -> Result<(), DaemonError> {
    let name = iommu.config().scheme_name.clone();
    let timeout_ms = iommu.config().flush_timeout_ms;
    let scheme = RefCell::new(IommuScheme::new(iommu));
    let socket = Rc::new(sys("creating the scheme socket", Socket::nonblock())?);
    // Fd passing (ASSIGN by pcid channel) takes the fds through the socket.
    scheme.borrow_mut().set_socket(socket.clone());
    let root = sys("making the scheme root", scheme.borrow_mut().scheme_root())?;
    let queue = sys("creating the event queue", EventQueue::<Source>::new())?;
    sys(
        "subscribing to the scheme socket",
        queue.subscribe(socket.inner().raw(), Source::Scheme, EventFlags::READ),
    )?;
    // Without a time scheme lazy queues are still flushed when full or asked.
    let mut timer = match FlushTimer::open() {
        Ok(timer) => {
            sys(
                "subscribing to the flush timer",
                queue.subscribe(timer.timer.raw(), Source::FlushTimeout, EventFlags::READ),
            )?;
            Some(timer)
        }
        Err(e) => {
            log::warn!("iommud: no time scheme ({e}); lazy flushes only when queues fill");
            None
        }
    };
    // Ready: every device is blocked or in passthrough, and requests are served
    // from here on. Drivers that enable DMA after this find the scheme.
    // Everything iommud opens by path is open now (table memory comes from the
    // memory scheme root, ASSIGN channels arrive by fd passing): enter the null
    // namespace, as upstream drivers do last. Before readiness, as acpid does
    // since base 9dd6901d (readiness first deadlocked); but a daemon nobody
    // waits for registers its name itself first, which needs the namespace.
    let awaited = notify.is_awaited();
    if awaited {
        sys("entering the null namespace", libredox::call::setrens(0, 0))?;
    }
    sys(
        "reporting readiness to init",
        notify.ready_with_scheme(&socket, root, &name),
    )?;
    if !awaited {
        sys("entering the null namespace", libredox::call::setrens(0, 0))?;
    }
    log::info!("iommud: serving /scheme/{name}");

    let mut requests = ReadinessBased::new(&socket, BATCH);
    loop {
        loop {
            if !sys("reading requests", requests.read_requests())? {
                log::info!("iommud: scheme socket closed, exiting");
                return Ok(());
            }
            let handled = Cell::new(0usize);
            requests.process_requests(|| {
                handled.set(handled.get() + 1);
                scheme.borrow_mut()
            });
            sys(
                "polling blocked requests",
                requests.poll_all_requests(|| scheme.borrow_mut()),
            )?;
            sys("writing responses", requests.write_responses())?;
            if handled.get() == 0 {
                break;
            }
        }
        if let Some(t) = timer.as_mut()
            && !t.armed
            && scheme.borrow().iommu().flush_pending()
        {
            sys("arming the flush timer", t.arm(timeout_ms))?;
        }
        let event = sys("waiting for events", queue.next_event())?;
        match event.user_data {
            Source::Scheme => {}
            Source::FlushTimeout => {
                if let Some(t) = timer.as_mut() {
                    t.armed = false;
                }
                let mut s = scheme.borrow_mut();
                if let Err(e) = s.iommu_mut().flush_all() {
                    log::error!("iommud: lazy flush failed: {e}");
                }
                s.iommu_mut().collect_events();
            }
        }
    }
}
