//! Telling the starter (init, pcid-spawner) that the daemon is ready, over the
//! pipe named by `INIT_NOTIFY` (base `daemon` crate, `Daemon::ready` and
//! `SchemeDaemon::ready_with_fd`; redox-real.md §5.2).

use libredox::Fd;
use libredox::call;
use redox_scheme::Socket;
use redox_scheme::scheme::register_scheme_inner;
use syscall::CallFlags;
use syscall::error::Result;

use super::environment::{INIT_NOTIFY, Startup};

/// The write end of the readiness pipe, if the daemon was given one.
///
/// A daemon started without `INIT_NOTIFY` (by hand, from a shell or a test) does
/// not panic as base's `Daemon::new` does: nobody waits for it, so it logs that
/// once and runs on. A `notify` daemon then has nothing to report; a scheme
/// daemon, with no init to register its name, registers the name itself.
#[must_use = "the starter waits until `ready` is called"]
pub struct InitNotify {
    pipe: Option<Fd>,
}

impl std::fmt::Debug for InitNotify {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InitNotify")
            .field("pipe", &self.pipe.as_ref().map(Fd::raw))
            .finish()
    }
}

impl InitNotify {
    /// The pipe from `startup`'s `INIT_NOTIFY` (logs when it is missing or not a
    /// number; `program` names the daemon in that message).
    pub fn from_startup(startup: &Startup, program: &str) -> InitNotify {
        match (startup.var(INIT_NOTIFY), startup.fd_var(INIT_NOTIFY)) {
            (_, Some(fd)) => InitNotify::from_fd(fd),
            (None, None) => {
                log::warn!(
                    "{program}: no {INIT_NOTIFY}: not started by init or pcid-spawner; \
                     readiness goes unreported"
                );
                InitNotify::none()
            }
            (Some(bad), None) => {
                log::warn!(
                    "{program}: {INIT_NOTIFY}={bad:?} is not an fd; readiness goes unreported"
                );
                InitNotify::none()
            }
        }
    }

    /// Takes over the pipe's write end `fd`.
    pub fn from_fd(fd: usize) -> InitNotify {
        InitNotify {
            pipe: Some(Fd::new(fd)),
        }
    }

    /// No pipe: readiness goes nowhere.
    pub fn none() -> InitNotify {
        InitNotify { pipe: None }
    }

    /// Whether a starter waits for this daemon.
    pub fn is_awaited(&self) -> bool {
        self.pipe.is_some()
    }

    /// `type = "notify"` (and every driver under pcid-spawner): writes the one
    /// readiness byte, then closes the pipe.
    pub fn ready(self) -> Result<()> {
        if let Some(pipe) = self.pipe {
            pipe.write(&[0])?;
        }
        Ok(())
    }

    /// `type = { scheme = "…" }`: makes a capability fd for the scheme's root
    /// (`root_id`, what `scheme_root()` returned) and sends it to init over the pipe
    /// (`SYS_CALL` with `CallFlags::FD`; the kernel moves the fd to the pipe's
    /// fd queue, separate from its bytes). Init registers it under the name from
    /// the unit file, so the daemon must not register `name` itself — unless nobody
    /// waits (no `INIT_NOTIFY`), in which case it registers `name` on its own.
    pub fn ready_with_scheme(self, socket: &Socket, root_id: usize, name: &str) -> Result<()> {
        let Some(pipe) = self.pipe else {
            return register_scheme_inner(socket, name, root_id);
        };
        let cap = socket.create_this_scheme_fd(0, root_id, 0, 0)?;
        let sent = call::call_wo(pipe.raw(), &cap.to_ne_bytes(), CallFlags::FD, &[]);
        if sent.is_err() {
            // Still ours when the kernel refused it.
            let _ = call::close(cap);
        }
        sent?;
        Ok(())
    }
}
