//! Scheme `iommu`: what clients open under `/scheme/iommu/`.
//!
//! Request channels (`control`, `domain/<id>`, `device/<bdf>`): write one
//! 32-byte request, then read its 36-byte response (reading with no response
//! pending, or into a buffer under 36 bytes, is `EINVAL`; the response stays).
//! A malformed request is accepted by `write` and answered with a `-errno`
//! response, as Red Bear's daemon does. `call` with a payload of at least 36
//! bytes whose first 32 are a request does both in one round trip. BATCH
//! (`0x19`, a scatter list) is a `call` only: the whole payload is the
//! request, and the answer is written back over it ([`crate::scatter`]).
//!
//! Every handle records its opener ([`Client`]: pid and uid of the open
//! request) and, for a domain, whether it is the owner's handle or root's
//! read-only one ([`Access`]). Every later request on it — write, `call`,
//! fd passing — is judged on that record alone: a `call`'s Sqe carries no
//! uid at all. When the last handle a process opened is closed, its empty
//! domains go away ([`Iommu::release_process`]).
//!
//! `stats` is rendered at read time, piece by piece ([`text::StatsCursor`]);
//! `faults` and the directories (root, `domain`, `device`) are snapshots
//! taken at open (both bounded: the fault history and the domain limit).

pub mod path;
pub mod requests;
pub mod text;

use std::collections::BTreeMap;

use std::rc::Rc;

use redox_scheme::scheme::SchemeSync;
use redox_scheme::{CallerCtx, OpenResult, SendFdRequest, Socket};
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{EACCES, EBADF, EINVAL, EISDIR, EMFILE, ENOENT, ENOTDIR, Error, Result};
use syscall::flag::FobtainFdFlags;
use syscall::flag::{O_ACCMODE, O_DIRECTORY, O_RDONLY};
use syscall::schemev2::NewFdFlags;

use crate::access::Client;
use crate::protocol::{REQUEST_SIZE, RESPONSE_SIZE};
use crate::service::Iommu;
use path::{Node, ROOT_ENTRIES};
pub use requests::{Access, Target};
use text::StatsCursor;

/// Handle number of the scheme root.
pub const ROOT_ID: usize = 0;
/// Most open handles (`EMFILE` past it).
pub const MAX_HANDLES: usize = 65_536;

enum Kind {
    Snapshot {
        node: Node,
        content: Vec<u8>,
        pos: usize,
    },
    Stats {
        cursor: StatsCursor,
        piece: Vec<u8>,
        at: usize,
    },
    Channel {
        node: Node,
        target: Target,
        access: Access,
        response: Option<[u8; RESPONSE_SIZE]>,
    },
}

struct Handle {
    opener: Client,
    kind: Kind,
}

