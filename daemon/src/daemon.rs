//! The request loop: the unmodified Redox pattern of a scheme socket driven by an
//! event queue.

use std::cell::{Cell, RefCell};

use event::{EventFlags, EventQueue};
use redox_scheme::Socket;
use redox_scheme::scheme::register_sync_scheme;
use redox_scheme::wrappers::ReadinessBased;

use crate::config::Config;
use crate::hardware::Hardware;
use crate::scheme::DsmilScheme;

/// Requests read from the socket in one batch.
const BATCH: usize = 32;

event::user_data! {
    enum Source {
        Scheme,
    }
}

/// Why the daemon stopped.
#[derive(Debug)]
pub enum DaemonError {
    /// A system call failed while starting or serving (`what`, errno).
    Sys(&'static str, i32),
}

impl std::fmt::Display for DaemonError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DaemonError::Sys(what, errno) => write!(f, "{what} failed: errno {errno}"),
        }
    }
}

impl std::error::Error for DaemonError {}

fn sys<T>(what: &'static str, r: Result<T, impl Into<syscall::Error>>) -> Result<T, DaemonError> {
    r.map_err(|e| DaemonError::Sys(what, e.into().errno))
}

/// Registers scheme `config.scheme_name` and serves it until the socket reports EOF.
pub fn run(config: Config, hardware: Hardware) -> Result<(), DaemonError> {
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
            if handled.get() == 0 {
                break;
            }
        }
        let event = sys("waiting for events", queue.next_event())?;
        match event.user_data {
            Source::Scheme => {}
        }
    }
}
