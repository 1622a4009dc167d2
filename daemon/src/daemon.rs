//! The request loop: the unmodified Redox pattern of a scheme socket driven by an
//! event queue, plus a `time` scheme deadline for periodic housekeeping.

use std::cell::{Cell, RefCell};

use event::{EventFlags, EventQueue};
use redox_scheme::scheme::register_sync_scheme;
use redox_scheme::wrappers::ReadinessBased;
use redox_scheme::{Response, SignalBehavior, Socket};

use crate::config::Config;
use crate::hardware::Hardware;
use crate::scheme::DsmilScheme;
pub use driver_sys::daemon::DaemonError;
use driver_sys::daemon::{DeadlineTimer, InitNotify, sys};

/// Requests read from the socket in one batch.
const BATCH: usize = 32;

event::user_data! {
    enum Source {
        Scheme,
        Housekeeping,
    }
}

/// Registers scheme `config.scheme_name` and serves it until the socket reports EOF
/// (dsmild started by hand, and tests): [`serve`] with nobody waiting.
pub fn run(config: Config, hardware: Hardware) -> Result<(), DaemonError> {
    serve(config, hardware, InitNotify::none())
}

/// Registers scheme `config.scheme_name`, tells the starter it is ready through
/// `notify` (the one `INIT_NOTIFY` byte: dsmild is a `notify` daemon under
/// pcid-spawner and as a service, and registers its scheme itself as upstream
/// drivers do), and serves it until the socket reports EOF.
///
/// Requests that would block (an `events` read with nothing queued) are parked by
/// redox-scheme's `ReadinessBased` and polled again after every batch, so they are
/// answered as soon as a record exists; a Cancel from the kernel answers them with
/// `ECANCELED`. Readers that asked for readiness get an `EVENT_READ` post.
pub fn serve(config: Config, hardware: Hardware, notify: InitNotify) -> Result<(), DaemonError> {
    let name = config.scheme_name.clone();
    let socket = sys("creating the scheme socket", Socket::nonblock())?;
    let scheme = RefCell::new(DsmilScheme::new(config, hardware));
    sys(
        "registering the scheme",
        register_sync_scheme(&socket, &name, &mut *scheme.borrow_mut()),
    )?;
    let queue = sys("creating the event queue", EventQueue::<Source>::new())?;
    sys(
        "subscribing to the scheme socket",
        queue.subscribe(socket.inner().raw(), Source::Scheme, EventFlags::READ),
    )?;
    // Without a time scheme the daemon still serves; sessions then never expire.
    let timer = match DeadlineTimer::open() {
        Ok(timer) => {
            sys(
                "subscribing to the housekeeping timer",
                queue.subscribe(timer.raw(), Source::Housekeeping, EventFlags::READ),
            )?;
            sys(
                "arming the housekeeping timer",
                timer.arm(scheme.borrow().config().housekeeping_interval_ms),
            )?;
            Some(timer)
        }
        Err(e) => {
            log::warn!("dsmild: no housekeeping timer ({e}); idle sessions will not expire");
            None
        }
    };
    // Everything dsmild opens by path is open now: enter the null namespace
    // (upstream drivers' last startup step), before readiness as acpid does
    // since base 9dd6901d (readiness first deadlocked). Later memory mappings go
    // through the memory scheme root opened at start.
    sys("entering the null namespace", libredox::call::setrens(0, 0))?;
    // Registered and subscribed: requests are served from here on.
    sys("reporting readiness", notify.ready())?;
    log::info!("dsmild: serving /scheme/{name}");

    let mut requests = ReadinessBased::new(&socket, BATCH);
    loop {
        // Drain everything queued before this event: events for one source coalesce.
        loop {
            if !sys("reading requests", requests.read_requests())? {
                log::info!("dsmild: scheme socket closed, exiting");
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
            for id in scheme.borrow_mut().take_fevent_posts() {
                let post = Response::post_fevent(id, syscall::flag::EventFlags::EVENT_READ.bits());
                sys(
                    "posting readiness",
                    socket.write_response(post, SignalBehavior::Restart),
                )?;
            }
            if handled.get() == 0 {
                break;
            }
        }
        let event = sys("waiting for events", queue.next_event())?;
        match event.user_data {
            Source::Scheme => {}
            Source::Housekeeping => {
                let interval = {
                    let mut scheme = scheme.borrow_mut();
                    scheme.housekeeping();
                    scheme.config().housekeeping_interval_ms
                };
                if let Some(timer) = &timer {
                    sys("re-arming the housekeeping timer", timer.arm(interval))?;
                }
            }
        }
    }
}
