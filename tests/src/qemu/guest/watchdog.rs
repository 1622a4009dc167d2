//! A watchdog over the guest's scenarios: when one runs longer than
//! [`STALL_AFTER`] it prints, as NOTE lines the harness shows with the console,
//! every thread of `/init` with its state and the kernel function it sleeps in
//! (`/proc/self/task/*/{comm,stat,wchan}`), and repeats that while the scenario
//! lasts. A boot the harness kills at its timeout then says whether the guest was
//! spinning (R), blocked (S, and where), or merely slow. It never fails a
//! scenario: it only describes. Each scenario's duration is noted too.

use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use super::note;
use crate::qemu::model::Model;

/// How long a scenario runs before its threads are described.
pub const STALL_AFTER: Duration = Duration::from_secs(45);

/// The watchdog thread's handle: tell it when a scenario starts.
pub struct Watchdog {
    model: &'static Model,
    tx: Sender<&'static str>,
    current: Option<(&'static str, Instant)>,
}

fn threads() -> String {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return "(no /proc/self/task)".into();
    };
    let mut out = Vec::new();
    for task in dir.filter_map(|t| t.ok()) {
        let p = task.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        let comm = read("comm");
        let stat = read("stat");
        // The state is the field after the parenthesised command name.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("?")
            .to_string();
        out.push(format!(
            "{}:{}:{}:{}",
            task.file_name().to_string_lossy(),
            comm.trim(),
            state,
            read("wchan").trim()
        ));
    }
    out.join(" ")
}

impl Watchdog {
    /// Starts the watchdog thread for `model`'s scenarios.
    pub fn start(model: &'static Model) -> Self {
        let (tx, rx) = mpsc::channel::<&'static str>();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .spawn(move || {
                let mut running: Option<(&str, Instant)> = None;
                loop {
                    match rx.recv_timeout(STALL_AFTER) {
                        Ok(name) => running = Some((name, Instant::now())),
                        Err(RecvTimeoutError::Disconnected) => return,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Some((name, since)) = running {
                                note(
                                    model,
                                    &format!(
                                        "WATCHDOG {name} still running after {} ms; threads (tid:name:state:wchan): {}",
                                        since.elapsed().as_millis(),
                                        threads()
                                    ),
                                );
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            note(model, &format!("no watchdog thread: {e}"));
        }
        Self {
            model,
            tx,
            current: None,
        }
    }

    /// Marks the start of `scenario` (and notes how long the previous one took).
    pub fn begin(&mut self, scenario: &'static str) {
        self.finish();
        self.current = Some((scenario, Instant::now()));
        let _ = self.tx.send(scenario);
    }

    /// Notes how long the running scenario took.
    pub fn finish(&mut self) {
        if let Some((name, since)) = self.current.take() {
            note(
                self.model,
                &format!("TIME {name} {} ms", since.elapsed().as_millis()),
            );
        }
    }
}
