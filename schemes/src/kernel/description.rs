//! Open file descriptions: what file descriptors refer to.
//!
//! File descriptors hold `Arc<Description>`; `dup` with an empty buffer and `dup2`
//! share one description. The description's `Drop` is the *last close*: it sends the
//! userspace scheme its `CloseMsg`, or closes the kernel scheme's handle.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use super::event::{EventHub, EventQueue, SourceKey};
use super::kscheme::KernelScheme;
use super::user_scheme::SchemeSocket;

/// What a description is.
pub enum DescKind {
    /// A file of a userspace scheme.
    UserFile {
        /// The scheme's socket.
        socket: Arc<SchemeSocket>,
        /// The scheme's number for the file.
        number: usize,
    },
    /// The daemon's end of a scheme socket.
    Socket(Arc<SchemeSocket>),
    /// A handle of a kernel scheme.
    Kernel {
        /// The scheme.
        scheme: Arc<dyn KernelScheme>,
        /// Its kernel-unique id (for event keys).
        scheme_id: u64,
        /// Its registered name (for `fpath`).
        scheme_name: String,
        /// The scheme's handle.
        handle: usize,
        /// The path it was opened with (for `openat` relative to it).
        path: String,
    },
    /// An event queue.
    EventQueue(Arc<EventQueue>),
    /// `/scheme/namespace/scheme-creation-cap`.
    CreationCap,
    /// A namespace handle (`getns`).
    Namespace,
    /// A kernel handle on the calling thread (relibc's `redox_cur_thrfd_v0`).
    Thread,
}

/// One open file description.
pub struct Description {
    /// Kernel-unique id.
    pub id: u64,
    /// What it is.
    pub kind: DescKind,
    /// Redox access mode and status flags (`O_NONBLOCK`, …).
    pub flags: AtomicUsize,
    /// File offset, used when the scheme asked for a positioned file.
    pub offset: AtomicU64,
    /// Whether the scheme asked the kernel to track the offset.
    pub positioned: bool,
    hub: Arc<EventHub>,
}

impl Description {
    /// A new description.
    pub fn new(
        id: u64,
        kind: DescKind,
        flags: usize,
        positioned: bool,
        hub: Arc<EventHub>,
    ) -> Self {
        Self {
            id,
            kind,
            flags: AtomicUsize::new(flags),
            offset: AtomicU64::new(0),
            positioned,
            hub,
        }
    }

    /// Current Redox flags.
    pub fn flags(&self) -> usize {
        self.flags.load(Ordering::Acquire)
    }

    /// The key under which readiness of this description is posted.
    pub fn source_key(&self) -> Option<SourceKey> {
        match &self.kind {
            DescKind::UserFile { socket, number } => Some(SourceKey::UserFile(socket.id, *number)),
            DescKind::Socket(s) => Some(SourceKey::Socket(s.id)),
            DescKind::Kernel {
                scheme_id, handle, ..
            } => Some(SourceKey::Kernel(*scheme_id, *handle)),
            _ => None,
        }
    }
}

impl Drop for Description {
    fn drop(&mut self) {
        self.hub.forget_description(self.id);
        match &self.kind {
            DescKind::UserFile { socket, number } => socket.send_close(*number),
            DescKind::Socket(s) => s.owner_closed(),
            DescKind::Kernel { scheme, handle, .. } => scheme.close(*handle),
            DescKind::EventQueue(_)
            | DescKind::CreationCap
            | DescKind::Namespace
            | DescKind::Thread => {}
        }
    }
}
