//! base init's unit store and scheduler (`init/src/unit.rs` `UnitStore`,
//! `init/src/scheduler.rs`):
//! * loading a unit loads its `requires_weak` units (depth first); a unit with
//!   `default_dependencies` gets a weak dependency on the runtime target;
//! * loaded units whose conditions hold are queued in load order;
//! * the queue runs front to back, one unit at a time: a job is moved to the back
//!   while any of its `requires_weak` units is still queued, else it runs — and a
//!   `notify`/`scheme` service is waited for before the next job starts.
//!
//! One deviation: where base would requeue a dependency cycle for ever, the
//! simulated init reports the units it can never start and stops.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use super::unit::{Unit, UnitKind};
use super::{BootEvent, Shared};

/// Loaded units and where they are looked up.
pub(super) struct UnitStore {
    pub(super) config_dirs: Vec<String>,
    units: BTreeMap<String, Unit>,
    runtime_target: Option<String>,
}

impl UnitStore {
    pub(super) fn new() -> UnitStore {
        UnitStore {
            config_dirs: Vec::new(),
            units: BTreeMap::new(),
            runtime_target: None,
        }
    }

    pub(super) fn set_runtime_target(&mut self, id: &str) {
        self.runtime_target = Some(id.to_string());
    }

    fn load_single(&mut self, shared: &Shared, id: &str) -> Option<String> {
        // Later directories override earlier ones: looked up in reverse.
        let Some(path) = self
            .config_dirs
            .iter()
            .rev()
            .map(|dir| format!("{dir}/{id}"))
            .find(|p| shared.rootfs.entry(p).is_some())
        else {
            shared.event(BootEvent::Error(format!("unit {id} not found")));
            return None;
        };
        let text = shared.rootfs.text(&path).unwrap_or_default();
        let mut unit = match Unit::parse(id, &text) {
            Ok(unit) => unit,
            Err(e) => {
                shared.event(BootEvent::Skipped {
                    unit: id.to_string(),
                    why: format!("{path}: {e}"),
                });
                return None;
            }
        };
        if unit.info.default_dependencies {
            match &self.runtime_target {
                Some(target) => unit.info.requires_weak.push(target.clone()),
                None => shared.event(BootEvent::Error(format!(
                    "{path}: dependency of the runtime target must have default dependencies disabled"
                ))),
            }
        }
        self.units.insert(id.to_string(), unit);
        Some(id.to_string())
    }

    fn load(&mut self, shared: &Shared, root: &str) -> Vec<String> {
        let mut loaded = Vec::new();
        let mut pending = vec![root.to_string()];
        while let Some(id) = pending.pop() {
            if self.units.contains_key(&id) {
                continue;
            }
            if let Some(id) = self.load_single(shared, &id) {
                pending.extend(self.units[&id].info.requires_weak.iter().cloned());
                loaded.push(id);
            }
        }
        loaded
    }
}

/// The job queue.
pub(super) struct Scheduler {
    pending: VecDeque<String>,
}

impl Scheduler {
    pub(super) fn new() -> Scheduler {
        Scheduler {
            pending: VecDeque::new(),
        }
    }

    /// Loads `id` and what it pulls in, and queues those whose conditions hold.
    pub(super) fn schedule(&mut self, store: &mut UnitStore, shared: &Shared, id: &str) {
        for id in store.load(shared, id) {
            if store.units[&id].conditions_met() {
                self.pending.push_back(id);
            }
        }
    }

    /// Runs the queue to the end.
    pub(super) fn step(&mut self, store: &UnitStore, shared: &Arc<Shared>) {
        let mut deferred_in_a_row = 0;
        while let Some(id) = self.pending.pop_front() {
            let Some(unit) = store.units.get(&id) else {
                continue;
            };
            if unit
                .info
                .requires_weak
                .iter()
                .any(|d| self.pending.contains(d))
            {
                self.pending.push_back(id);
                deferred_in_a_row += 1;
                if deferred_in_a_row > self.pending.len() {
                    let stuck: Vec<String> = self.pending.drain(..).collect();
                    shared.event(BootEvent::Error(format!(
                        "dependency cycle among {stuck:?}"
                    )));
                    return;
                }
                continue;
            }
            deferred_in_a_row = 0;
            match &unit.kind {
                UnitKind::Service(service) => shared.run_service(&id, service),
                UnitKind::Target => shared.event(BootEvent::TargetReached(id.clone())),
            }
        }
    }
}
