//! Scheme `dsmil`: what clients open under `/scheme/dsmil/`.

pub mod control;
pub mod path;
pub mod text;

use std::collections::BTreeMap;

use redox_scheme::scheme::SchemeSync;
use redox_scheme::{CallerCtx, OpenResult};
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{EACCES, EBADF, EINVAL, EISDIR, EMFILE, ENOENT, ENOTDIR, Error, Result};
use syscall::flag::{O_ACCMODE, O_DIRECTORY, O_RDONLY};
use syscall::schemev2::NewFdFlags;

use crate::config::Config;
use crate::hardware::Hardware;
use crate::wire::ControlRequest;
use path::{Node, ROOT_ENTRIES, TextFile};

/// Handle number of the scheme root (what `scheme_root` returns).
pub const ROOT_ID: usize = 0;
/// Most open handles over all clients (`EMFILE` past it): bounded memory.
pub const MAX_HANDLES: usize = 65_536;

/// One open file of the scheme.
enum Handle {
    /// The root directory: its listing, rendered at open.
    Dir { listing: Vec<u8>, pos: usize },
    /// A text file snapshot.
    Text {
        file: TextFile,
        content: Vec<u8>,
        pos: usize,
    },
    /// The control channel, with the response not yet read.
    Control { response: Option<Vec<u8>> },
}

/// The state of scheme `dsmil`.
pub struct DsmilScheme {
    config: Config,
    hardware: Hardware,
    handles: BTreeMap<usize, Handle>,
    next_id: usize,
}

fn copy_out(src: &[u8], pos: &mut usize, offset: u64, buf: &mut [u8]) -> usize {
    // `u64::MAX` means "at the handle's own position"; anything else is a pread.
    let at = if offset == u64::MAX {
        *pos
    } else {
        usize::try_from(offset).unwrap_or(usize::MAX)
    };
    let start = at.min(src.len());
    let n = (src.len() - start).min(buf.len());
    buf[..n].copy_from_slice(&src[start..start + n]);
    if offset == u64::MAX {
        *pos = start + n;
    }
    n
}

impl DsmilScheme {
    /// A scheme serving `config` on `hardware`.
    pub fn new(config: Config, hardware: Hardware) -> Self {
        Self {
            config,
            hardware,
            handles: BTreeMap::new(),
            next_id: ROOT_ID + 1,
        }
    }

    /// Open handles (all clients).
    pub fn open_handles(&self) -> usize {
        self.handles.len()
    }

    fn insert(&mut self, handle: Handle) -> Result<usize> {
        if self.handles.len() >= MAX_HANDLES {
            return Err(Error::new(EMFILE));
        }
        while self.next_id == ROOT_ID || self.handles.contains_key(&self.next_id) {
            self.next_id = self.next_id.wrapping_add(1);
        }
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        self.handles.insert(id, handle);
        Ok(id)
    }

    fn render(&mut self, file: TextFile) -> String {
        match file {
            TextFile::Version => text::version(),
            TextFile::Status => text::status(&text::StatusView {
                temperature: self.hardware.thermal.read_celsius().map_err(|e| e.errno),
                thermal_limit: self.config.thermal_limit_celsius,
                open_handles: self.handles.len(),
            }),
        }
    }

    fn listing() -> Vec<u8> {
        ROOT_ENTRIES
            .iter()
            .map(|(name, _)| format!("{name}\n"))
            .collect::<String>()
            .into_bytes()
    }

    fn open_node(&mut self, node: Node, flags: usize) -> Result<usize> {
        let access = flags & O_ACCMODE;
        let handle = match node {
            Node::Root => {
                if access != O_RDONLY && access != 0 {
                    return Err(Error::new(EISDIR));
                }
                Handle::Dir {
                    listing: Self::listing(),
                    pos: 0,
                }
            }
            Node::Control => {
                if flags & O_DIRECTORY != 0 {
                    return Err(Error::new(ENOTDIR));
                }
                Handle::Control { response: None }
            }
            Node::Text(file) => {
                if flags & O_DIRECTORY != 0 {
                    return Err(Error::new(ENOTDIR));
                }
                if access != O_RDONLY && access != 0 {
                    return Err(Error::new(EACCES));
                }
                Handle::Text {
                    file,
                    content: self.render(file).into_bytes(),
                    pos: 0,
                }
            }
        };
        self.insert(handle)
    }
}

