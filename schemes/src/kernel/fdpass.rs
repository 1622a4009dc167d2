//! File descriptor passing: `SYS_CALL` with `CallFlags::FD`.
//!
//! Since kernel commit `6c3d5d28` (2026-07) there is no `SYS_SENDFD`; a process
//! passes descriptors with `SYS_CALL` on a file of the receiving scheme, the payload
//! being an array of fd numbers (native-endian `usize`). This copies
//! `call` / `call_fdwrite` / `fdwrite_inner` / `call_fdread` of `redox-os/kernel
//! src/syscall/fs.rs` and `UserScheme::kfdwrite` / `kfdread` and
//! `UserInner::call_fdwrite` / `call_fdread` / `handle_obtainfd` / `handle_movefd`
//! of `src/scheme/user.rs`:
//!
//! | caller does | on | kernel does |
//! |---|---|---|
//! | `call_wo(fd, fds, FD, [])` | a scheme file | removes `fds` from the caller's table (`FD_CLONE`: keeps them), `FD_EXCLUSIVE` and still shared → `EBUSY`; sends `Opcode::Sendfd` `[number, SendFdFlags, 0, count, 0, uid\|gid]` holding the descriptions; returns `count` once the scheme answers Ok |
//! | `call_ro(socket, slots, FD, [ObtainFd, tag])` | the scheme socket | the descriptions of request `tag` enter the daemon's table (close-on-exec), their numbers written into `slots` (`EINVAL` unless it has room for exactly that many) |
//! | `call_ro(fd, slots, FD, [])` | a scheme file | sends `Opcode::Recvfd` `[number, RecvFdFlags, slots, 0, 0, uid\|gid]`; on `RespondWithMultipleFds` the descriptions the scheme moved in enter the caller's table and their numbers fill `slots` |
//! | `call_wo(socket, fds, FD, [MoveFd, tag])` | the scheme socket | removes `fds` from the daemon's table into request `tag` |
//!
//! Descriptions removed from a table and never delivered (the scheme answered with
//! an error, or never obtained them) are closed when the request ends.
//!
//! ## How to pass an fd to a scheme
//!
//! The client (any process; here a driver handing iommud its pcid channel):
//!
//! ```no_run
//! # fn send(iommu_file: usize, channel: usize) -> libredox::error::Result<()> {
//! use syscall::CallFlags;
//! let fds = channel.to_ne_bytes();
//! // Moves `channel` out of this process (add CallFlags::FD_CLONE to keep a copy).
//! let sent = libredox::call::call_wo(iommu_file, &fds, CallFlags::FD, &[])?;
//! assert_eq!(sent, 1);
//! # Ok(()) }
//! ```
//!
//! The scheme (redox-scheme 0.12): the request reaches `SchemeSync::on_sendfd`
//! (through `RequestKind::SendFd`), which takes the fds into its own table:
//!
//! ```no_run
//! use redox_scheme::{SendFdRequest, Socket};
//! use syscall::flag::FobtainFdFlags;
//!
//! struct Iommu {
//!     socket: Socket,
//!     held: Vec<(usize, usize)>,
//! }
//!
//! impl Iommu {
//!     // The body of `SchemeSync::on_sendfd`.
//!     fn on_sendfd(&mut self, req: &SendFdRequest) -> syscall::Result<usize> {
//!         let mut fds = vec![usize::MAX; req.num_fds()];
//!         req.obtain_fd(&self.socket, FobtainFdFlags::empty(), &mut fds)?;
//!         // req.id() is the file it was sent to: its owner decides what the fd means.
//!         self.held.extend(fds.iter().map(|&fd| (req.id(), fd)));
//!         Ok(0)
//!     }
//! }
//! ```
//!
//! A loop that matches `RequestKind` itself must answer with
//! `Response::new(scheme.on_sendfd(&req), req)`. `arg()` is always 0 through
//! `SYS_CALL` and the call's metadata is not forwarded, so what an fd is for is told
//! by the file it is sent to (or found with `fpath` on it). Handing an fd back to a
//! caller: answer an open or dup with `OpenResult::OtherScheme { fd }`
//! (`RespondWithFd`), or a `Recvfd` with `RecvFdRequest::move_fd` then
//! `OpenResult::OtherSchemeMultiple { num_fds }`.

use std::mem::size_of;
use std::sync::Arc;

use syscall::error::{EBUSY, EINVAL, EIO, EMFILE, ENOSYS, EOPNOTSUPP, Error, Result};
use syscall::flag::{CallFlags, RecvFdFlags, SchemeSocketCall, SendFdFlags};
use syscall::schemev2::Opcode;

use super::description::{DescKind, Description};
use super::process::{Context, FD_LIMIT};
use super::user_scheme::Reply;

const WORD: usize = size_of::<usize>();

/// The fd numbers in a payload (whole words; a trailing partial word is ignored,
/// as `in_exact_chunks` yields only whole chunks — inferred).
fn fd_list(payload: &[u8]) -> Vec<usize> {
    payload
        .chunks_exact(WORD)
        .map(|c| {
            let mut w = [0u8; WORD];
            w.copy_from_slice(c);
            usize::from_ne_bytes(w)
        })
        .collect()
}

/// A request tag named by a socket verb's `metadata[1]`.
fn tag_of(metadata: &[u64]) -> Result<u32> {
    match metadata {
        [_, tag] => u32::try_from(*tag).map_err(|_| Error::new(EINVAL)),
        _ => Err(Error::new(EINVAL)),
    }
}

