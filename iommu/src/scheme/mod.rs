//! Scheme `iommu`: what clients open under `/scheme/iommu/`.
//!
//! Request channels (`control`, `domain/<id>`, `device/<bdf>`): write one
//! 32-byte request, then read its 36-byte response (reading with no response
//! pending, or into a buffer under 36 bytes, is `EINVAL`; the response stays).
//! A malformed request is accepted by `write` and answered with a `-errno`
//! response, as Red Bear's daemon does. `call` with a payload of at least 36
//! bytes whose first 32 are a request does both in one round trip. The uid of
//! the opener is recorded at open and decides every permission check.
//!
//! Text files (`stats`, `faults`) and the directories (root, `domain`,
//! `device`) are snapshots taken at open.

pub mod path;
pub mod requests;
pub mod text;

use std::collections::BTreeMap;

use redox_scheme::scheme::SchemeSync;
use redox_scheme::{CallerCtx, OpenResult};
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{EACCES, EBADF, EINVAL, EISDIR, EMFILE, ENOENT, ENOTDIR, Error, Result};
use syscall::flag::{O_ACCMODE, O_DIRECTORY, O_RDONLY};
use syscall::schemev2::NewFdFlags;

use crate::protocol::{REQUEST_SIZE, RESPONSE_SIZE};
use crate::service::Iommu;
use path::{Node, ROOT_ENTRIES};
use requests::Target;

/// Handle number of the scheme root.
pub const ROOT_ID: usize = 0;
/// Most open handles (`EMFILE` past it).
pub const MAX_HANDLES: usize = 65_536;

enum Handle {
    Snapshot {
        node: Node,
        content: Vec<u8>,
        pos: usize,
    },
    Channel {
        node: Node,
        target: Target,
        uid: u32,
        response: Option<[u8; RESPONSE_SIZE]>,
    },
}

/// The state of scheme `iommu`.
pub struct IommuScheme {
    iommu: Iommu,
    handles: BTreeMap<usize, Handle>,
    next_id: usize,
}

fn copy_out(src: &[u8], pos: &mut usize, offset: u64, buf: &mut [u8]) -> usize {
    let at = if offset == u64::MAX {
        *pos
    } else {
        usize::try_from(offset).unwrap_or(usize::MAX)
    };
    let start = at.min(src.len());
    let n = (src.len() - start).min(buf.len());
    if let (Some(dst), Some(s)) = (buf.get_mut(..n), src.get(start..start + n)) {
        dst.copy_from_slice(s);
    }
    if offset == u64::MAX {
        *pos = start + n;
    }
    n
}

impl IommuScheme {
    /// The scheme over `iommu`.
    pub fn new(iommu: Iommu) -> Self {
        Self {
            iommu,
            handles: BTreeMap::new(),
            next_id: ROOT_ID + 1,
        }
    }

    /// The served state.
    pub fn iommu(&self) -> &Iommu {
        &self.iommu
    }

    /// The served state, mutably (the daemon loop's flush timeout).
    pub fn iommu_mut(&mut self) -> &mut Iommu {
        &mut self.iommu
    }

    /// Open handles.
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

    fn open_node(&mut self, node: Node, flags: usize, uid: u32) -> Result<usize> {
        let access = flags & O_ACCMODE;
        let read_only = access == O_RDONLY || access == 0;
        let is_dir = matches!(node, Node::Root | Node::DomainDir | Node::DeviceDir);
        if !is_dir && flags & O_DIRECTORY != 0 {
            return Err(Error::new(ENOTDIR));
        }
        let target = match node {
            Node::Control => Some(Target::Control),
            Node::Domain(id) => {
                if self.iommu.domain(id).is_err() {
                    self.iommu.create_domain(Some(id), uid)?;
                }
                Some(Target::Domain(id))
            }
            Node::Device(bdf) => Some(Target::Device(bdf)),
            _ => None,
        };
        let handle = match target {
            Some(target) => Handle::Channel {
                node,
                target,
                uid,
                response: None,
            },
            None => {
                if !read_only {
                    return Err(Error::new(if is_dir { EISDIR } else { EACCES }));
                }
                // Faults logged since the last look belong in the snapshot.
                self.iommu.collect_events();
                let content = match node {
                    Node::Stats => text::stats(&self.iommu),
                    Node::Faults => text::faults(&self.iommu),
                    Node::DomainDir => text::domain_listing(&self.iommu),
                    Node::DeviceDir => text::device_listing(&self.iommu),
                    _ => ROOT_ENTRIES
                        .iter()
                        .map(|(name, _)| format!("{name}\n"))
                        .collect(),
                };
                Handle::Snapshot {
                    node,
                    content: content.into_bytes(),
                    pos: 0,
                }
            }
        };
        self.insert(handle)
    }

