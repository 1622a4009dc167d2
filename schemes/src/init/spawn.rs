//! Starting a program the way base's init and pcid-spawner do (base
//! `init/src/service.rs`, `daemon/src/lib.rs` `Daemon::spawn`): a new process
//! whose environment names the write end of a new pipe in `INIT_NOTIFY`, then a
//! wait on the read end — for one byte (`notify`, every driver), for the scheme's
//! root capability (`scheme`), or for the exit (`oneshot`).
//!
//! The starter keeps no copy of the write end (the fixed upstream behaviour, base
//! `9022f8a8`/`eeee52f2`), so a program that ends without signalling is EOF, not a
//! hang. Real init waits for ever; [`super::InitOptions::readiness_deadline`] is a
//! test-only bound after which the wait is reported as failed and the boot goes on.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use driver_sys::daemon::{INIT_NOTIFY, Startup};
use syscall::flag::{O_RDONLY, O_WRONLY};

use super::Shared;
use crate::kernel::Cred;
use crate::kernel::description::{DescKind, Description};
use crate::kernel::kscheme::KernelScheme;
use crate::kernel::wait::Waitpoint;
use crate::mock::pipe::PipeEvent;

/// Set when a program's thread has returned.
#[derive(Default)]
pub(super) struct ExitSignal {
    done: AtomicBool,
    changed: Waitpoint,
}

impl ExitSignal {
    fn set(&self) {
        self.done.store(true, Ordering::Release);
        self.changed.notify();
    }

    /// Whether the program has ended.
    pub(super) fn is_set(&self) -> bool {
        self.done.load(Ordering::Acquire)
    }

    /// Waits for the end until `deadline`; false if it passed first.
    pub(super) fn wait(&self, deadline: Option<Instant>) -> bool {
        loop {
            let seen = self.changed.epoch();
            if self.is_set() {
                return true;
            }
            if !self.changed.wait_past(seen, deadline) {
                return self.is_set();
            }
        }
    }
}

/// A started program: its readiness pipe's read end and its end.
pub(super) struct Started {
    pub(super) notify: Arc<Description>,
    pub(super) notify_handle: usize,
    pub(super) exit: Arc<ExitSignal>,
}

/// How a wait for readiness ended.
pub(super) enum Readiness {
    /// The byte arrived.
    Byte,
    /// A descriptor arrived (`scheme` type).
    Capability(Arc<Description>),
    /// The write end closed first: "exited without notifying readiness".
    Eof,
    /// The test deadline passed first.
    TimedOut,
}

impl Shared {
    fn pipe_description(&self, handle: usize, flags: usize) -> Arc<Description> {
        self.kernel.new_description(
            DescKind::Kernel {
                scheme: self.pipe.clone() as Arc<dyn KernelScheme>,
                scheme_id: self.pipe_id,
                scheme_name: "pipe".into(),
                handle,
                path: String::new(),
            },
            flags,
            false,
        )
    }

    /// Starts the program installed at `path` as a new root process named `name`,
    /// with `env` plus `INIT_NOTIFY` (and `channel` installed in its table, its
    /// number in `channel_var`).
    pub(super) fn spawn(
        self: &Arc<Self>,
        name: &str,
        path: &str,
        args: Vec<String>,
        mut env: BTreeMap<String, String>,
        channel: Option<(&str, Arc<Description>)>,
    ) -> Result<Started, String> {
        let program = self.program(path)?;
        let (read, write) = self.pipe.pipe();
        let notify = self.pipe_description(read, O_RDONLY);
        let child = self.kernel.process(name, Cred::ROOT);
        // Passed without CLOEXEC; the starter keeps no copy of the write end.
        let fd = child
            .insert(self.pipe_description(write, O_WRONLY), false)
            .map_err(|e| format!("{name}: {e}"))?;
        env.insert(INIT_NOTIFY.to_string(), fd.to_string());
        if let Some((var, desc)) = channel {
            let fd = child
                .insert(desc, false)
                .map_err(|e| format!("{name}: {e}"))?;
            env.insert(var.to_string(), fd.to_string());
        }
        let exit = Arc::new(ExitSignal::default());
        let signal = exit.clone();
        let thread = self.kernel.spawn_in(&child, move || {
            let result = program(Startup::new(args, env));
            signal.set();
            result
        });
        self.children
            .lock()
            .map_err(|_| "init: child list poisoned".to_string())?
            .push(super::Child {
                name: name.to_string(),
                exit: exit.clone(),
                thread: Some(thread),
            });
        Ok(Started {
            notify,
            notify_handle: read,
            exit,
        })
    }

    fn deadline(&self) -> Option<Instant> {
        self.options.readiness_deadline.map(|d| Instant::now() + d)
    }

    /// Waits on `started`'s pipe for a byte or (when `want_fd`) a descriptor.
    pub(super) fn wait_ready(&self, started: &Started, want_fd: bool) -> Readiness {
        match self
            .pipe
            .wait(started.notify_handle, want_fd, self.deadline())
        {
            Ok(PipeEvent::Bytes(_)) => Readiness::Byte,
            Ok(PipeEvent::Fd(desc)) => Readiness::Capability(desc),
            Ok(PipeEvent::Eof) | Err(_) => Readiness::Eof,
            Ok(PipeEvent::TimedOut) => Readiness::TimedOut,
        }
    }

    /// `oneshot`: closes the read end and waits for the program to end — for
    /// ever, as init does, even with a test deadline. The deadline bounds readiness
    /// signals; the one oneshot, pcid-spawner, bounds each of its own driver waits
    /// by it and so always ends, and its report of a silent driver must come
    /// before init moves on, however the host schedules the two waits (with both
    /// bounded, init's, armed first, could give up first).
    pub(super) fn wait_exit(&self, started: Started) -> bool {
        drop(started.notify);
        started.exit.wait(None)
    }
}