impl Context {
    /// `SYS_CALL` with `FD | WRITE`: send descriptions (`call_fdwrite`).
    pub(super) fn call_fdwrite(
        &self,
        fd: usize,
        payload: &[u8],
        flags: CallFlags,
        metadata: &[u64],
    ) -> Result<usize> {
        let target = self.process.get(fd)?;
        let fds = fd_list(payload);
        let count = fds.len();
        // fdwrite_inner: out of the table first, checks after.
        let descs = self.take_descriptions(&fds, flags.contains(CallFlags::FD_CLONE))?;
        let exclusive = flags.contains(CallFlags::FD_EXCLUSIVE);
        if exclusive && descs.iter().any(|d| Arc::strong_count(d) > 1) {
            return Err(Error::new(EBUSY));
        }
        match &target.kind {
            DescKind::UserFile { socket, number } => {
                let sendfd_flags = if exclusive {
                    SendFdFlags::EXCLUSIVE
                } else {
                    SendFdFlags::empty()
                };
                let sqe = self.sqe(
                    Opcode::Sendfd,
                    [
                        *number as u64,
                        sendfd_flags.bits() as u64,
                        0,
                        count as u64,
                        0,
                        self.creds_arg(),
                    ],
                );
                Self::regular(socket.request_with_fds(sqe, Some(descs))?)?;
                Ok(count)
            }
            DescKind::Socket(socket) => {
                match metadata
                    .first()
                    .map(|&v| SchemeSocketCall::try_from_raw(v as usize))
                {
                    Some(Some(SchemeSocketCall::MoveFd)) => {
                        socket.move_fds(tag_of(metadata)?, descs)?;
                        Ok(count)
                    }
                    _ => Err(Error::new(EINVAL)),
                }
            }
            // A kernel scheme that carries descriptors (the pipe: `kfdwrite` of
            // `src/scheme/pipe.rs`); the others answer EOPNOTSUPP.
            DescKind::Kernel { scheme, handle, .. } => scheme.send_fds(*handle, descs),
            _ => Err(Error::new(EOPNOTSUPP)),
        }
    }

    /// `SYS_CALL` with `FD | READ`: receive descriptions (`call_fdread`).
    pub(super) fn call_fdread(
        &self,
        fd: usize,
        payload: &mut [u8],
        flags: CallFlags,
        metadata: &[u64],
    ) -> Result<usize> {
        let target = self.process.get(fd)?;
        if flags.contains(CallFlags::FD_UPPER) {
            // relibc's upper file table is not emulated.
            return Err(Error::new(ENOSYS));
        }
        match &target.kind {
            DescKind::Socket(socket) => {
                match metadata
                    .first()
                    .map(|&v| SchemeSocketCall::try_from_raw(v as usize))
                {
                    Some(Some(SchemeSocketCall::ObtainFd)) => {
                        let descs = socket.obtain_fds(tag_of(metadata)?)?;
                        self.install_received(descs, payload)
                    }
                    _ => Err(Error::new(EINVAL)),
                }
            }
            DescKind::UserFile { socket, number } => {
                if !payload.len().is_multiple_of(WORD) {
                    return Err(Error::new(EINVAL));
                }
                let sqe = self.sqe(
                    Opcode::Recvfd,
                    [
                        *number as u64,
                        RecvFdFlags::empty().bits() as u64,
                        (payload.len() / WORD) as u64,
                        0,
                        0,
                        self.creds_arg(),
                    ],
                );
                match socket.request(sqe)? {
                    Reply::MultipleFds(Some(descs)) => self.install_received(descs, payload),
                    Reply::MultipleFds(None) => Ok(0),
                    Reply::Cqe(cqe) => match Error::demux(cqe.result as usize) {
                        Ok(_) => Err(Error::new(EIO)),
                        Err(e) => Err(e),
                    },
                    Reply::Fd(_) => Err(Error::new(EIO)),
                }
            }
            DescKind::Kernel { scheme, handle, .. } => {
                if !payload.len().is_multiple_of(WORD) {
                    return Err(Error::new(EINVAL));
                }
                let descs = scheme.recv_fds(*handle, payload.len() / WORD)?;
                if descs.is_empty() {
                    return Ok(0);
                }
                let slots = descs.len() * WORD;
                self.install_received(descs, &mut payload[..slots])
            }
            _ => Err(Error::new(EOPNOTSUPP)),
        }
    }

    /// `bulk_add_fds`: the payload must have room for exactly the descriptions
    /// (`EINVAL`, and they are closed); each enters the lowest free slot,
    /// close-on-exec, and its number is written to the payload.
    fn install_received(&self, descs: Vec<Arc<Description>>, payload: &mut [u8]) -> Result<usize> {
        if payload.len() != descs.len() * WORD {
            return Err(Error::new(EINVAL));
        }
        if self.process.fd_count() + descs.len() > FD_LIMIT {
            return Err(Error::new(EMFILE));
        }
        let n = descs.len();
        for (desc, slot) in descs.into_iter().zip(payload.chunks_exact_mut(WORD)) {
            let fd = self.process.insert(desc, true)?;
            slot.copy_from_slice(&fd.to_ne_bytes());
        }
        Ok(n)
    }
}
