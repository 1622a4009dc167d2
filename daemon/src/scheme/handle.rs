//! What one open description of the scheme holds.

use std::collections::BTreeMap;

use super::path::{Node, TextFile};
use super::tunables::Tunable;
use crate::device::{ReadSession, ScanSession};
use crate::wire::Token;

/// A session started through `control` (`SCAN_START`/`READ_START`), with the
/// time it was last used (housekeeping expires idle ones).
pub(crate) struct ControlSession {
    pub(crate) kind: SessionKind,
    pub(crate) last_used_ms: u64,
}

/// Scan or read.
pub(crate) enum SessionKind {
    Scan(ScanSession),
    Read(ReadSession),
}

/// One open file of the scheme. Sessions live inside the handle, so they
/// belong to the open description: another client (or another open by the
/// same client) can never name them, and closing frees them.
pub(crate) enum Handle {
    /// A directory: its listing is rendered at each read.
    Dir { node: Node, pos: usize },
    /// A text file: rendered at each read (nothing per handle but the
    /// position), so a handle costs the same whatever the file's size.
    Text { file: TextFile, pos: usize },
    /// The control channel. Permission and attribution use the opener the
    /// scheme recorded at open (`Clients`), as for every handle.
    Control {
        /// The reply to the last written request, until it is read
        /// (`None`). The buffer is kept and reused, so a write/read cycle
        /// allocates nothing once the channel has been used.
        response: Vec<u8>,
        /// Whether `response` holds an unread reply.
        pending: bool,
        /// Sessions started on this channel, by id.
        sessions: BTreeMap<u64, ControlSession>,
    },
    /// `scan`: its session, `None` once housekeeping expired it.
    Scan {
        session: Option<ScanSession>,
        last_used_ms: u64,
    },
    /// `device/<token>`.
    Device {
        token: Token,
        /// Opened for writing (root only).
        writable: bool,
        /// Opened for reading: a read session (`None` once expired).
        reading: bool,
        session: Option<ReadSession>,
        last_used_ms: u64,
    },
    /// `config/<name>`: rendered at each read.
    Config {
        tunable: Tunable,
        pos: usize,
        writable: bool,
    },
    /// `events`: the reader's queue lives in the scheme's reader table, so
    /// publishing visits readers only, not every handle.
    Events,
    /// `mmio` (opened by root).
    Mmio,
}

impl Handle {
    /// Live sessions this handle holds.
    pub(crate) fn sessions(&self) -> usize {
        match self {
            Handle::Control { sessions, .. } => sessions.len(),
            Handle::Scan {
                session: Some(_), ..
            } => 1,
            Handle::Device {
                session: Some(_), ..
            } => 1,
            _ => 0,
        }
    }

    /// Moves the read position of a rendered file (directory, text, config).
    pub(crate) fn set_pos(&mut self, to: usize) {
        match self {
            Handle::Dir { pos, .. } | Handle::Text { pos, .. } | Handle::Config { pos, .. } => {
                *pos = to
            }
            _ => {}
        }
    }

    /// The node it was opened as.
    pub(crate) fn node(&self) -> Node {
        match self {
            Handle::Dir { node, .. } => *node,
            Handle::Text { file, .. } => Node::Text(*file),
            Handle::Control { .. } => Node::Control,
            Handle::Scan { .. } => Node::Scan,
            Handle::Device { token, .. } => Node::Device(*token),
            Handle::Config { tunable, .. } => Node::Config(*tunable),
            Handle::Events => Node::Events,
            Handle::Mmio => Node::Mmio,
        }
    }
}