    fn exchange(&mut self, id: usize, request: &[u8]) -> Result<[u8; RESPONSE_SIZE]> {
        let Some(Handle::Channel { target, uid, .. }) = self.handles.get(&id) else {
            return Err(Error::new(if self.handles.contains_key(&id) {
                EACCES
            } else {
                EBADF
            }));
        };
        let (target, uid) = (*target, *uid);
        Ok(requests::execute(&mut self.iommu, target, uid, request).encode())
    }
}

impl SchemeSync for IommuScheme {
    fn scheme_root(&mut self) -> Result<usize> {
        Ok(ROOT_ID)
    }

    fn openat(
        &mut self,
        dirfd: usize,
        path: &str,
        flags: usize,
        _fcntl_flags: u32,
        ctx: &CallerCtx,
    ) -> Result<OpenResult> {
        if dirfd != ROOT_ID {
            return Err(Error::new(EACCES));
        }
        let node = Node::parse(path).ok_or(Error::new(ENOENT))?;
        let number = self.open_node(node, flags, ctx.uid)?;
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
            Handle::Snapshot { content, pos, .. } => Ok(copy_out(content, pos, offset, buf)),
            Handle::Channel { response, .. } => {
                let resp = response.as_ref().ok_or(Error::new(EINVAL))?;
                let out = buf.get_mut(..RESPONSE_SIZE).ok_or(Error::new(EINVAL))?;
                out.copy_from_slice(resp);
                *response = None;
                Ok(RESPONSE_SIZE)
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
        match self.handles.get(&id) {
            Some(Handle::Channel { .. }) => {}
            Some(Handle::Snapshot { node, .. }) => {
                let dir = matches!(node, Node::Root | Node::DomainDir | Node::DeviceDir);
                return Err(Error::new(if dir { EISDIR } else { EACCES }));
            }
            None => return Err(Error::new(EBADF)),
        }
        let response = self.exchange(id, buf)?;
        if let Some(Handle::Channel { response: slot, .. }) = self.handles.get_mut(&id) {
            *slot = Some(response);
        }
        Ok(buf.len())
    }

    fn call(
        &mut self,
        id: usize,
        payload: &mut [u8],
        _metadata: &[u64],
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        // The uid of a `call` comes from the handle: CallerCtx carries none.
        if payload.len() < RESPONSE_SIZE {
            return Err(Error::new(EINVAL));
        }
        let request = payload.get(..REQUEST_SIZE).ok_or(Error::new(EINVAL))?;
        let response = self.exchange(id, request)?;
        let out = payload.get_mut(..RESPONSE_SIZE).ok_or(Error::new(EINVAL))?;
        out.copy_from_slice(&response);
        Ok(RESPONSE_SIZE)
    }

    fn getdents<'buf>(
        &mut self,
        id: usize,
        mut buf: DirentBuf<&'buf mut [u8]>,
        opaque_offset: u64,
    ) -> Result<DirentBuf<&'buf mut [u8]>> {
        let is_root = id == ROOT_ID
            || matches!(
                self.handles.get(&id),
                Some(Handle::Snapshot {
                    node: Node::Root,
                    ..
                })
            );
        if !is_root {
            return Err(Error::new(ENOTDIR));
        }
        let start = usize::try_from(opaque_offset).unwrap_or(usize::MAX);
        for (i, (name, node)) in ROOT_ENTRIES.iter().enumerate().skip(start) {
            let kind = match node {
                Node::DomainDir | Node::DeviceDir => DirentKind::Directory,
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
            Some(Handle::Snapshot { node, .. } | Handle::Channel { node, .. }) => *node,
            None => return Err(Error::new(EBADF)),
        };
        let p = format!(
            "/scheme/{}/{}",
            self.iommu.config().scheme_name,
            node.path()
        );
        let n = p.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), p.as_bytes().get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn on_close(&mut self, id: usize) {
        self.handles.remove(&id);
    }
}
