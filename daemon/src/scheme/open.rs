//! What opening each path does: permission, sessions, captures.

use std::collections::BTreeMap;

use syscall::error::{EACCES, EISDIR, ENOTDIR, Error, Result};
use syscall::flag::{O_ACCMODE, O_DIRECTORY, O_RDONLY, O_WRONLY};

use super::DsmilScheme;
use super::clients::Opener;
use super::events::EventQueue;
use super::handle::Handle;
use super::path::Node;
use crate::device::{ReadSession, ScanSession};

impl DsmilScheme {
    /// Opens `node` for `who` (the kernel's caller record at this open, kept
    /// with the handle for everything done through it later).
    pub(super) fn open_node(&mut self, node: Node, flags: usize, who: Opener) -> Result<usize> {
        // The per-client handle bound is checked before any work (a session,
        // an SMI) is done for an open that would be refused anyway.
        self.check_handle_bound(who)?;
        let uid = who.uid;
        let access = flags & O_ACCMODE;
        // Redox spells read-only as its own bit; 0 (no mode) reads too.
        let wants_write = access & O_WRONLY != 0;
        let wants_read = access & O_RDONLY != 0 || access == 0;
        if node.is_dir() {
            if wants_write {
                return Err(Error::new(EISDIR));
            }
            return self.insert(Handle::Dir { node, pos: 0 }, who);
        }
        if flags & O_DIRECTORY != 0 {
            return Err(Error::new(ENOTDIR));
        }
        let now = self.now_ms();
        let handle = match node {
            Node::Root | Node::DeviceDir | Node::ConfigDir => return Err(Error::new(EISDIR)),
            Node::Control => Handle::Control {
                // One chunk reserved at open: the write/read cycle of every
                // fixed-size request reuses it and allocates nothing.
                response: Vec::with_capacity(crate::wire::CHUNK_SIZE),
                pending: false,
                sessions: BTreeMap::new(),
            },
            Node::Scan => {
                if wants_write {
                    return Err(Error::new(EACCES));
                }
                let sid = self.reserve_session(who)?;
                self.last_scan_ms = now;
                match ScanSession::new(sid, self.machine.table().snapshot()) {
                    Ok(session) => Handle::Scan {
                        session: Some(session),
                        last_used_ms: now,
                    },
                    Err(e) => {
                        self.release_sessions(who, 1, false);
                        return Err(e);
                    }
                }
            }
            Node::Device(token) => {
                if token.is_quarantined() {
                    // Refused before any session or firmware access, for
                    // reads and writes alike.
                    self.stats.refusal(EACCES, true);
                    return self
                        .machine
                        .check_read(token, uid)
                        .and(Err(Error::new(EACCES)));
                }
                if wants_write && uid != 0 {
                    return Err(self.refuse(Some(token), EACCES, uid));
                }
                let session = if wants_read {
                    // A read of the token is an SMI on the opener's behalf.
                    self.take_smi(who)?;
                    let sid = self.reserve_session(who)?;
                    let captured = self
                        .machine
                        .capture(token, uid)
                        .and_then(|data| ReadSession::new(sid, token, data));
                    match captured {
                        Ok(s) => Some(s),
                        Err(e) => {
                            self.release_sessions(who, 1, false);
                            self.stats.refusal(e.errno, false);
                            return Err(e);
                        }
                    }
                } else {
                    None
                };
                Handle::Device {
                    token,
                    writable: wants_write,
                    reading: wants_read,
                    session,
                    last_used_ms: now,
                }
            }
            Node::Config(tunable) => {
                if wants_write && uid != 0 {
                    return Err(self.refuse(None, EACCES, uid));
                }
                Handle::Config {
                    tunable,
                    pos: 0,
                    writable: wants_write,
                }
            }
            Node::Events => {
                if wants_write {
                    return Err(Error::new(EACCES));
                }
                let id = self.insert(Handle::Events, who)?;
                self.readers.insert(id, EventQueue::default());
                return Ok(id);
            }
            Node::Mmio => self.open_mmio(uid)?,
            Node::Text(file) => {
                if wants_write {
                    return Err(Error::new(EACCES));
                }
                Handle::Text { file, pos: 0 }
            }
        };
        let id = self.insert(handle, who);
        if id.is_err() {
            // The handle (and any session in it) was dropped: give it back.
            let held = match node {
                Node::Scan => 1,
                Node::Device(_) if wants_read => 1,
                _ => 0,
            };
            self.release_sessions(who, held, false);
        }
        id
    }
}
