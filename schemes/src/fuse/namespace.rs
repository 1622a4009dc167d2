//! The FUSE view of the simulated `/scheme` namespace: inode numbers for paths,
//! and what kind of node each path is, learnt without side effects.

use std::collections::HashMap;
use std::sync::Mutex;

use libredox::call;
use libredox::flag::{O_CLOEXEC, O_DIRECTORY, O_RDONLY};

/// Inode of the mount point: the namespace root, listing every scheme.
pub const ROOT_INO: u64 = 1;

/// What a path is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory (the namespace root, a scheme root, a scheme subdirectory).
    Dir,
    /// Anything a client opens and reads or writes.
    File,
}

/// One entry of a scheme directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// Its name.
    pub name: String,
    /// Its kind, as the scheme's `getdents` reported it.
    pub kind: NodeKind,
}

/// Paths ↔ inode numbers. A path keeps its number for the life of the mount
/// (the namespace is small; numbers are never reused).
#[derive(Default)]
pub struct Inodes {
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    by_path: HashMap<String, u64>,
    // Index i holds inode i + 1 (ROOT_INO is the empty path).
    nodes: Vec<(String, NodeKind)>,
}

impl Inodes {
    /// A table holding only the root.
    pub fn new() -> Inodes {
        let inodes = Inodes::default();
        inodes.intern("", NodeKind::Dir);
        inodes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The inode of `path` (relative to `/scheme`, no leading slash), created
    /// if new; a known path's kind is updated to `kind`.
    pub fn intern(&self, path: &str, kind: NodeKind) -> u64 {
        let mut t = self.lock();
        if let Some(&ino) = t.by_path.get(path) {
            if let Some(slot) = t.nodes.get_mut(ino as usize - 1) {
                slot.1 = kind;
            }
            return ino;
        }
        t.nodes.push((path.to_string(), kind));
        let ino = t.nodes.len() as u64;
        t.by_path.insert(path.to_string(), ino);
        ino
    }

    /// The path and kind of `ino`.
    pub fn get(&self, ino: u64) -> Option<(String, NodeKind)> {
        let index = usize::try_from(ino).ok()?.checked_sub(1)?;
        self.lock().nodes.get(index).cloned()
    }
}

/// `/scheme/<path>` as the kernel spells it.
pub fn kernel_path(path: &str) -> String {
    format!("/scheme/{path}")
}

/// `parent/name`, or `name` under the root.
pub fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

/// Size of Redox's packed `DirentHeader`: u64 inode, u64 next opaque id,
/// u16 record length, u8 kind; the NUL-terminated name follows.
const DIRENT_HEADER: usize = 19;
const DIRENT_KIND_DIRECTORY: u8 = 4;

/// Parses one `getdents` buffer; returns the entries and the opaque id to
/// continue from. Malformed records end the parse (a scheme's bytes are input).
pub fn parse_dirents(buf: &[u8]) -> (Vec<Entry>, Option<u64>) {
    let mut entries = Vec::new();
    let mut next = None;
    let mut at = 0usize;
    while let Some(header) = buf.get(at..at + DIRENT_HEADER) {
        let mut opaque = [0u8; 8];
        opaque.copy_from_slice(&header[8..16]);
        let record_len = usize::from(u16::from_le_bytes([header[16], header[17]]));
        let kind = header[18];
        let Some(record) = buf.get(at..at + record_len) else {
            break;
        };
        if record_len <= DIRENT_HEADER {
            break;
        }
        let name_bytes = &record[DIRENT_HEADER..];
        let name_len = name_bytes
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(name_bytes.len());
        let name = String::from_utf8_lossy(&name_bytes[..name_len]).into_owned();
        entries.push(Entry {
            name,
            kind: if kind == DIRENT_KIND_DIRECTORY {
                NodeKind::Dir
            } else {
                NodeKind::File
            },
        });
        next = Some(u64::from_le_bytes(opaque));
        at += record_len;
    }
    (entries, next)
}

/// Lists a scheme directory through `getdents` (the calling thread must have
/// entered a process of the machine). Errors are errno values.
pub fn list_dir(path: &str) -> Result<Vec<Entry>, i32> {
    let fd = call::open(kernel_path(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0)
        .map_err(|e| e.errno())?;
    let mut entries = Vec::new();
    let mut opaque = 0u64;
    let mut buf = vec![0u8; 4096];
    let result = loop {
        match call::getdents(fd, &mut buf, opaque) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                let (mut more, next) = parse_dirents(buf.get(..n).unwrap_or(&[]));
                let progressed = !more.is_empty();
                entries.append(&mut more);
                match next {
                    Some(next) if progressed && next != opaque && entries.len() < 65_536 => {
                        opaque = next;
                    }
                    _ => break Ok(()),
                }
            }
            // A kernel scheme fails the whole call when an entry does not fit;
            // relibc doubles its buffer and retries, and so does this.
            Err(e) if e.errno() == syscall::error::EINVAL && buf.len() < 1 << 20 => {
                buf.resize(buf.len() * 2, 0);
            }
            Err(e) => break Err(e.errno()),
        }
    };
    let _ = call::close(fd);
    result.map(|()| entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, kind: u8, next: u64) -> Vec<u8> {
        let len = (DIRENT_HEADER + name.len() + 1).next_multiple_of(8);
        let mut r = vec![0u8; len];
        r[8..16].copy_from_slice(&next.to_le_bytes());
        r[16..18].copy_from_slice(&(len as u16).to_le_bytes());
        r[18] = kind;
        r[DIRENT_HEADER..DIRENT_HEADER + name.len()].copy_from_slice(name.as_bytes());
        r
    }

    #[test]
    fn dirents_parse_and_stop_at_garbage() {
        let mut buf = record("control", 8, 1);
        buf.extend(record("device", 4, 2));
        buf.extend([0xFF; 5]);
        let (entries, next) = parse_dirents(&buf);
        assert_eq!(
            entries,
            vec![
                Entry {
                    name: "control".into(),
                    kind: NodeKind::File
                },
                Entry {
                    name: "device".into(),
                    kind: NodeKind::Dir
                }
            ]
        );
        assert_eq!(next, Some(2));
        let mut bad = record("x", 8, 1);
        bad[16] = 3; // shorter than a header
        assert_eq!(parse_dirents(&bad).0, vec![]);
    }

    #[test]
    fn inodes_are_stable() {
        let t = Inodes::new();
        assert_eq!(t.get(ROOT_INO), Some((String::new(), NodeKind::Dir)));
        let a = t.intern("dsmil", NodeKind::Dir);
        let b = t.intern("dsmil/status", NodeKind::File);
        assert_eq!(t.intern("dsmil", NodeKind::Dir), a);
        assert_ne!(a, b);
        assert_eq!(t.get(b).map(|x| x.0), Some("dsmil/status".to_string()));
        assert_eq!(t.get(0), None);
        assert_eq!(t.get(99), None);
    }
}
