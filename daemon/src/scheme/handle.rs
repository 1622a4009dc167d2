//! What one open description of the scheme holds.

use std::collections::BTreeMap;

use super::events::EventQueue;
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
    /// A directory: its listing, rendered at open.
    Dir {
        node: Node,
        listing: Vec<u8>,
        pos: usize,
    },
    /// A text file snapshot.
    Text {
        file: TextFile,
        content: Vec<u8>,
        pos: usize,
    },
    /// The control channel.
    Control {
        /// Who opened it: `call` carries no credentials, so permission and
        /// attribution use the opener.
        opener_uid: u32,
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
    /// `config/<name>`.
    Config {
        tunable: Tunable,
        content: Vec<u8>,
        pos: usize,
        writable: bool,
    },
    /// `events`: this reader's queue.
    Events(EventQueue),
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

    /// The node it was opened as.
    pub(crate) fn node(&self) -> Node {
        match self {
            Handle::Dir { node, .. } => *node,
            Handle::Text { file, .. } => Node::Text(*file),
            Handle::Control { .. } => Node::Control,
            Handle::Scan { .. } => Node::Scan,
            Handle::Device { token, .. } => Node::Device(*token),
            Handle::Config { tunable, .. } => Node::Config(*tunable),
            Handle::Events(_) => Node::Events,
            Handle::Mmio => Node::Mmio,
        }
    }
}
