//! `stats`: counters per operation (kmsgpipe's debugfs `stats`).

use std::fmt::Write;

use crate::wire::Op;

/// Calls and failures of one kind of operation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    /// Times it was asked for.
    pub calls: u64,
    /// Times it failed.
    pub errors: u64,
}

impl Counter {
    /// Counts one outcome.
    pub fn count<T, E>(&mut self, outcome: &Result<T, E>) {
        self.calls += 1;
        if outcome.is_err() {
            self.errors += 1;
        }
    }
}

/// Every counter of the scheme.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    /// Control ops by op number (index = op − 1), however they arrived.
    pub control: [Counter; 11],
    /// Opens of any path.
    pub open: Counter,
    /// Reads of any handle.
    pub read: Counter,
    /// Writes of any handle.
    pub write: Counter,
    /// `call`s of any handle.
    pub call: Counter,
    /// Sessions started (scan, read, by file or by control op).
    pub sessions_started: u64,
    /// Sessions completed by the client (complete op or close).
    pub sessions_completed: u64,
    /// Sessions expired by housekeeping.
    pub sessions_expired: u64,
    /// Session starts refused by the limit (`EMFILE`).
    pub sessions_refused: u64,
    /// Accesses refused because the token is quarantined.
    pub refused_quarantine: u64,
    /// Accesses refused for heat (`EBUSY`).
    pub refused_thermal: u64,
    /// Writes refused to non-root callers (`EACCES`).
    pub refused_permission: u64,
    /// Events queued (each counts once, however many readers).
    pub events: u64,
    /// Records dropped from full reader queues.
    pub events_lost: u64,
    /// Housekeeping passes.
    pub housekeeping: u64,
    /// Opens refused by a handle bound (global, user or process: `EMFILE`).
    pub handles_refused: u64,
    /// Handle or session refusals by a user's bound.
    pub refused_user_bound: u64,
    /// Handle or session refusals by a process's bound.
    pub refused_process_bound: u64,
    /// SMI-raising operations refused by a user's per-second budget (`EAGAIN`).
    pub smi_rate_limited: u64,
}

impl Stats {
    /// Counts a refusal by a per-client bound.
    pub fn client_bound(&mut self, bound: super::clients::Bound) {
        match bound {
            super::clients::Bound::User => self.refused_user_bound += 1,
            super::clients::Bound::Process => self.refused_process_bound += 1,
        }
    }

    /// The counter of a control op.
    pub fn op(&mut self, op: Op) -> &mut Counter {
        // `Op` numbers are 1..=11, so the index is always in range; the
        // fallback keeps this free of indexing panics.
        let index = (op.raw() as usize).saturating_sub(1);
        let len = self.control.len();
        &mut self.control[index.min(len - 1)]
    }

    /// Counts a refusal by errno.
    pub fn refusal(&mut self, errno: i32, quarantined: bool) {
        match errno {
            syscall::error::EACCES if quarantined => self.refused_quarantine += 1,
            syscall::error::EACCES => self.refused_permission += 1,
            syscall::error::EBUSY => self.refused_thermal += 1,
            _ => {}
        }
    }

    /// The `stats` file: `key: calls errors` lines for operations, then
    /// `key: value` totals.
    pub fn render(
        &self,
        smi: crate::machine::SmiTotals,
        clients: &super::clients::Clients,
    ) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# operation: calls errors");
        for (op, c) in Op::ALL.iter().zip(self.control.iter()) {
            let _ = writeln!(s, "{}: {} {}", op.name(), c.calls, c.errors);
        }
        for (name, c) in [
            ("open", self.open),
            ("read", self.read),
            ("write", self.write),
            ("call", self.call),
        ] {
            let _ = writeln!(s, "{name}: {} {}", c.calls, c.errors);
        }
        let _ = writeln!(s, "# totals");
        for (name, v) in [
            ("sessions_started", self.sessions_started),
            ("sessions_completed", self.sessions_completed),
            ("sessions_expired", self.sessions_expired),
            ("sessions_refused", self.sessions_refused),
            ("refused_quarantine", self.refused_quarantine),
            ("refused_thermal", self.refused_thermal),
            ("refused_permission", self.refused_permission),
            ("events", self.events),
            ("events_lost", self.events_lost),
            ("housekeeping_passes", self.housekeeping),
            ("smi_operations", smi.operations),
            ("smi_failures", smi.failures),
            ("smi_timeouts", smi.timeouts),
            ("smi_refused", smi.refused),
            ("smi_rate_limited", self.smi_rate_limited),
            ("handles_refused", self.handles_refused),
            ("refused_user_bound", self.refused_user_bound),
            ("refused_process_bound", self.refused_process_bound),
            ("clients_users", clients.tracked().0 as u64),
            ("clients_processes", clients.tracked().1 as u64),
        ] {
            let _ = writeln!(s, "{name}: {v}");
        }
        s
    }
}
