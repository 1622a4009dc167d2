//! `log`: the last operations, in a fixed ring (kmsgpipe's debugfs `log`).

use std::collections::VecDeque;
use std::fmt::Write;

use crate::wire::{Op, Token};

/// Entries the ring keeps.
pub const LOG_CAPACITY: usize = 64;

/// What an entry is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Nothing more specific.
    None,
    /// A control op.
    Op(Op),
    /// A device.
    Token(Token),
    /// A named file.
    Name(&'static str),
}

/// One logged operation. Plain data: recording one allocates nothing, so the
/// log costs the hot paths almost nothing; text is made when `log` is opened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LogEntry {
    /// Sequence number since start.
    pub seq: u64,
    /// When, ms.
    pub at_ms: u64,
    /// Caller's pid (0 for the daemon itself).
    pub pid: usize,
    /// The operation (`open`, `read`, `write`, `call`, `close`, `expire`, …).
    pub action: &'static str,
    /// What it was about.
    pub target: Target,
    /// Bytes or handle on success, errno on failure.
    pub result: Result<usize, i32>,
}

/// The ring.
#[derive(Debug)]
pub struct OpLog {
    entries: VecDeque<LogEntry>,
    next_seq: u64,
}

impl Default for OpLog {
    /// An empty ring with its whole capacity reserved up front, so recording
    /// never allocates (the chunk path records every request).
    fn default() -> Self {
        Self {
            entries: VecDeque::with_capacity(LOG_CAPACITY),
            next_seq: 0,
        }
    }
}

impl OpLog {
    /// Records one operation, dropping the oldest past [`LOG_CAPACITY`].
    pub fn record(
        &mut self,
        at_ms: u64,
        pid: usize,
        action: &'static str,
        target: Target,
        result: Result<usize, i32>,
    ) {
        if self.entries.len() >= LOG_CAPACITY {
            self.entries.pop_front();
        }
        self.next_seq += 1;
        self.entries.push_back(LogEntry {
            seq: self.next_seq,
            at_ms,
            pid,
            action,
            target,
            result,
        });
    }

    /// The entries, oldest first.
    pub fn entries(&self) -> impl Iterator<Item = &LogEntry> {
        self.entries.iter()
    }

    /// The `log` file: one line per entry, oldest first:
    /// `<seq> <ms>ms pid <pid> <action> <target> -> <result>`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for e in &self.entries {
            let target = match e.target {
                Target::None => String::from("-"),
                Target::Op(op) => op.name().to_string(),
                Target::Token(t) => format!("device/{t}"),
                Target::Name(n) => n.to_string(),
            };
            let result = match e.result {
                Ok(n) => format!("ok {n}"),
                Err(errno) => format!("errno {errno}"),
            };
            let _ = writeln!(
                s,
                "{} {}ms pid {} {} {} -> {}",
                e.seq, e.at_ms, e.pid, e.action, target, result
            );
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_keeps_the_last_entries() {
        let mut log = OpLog::default();
        for i in 0..(LOG_CAPACITY as u64 + 10) {
            log.record(i, 1, "read", Target::None, Ok(0));
        }
        assert_eq!(log.entries().count(), LOG_CAPACITY);
        assert_eq!(log.entries().next().map(|e| e.seq), Some(11));
        let text = log.render();
        assert_eq!(text.lines().count(), LOG_CAPACITY);
        assert!(text.ends_with("74 73ms pid 1 read - -> ok 0\n"), "{text}");
    }
}