impl SchemeSync for DsmilScheme {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(ROOT_ID)
    }

    fn openat(
        &mut self,
        dirfd: usize,
        path: &str,
        flags: usize,
        _fcntl_flags: u32,
        _ctx: &CallerCtx,
    ) -> Result<OpenResult> {
        if dirfd != ROOT_ID {
            return Err(Error::new(EACCES));
        }
        let node = Node::parse(path).ok_or(Error::new(ENOENT))?;
        let number = self.open_node(node, flags)?;
        Ok(OpenResult::ThisScheme {
            number,
            flags: NewFdFlags::empty(),
        })
    }

    fn read(
        &mut self,
        id: usize,
        buf: &mut [u8],
        offset: u64,
        _fcntl_flags: u32,
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        match self.handles.get_mut(&id).ok_or(Error::new(EBADF))? {
            Handle::Dir { listing, pos } => Ok(copy_out(listing, pos, offset, buf)),
            Handle::Text { content, pos, .. } => Ok(copy_out(content, pos, offset, buf)),
            Handle::Control { response } => {
                let resp = response.as_ref().ok_or(Error::new(EINVAL))?;
                if buf.len() < resp.len() {
                    // The response stays: the client can retry with a big enough buffer.
                    return Err(Error::new(EINVAL));
                }
                let n = resp.len();
                buf[..n].copy_from_slice(resp);
                *response = None;
                Ok(n)
            }
        }
    }

    fn write(
        &mut self,
        id: usize,
        buf: &[u8],
        _offset: u64,
        _fcntl_flags: u32,
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        match self.handles.get_mut(&id).ok_or(Error::new(EBADF))? {
            Handle::Control { response } => {
                let req = ControlRequest::decode(buf)?;
                *response = Some(control::execute(&req)?);
                Ok(buf.len())
            }
            Handle::Dir { .. } => Err(Error::new(EISDIR)),
            Handle::Text { .. } => Err(Error::new(EACCES)),
        }
    }

    fn call(
        &mut self,
        id: usize,
        payload: &mut [u8],
        metadata: &[u64],
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        match self.handles.get(&id).ok_or(Error::new(EBADF))? {
            Handle::Control { .. } => {
                let req = ControlRequest::from_metadata(metadata)?;
                let resp = control::execute(&req)?;
                let out = payload.get_mut(..resp.len()).ok_or(Error::new(EINVAL))?;
                out.copy_from_slice(&resp);
                Ok(resp.len())
            }
            _ => Err(Error::new(EINVAL)),
        }
    }

    fn getdents<'buf>(
        &mut self,
        id: usize,
        mut buf: DirentBuf<&'buf mut [u8]>,
        opaque_offset: u64,
    ) -> Result<DirentBuf<&'buf mut [u8]>> {
        if id != ROOT_ID && !matches!(self.handles.get(&id), Some(Handle::Dir { .. })) {
            return Err(Error::new(ENOTDIR));
        }
        let start = usize::try_from(opaque_offset).unwrap_or(usize::MAX);
        for (i, (name, node)) in ROOT_ENTRIES.iter().enumerate().skip(start) {
            let kind = match node {
                Node::Root => DirentKind::Directory,
                _ => DirentKind::Regular,
            };
            let entry = DirEntry {
                inode: i as u64,
                next_opaque_id: i as u64 + 1,
                name,
                kind,
            };
            if buf.entry(entry).is_err() {
                break;
            }
        }
        Ok(buf)
    }

    fn fpath(&mut self, id: usize, buf: &mut [u8], _ctx: &CallerCtx) -> Result<usize> {
        let node = match self.handles.get(&id) {
            _ if id == ROOT_ID => Node::Root,
            Some(Handle::Dir { .. }) => Node::Root,
            Some(Handle::Control { .. }) => Node::Control,
            Some(Handle::Text { file, .. }) => Node::Text(*file),
            None => return Err(Error::new(EBADF)),
        };
        let p = format!("/scheme/{}/{}", self.config.scheme_name, node.path());
        let n = p.len().min(buf.len());
        buf[..n].copy_from_slice(&p.as_bytes()[..n]);
        Ok(n)
    }

    fn on_close(&mut self, id: usize) {
        self.handles.remove(&id);
    }
}