/// The state of scheme `iommu`.
pub struct IommuScheme {
    iommu: Iommu,
    /// The scheme's socket, needed to take fds a client passes (fd passing
    /// obtains them through it); `None` where nobody passes fds (SQE tests).
    socket: Option<Rc<Socket>>,
    handles: BTreeMap<usize, Handle>,
    /// Open handles per opening pid.
    by_pid: BTreeMap<usize, usize>,
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
            socket: None,
            handles: BTreeMap::new(),
            by_pid: BTreeMap::new(),
            next_id: ROOT_ID + 1,
        }
    }

    /// The socket the scheme is served on (fd passing obtains fds through it).
    pub fn set_socket(&mut self, socket: Rc<Socket>) {
        self.socket = Some(socket);
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
        *self.by_pid.entry(handle.opener.pid).or_default() += 1;
        self.handles.insert(id, handle);
        Ok(id)
    }

    /// Opens `node` for `opener`, counting the handle against its uid.
    pub fn open_node(&mut self, node: Node, flags: usize, opener: Client) -> Result<usize> {
        self.iommu.accounts_mut().take_handle(opener.uid)?;
        let r = self.open_counted(node, flags, opener);
        if r.is_err() {
            self.iommu.accounts_mut().give_handle(opener.uid);
        }
        r
    }

    /// A domain handle on `id` for `opener`: the owner's, root's read-only
    /// one on another process's domain, else `EACCES`. A free id is created
    /// for the opener (Red Bear's "opening creates it").
    fn open_domain(&mut self, id: u16, read_only: bool, opener: Client) -> Result<Access> {
        match self.iommu.domain(id) {
            Ok(d) if opener.owns(d.owner) => Ok(Access::Full),
            Ok(_) if opener.is_root() && read_only => Ok(Access::QueryOnly),
            Ok(_) => Err(Error::new(EACCES)),
            Err(_) => {
                self.iommu.create_exact(id, opener)?;
                Ok(Access::Full)
            }
        }
    }

    fn open_counted(&mut self, node: Node, flags: usize, opener: Client) -> Result<usize> {
        let access = flags & O_ACCMODE;
        let read_only = access == O_RDONLY || access == 0;
        let is_dir = matches!(node, Node::Root | Node::DomainDir | Node::DeviceDir);
        if !is_dir && flags & O_DIRECTORY != 0 {
            return Err(Error::new(ENOTDIR));
        }
        let channel = match node {
            Node::Control => Some((node, Target::Control, Access::Full)),
            Node::Domain(id) => {
                let access = self.open_domain(id, read_only, opener)?;
                Some((node, Target::Domain(id), access))
            }
            Node::DomainNew => {
                let id = self.iommu.create_domain(None, opener)?;
                Some((Node::Domain(id), Target::Domain(id), Access::Full))
            }
            Node::Device(bdf) => Some((node, Target::Device(bdf), Access::Full)),
            _ => None,
        };
        let kind = match channel {
            Some((node, target, access)) => Kind::Channel {
                node,
                target,
                access,
                response: None,
            },
            None => {
                if !read_only {
                    return Err(Error::new(if is_dir { EISDIR } else { EACCES }));
                }
                // Faults logged since the last look belong in what is read.
                self.iommu.collect_events();
                let content = match node {
                    Node::Stats => {
                        return self.insert(Handle {
                            opener,
                            kind: Kind::Stats {
                                cursor: StatsCursor::default(),
                                piece: Vec::new(),
                                at: 0,
                            },
                        });
                    }
                    Node::Faults => text::faults(&self.iommu),
                    Node::DomainDir => text::domain_listing(&self.iommu),
                    Node::DeviceDir => text::device_listing(&self.iommu),
                    _ => ROOT_ENTRIES
                        .iter()
                        .map(|(name, _)| format!("{name}\n"))
                        .collect(),
                };
                Kind::Snapshot {
                    node,
                    content: content.into_bytes(),
                    pos: 0,
                }
            }
        };
        self.insert(Handle { opener, kind })
    }

    /// The request channel `id`: its target, access and opener.
    fn channel(&self, id: usize) -> Result<(Target, Access, Client)> {
        match self.handles.get(&id) {
            Some(Handle {
                opener,
                kind: Kind::Channel { target, access, .. },
            }) => Ok((*target, *access, *opener)),
            Some(_) => Err(Error::new(EACCES)),
            None => Err(Error::new(EBADF)),
        }
    }

    fn exchange(&mut self, id: usize, request: &[u8]) -> Result<[u8; RESPONSE_SIZE]> {
        let (target, access, opener) = self.channel(id)?;
        Ok(requests::execute(&mut self.iommu, target, access, opener, request).encode())
    }

    /// ASSIGN by channel: `channel_fd` (an fd of iommud's own, received by fd
    /// passing on domain handle `id`) is asked which PCI function it is, and
    /// exactly that function joins the domain. Returns its requester id.
    /// Only the domain owner's handle may do it (`EACCES`), and only on a
    /// domain handle (`EOPNOTSUPP`).
    pub fn assign_channel(&mut self, id: usize, channel_fd: usize) -> Result<u16> {
        let (target, access, opener) = self.channel(id)?;
        let Target::Domain(domain) = target else {
            return Err(Error::new(syscall::error::EOPNOTSUPP));
        };
        if access != Access::Full {
            return Err(Error::new(EACCES));
        }
        // Ownership first: a stranger's request must not even touch the channel.
        self.iommu.owned(domain, opener)?;
        let bdf = crate::pcid_channel::request_function(channel_fd)?;
        self.iommu.assign_proven(bdf, domain, opener)?;
        Ok(bdf.requester_id())
    }

    fn read_stats(&mut self, id: usize, buf: &mut [u8]) -> Result<usize> {
        let Some(Handle {
            kind: Kind::Stats { cursor, piece, at },
            ..
        }) = self.handles.get_mut(&id)
        else {
            return Err(Error::new(EBADF));
        };
        let mut n = 0;
        while n < buf.len() {
            if *at >= piece.len() {
                match text::stats_piece(&self.iommu, cursor) {
                    Some(p) => {
                        *piece = p.into_bytes();
                        *at = 0;
                    }
                    None => break,
                }
            }
            let take = (piece.len() - *at).min(buf.len() - n);
            if let (Some(dst), Some(src)) = (buf.get_mut(n..n + take), piece.get(*at..*at + take)) {
                dst.copy_from_slice(src);
            }
            *at += take;
            n += take;
        }
        Ok(n)
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
        // An open request carries the caller's pid and euid (the kernel fills
        // them for OpenAt); the handle keeps them for every later request.
        let number = self.open_node(node, flags, Client::new(ctx.pid, ctx.uid))?;
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
        match &mut self.handles.get_mut(&id).ok_or(Error::new(EBADF))?.kind {
            Kind::Snapshot { content, pos, .. } => Ok(copy_out(content, pos, offset, buf)),
            Kind::Stats { .. } => self.read_stats(id, buf),
            Kind::Channel { response, .. } => {
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
        match self.handles.get(&id).map(|h| &h.kind) {
            Some(Kind::Channel { .. }) => {}
            Some(Kind::Snapshot { node, .. }) => {
                let dir = matches!(node, Node::Root | Node::DomainDir | Node::DeviceDir);
                return Err(Error::new(if dir { EISDIR } else { EACCES }));
            }
            Some(Kind::Stats { .. }) => return Err(Error::new(EACCES)),
            None => return Err(Error::new(EBADF)),
        }
        let response = self.exchange(id, buf)?;
        if let Some(Handle {
            kind: Kind::Channel { response: slot, .. },
            ..
        }) = self.handles.get_mut(&id)
        {
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
        // Who is asking comes from the handle: a `call`'s CallerCtx carries
        // metadata where the uid would be.
        if payload.len() < RESPONSE_SIZE {
            return Err(Error::new(EINVAL));
        }
        if requests::is_batch(payload) {
            let (target, access, opener) = self.channel(id)?;
            requests::execute_batch(&mut self.iommu, target, access, opener, payload);
            return Ok(payload.len());
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
                self.handles.get(&id).map(|h| &h.kind),
                Some(Kind::Snapshot {
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
        let node = match self.handles.get(&id).map(|h| &h.kind) {
            _ if id == ROOT_ID => Node::Root,
            Some(Kind::Snapshot { node, .. } | Kind::Channel { node, .. }) => *node,
            Some(Kind::Stats { .. }) => Node::Stats,
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

    /// Fd passing (`SYS_CALL` with `CallFlags::FD` on a domain handle): the
    /// one fd is a pcid channel; the function pcid says it is joins the
    /// domain ([`IommuScheme::assign_channel`]). The handle is checked before
    /// the fd is taken, so a refused client keeps nothing in iommud (the
    /// kernel closes the fd it sent); iommud closes its copy when done.
    ///
    /// Only a handle root opened may pass a channel (`EACCES`): pcid gives
    /// channels to root alone, so nothing else can be a proof, and iommud
    /// talks to the fd on its only thread: an fd of its own scheme, or of a
    /// scheme that never answers, would stop it. Refusing before touching
    /// the fd leaves that to root drivers only.
    fn on_sendfd(&mut self, req: &SendFdRequest) -> Result<usize> {
        let id = req.id();
        let (target, access, opener) = self.channel(id)?;
        if !matches!(target, Target::Domain(_)) {
            return Err(Error::new(syscall::error::EOPNOTSUPP));
        }
        if access != Access::Full || !opener.is_root() {
            return Err(Error::new(EACCES));
        }
        if let Target::Domain(domain) = target {
            self.iommu.owned(domain, opener)?;
        }
        if req.num_fds() != 1 {
            return Err(Error::new(EINVAL));
        }
        let socket = self
            .socket
            .clone()
            .ok_or(Error::new(syscall::error::EOPNOTSUPP))?;
        let mut fds = [usize::MAX];
        req.obtain_fd(&socket, FobtainFdFlags::empty(), &mut fds)?;
        let [fd] = fds;
        let result = self.assign_channel(id, fd);
        if let Err(e) = libredox::call::close(fd) {
            log::warn!("iommud: closing a received channel: {e}");
        }
        result.map(|_| 0)
    }

    /// `mmap` on a domain handle, offset = the IOVA of an ALLOC buffer: the
    /// client maps the pages iommud allocated for it (the kernel maps what this
    /// returns, an address in iommud's own mapping of the buffer). The
    /// owner's handle only; anything else is `EACCES` / `EINVAL`.
    fn mmap_prep(
        &mut self,
        id: usize,
        offset: u64,
        size: usize,
        _flags: syscall::flag::MapFlags,
        _ctx: &CallerCtx,
    ) -> Result<usize> {
        let (target, access, opener) = self.channel(id)?;
        let Target::Domain(domain) = target else {
            return Err(Error::new(syscall::error::EOPNOTSUPP));
        };
        if access != Access::Full {
            return Err(Error::new(EACCES));
        }
        self.iommu.buffer_address(domain, opener, offset, size)
    }

    fn on_close(&mut self, id: usize) {
        let Some(handle) = self.handles.remove(&id) else {
            return;
        };
        let Client { pid, uid } = handle.opener;
        self.iommu.accounts_mut().give_handle(uid);
        let left = self.by_pid.get_mut(&pid).map(|n| {
            *n = n.saturating_sub(1);
            *n
        });
        if left == Some(0) {
            self.by_pid.remove(&pid);
            self.iommu.release_process(pid);
        }
    }
}
