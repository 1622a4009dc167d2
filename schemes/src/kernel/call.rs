//! `SYS_CALL` (`redox_sys_call_v0`, `redox_sys_call_multiple_v0`): Redox's ioctl,
//! and the verbs of scheme sockets and thread handles.
//!
//! What a user scheme receives copies `call` in `redox-os/kernel src/syscall/fs.rs`
//! and `UserScheme::kcall` in `src/scheme/user.rs`:
//! * at most **3** metadata words are copied; more are dropped without an error;
//! * they land in `args[3..6]` of an `Opcode::Call` Sqe — so `args[5]`, where other
//!   requests carry `euid | egid << 32`, holds metadata word 2, and redox-scheme's
//!   `CallerCtx.uid/gid` are garbage on a call (only `pid` and the tag are real);
//! * the `READ`/`WRITE` flags are the kernel's business and are not forwarded;
//! * `CONSUME` removes the fd from the caller's table before the call;
//! * `FD` turns the call into fd passing (`super::fdpass`).
//!
//! The two-fd form (`call_multiple`) follows `shared/notes/redox-real.md` §3: the Sqe
//! gets `MULTIPLE_IDS`, `args[5]` is the second file's number and only 2 metadata
//! words fit; both fds must be files of one scheme (`EXDEV`), and more than two or
//! none is `EINVAL`.

use std::mem::size_of;
use std::sync::Arc;

use syscall::error::{EBADF, EINVAL, EOPNOTSUPP, EXDEV, Error, Result};
use syscall::flag::{self as rflag, CallFlags};
use syscall::schemev2::{Cqe, Opcode, Sqe, SqeFlags};

use super::description::{DescKind, Description};
use super::process::Context;
use super::user_scheme::SchemeSocket;

/// Metadata words `SYS_CALL` copies into the kernel (`let mut meta = [0_u64; 3]`).
pub const CALL_METADATA_WORDS: usize = 3;

/// The first [`CALL_METADATA_WORDS`] words: the kernel copies the common bytes of
/// the caller's array into a 3-word buffer and ignores the rest.
fn cut_metadata(metadata: &[u64]) -> &[u64] {
    &metadata[..metadata.len().min(CALL_METADATA_WORDS)]
}

impl Context {
    /// `call(fd, payload, flags, metadata)`.
    pub fn call(
        &self,
        fd: usize,
        payload: &mut [u8],
        call_flags: CallFlags,
        metadata: &[u64],
    ) -> Result<usize> {
        let metadata = cut_metadata(metadata);
        if call_flags.contains(CallFlags::FD | CallFlags::WRITE) {
            return self.call_fdwrite(fd, payload, call_flags, metadata);
        }
        if call_flags.contains(CallFlags::FD | CallFlags::READ) {
            return self.call_fdread(fd, payload, call_flags, metadata);
        }
        let desc = if call_flags.contains(CallFlags::CONSUME) {
            self.process.remove(fd)?
        } else {
            self.process.get(fd)?
        };
        match &desc.kind {
            DescKind::UserFile { socket, number } => {
                let mut m = [0u64; CALL_METADATA_WORDS];
                m[..metadata.len()].copy_from_slice(metadata);
                let sqe = self.sqe(
                    Opcode::Call,
                    [
                        *number as u64,
                        payload.as_mut_ptr() as u64,
                        payload.len() as u64,
                        m[0],
                        m[1],
                        m[2],
                    ],
                );
                Self::regular(socket.request(sqe)?)
            }
            DescKind::Socket(s) => self.socket_call(s, payload, metadata),
            DescKind::Thread => self.thread_call(metadata),
            DescKind::Kernel { scheme, handle, .. } => {
                scheme.call(*handle, payload, metadata, &self.caller())
            }
            _ => Err(Error::new(EBADF)),
        }
    }

    /// `call` naming two files of one scheme (`redox_sys_call_multiple_v0`).
    pub fn call_multiple(
        &self,
        fds: &[usize],
        payload: &mut [u8],
        call_flags: CallFlags,
        metadata: &[u64],
    ) -> Result<usize> {
        let metadata = cut_metadata(metadata);
        match fds {
            [fd] => self.call(*fd, payload, call_flags, metadata),
            [first, second] => {
                let a = self.process.get(*first)?;
                let b = self.process.get(*second)?;
                let (
                    DescKind::UserFile { socket, number },
                    DescKind::UserFile {
                        socket: socket_b,
                        number: number_b,
                    },
                ) = (&a.kind, &b.kind)
                else {
                    // Not two files of one user scheme (kernel schemes take no
                    // two-fd calls here).
                    return Err(Error::new(EXDEV));
                };
                if !Arc::ptr_eq(socket, socket_b) {
                    return Err(Error::new(EXDEV));
                }
                // Two words of metadata: the third slot names the second file.
                let mut m = [0u64; 2];
                let n = metadata.len().min(2);
                m[..n].copy_from_slice(&metadata[..n]);
                let mut sqe = self.sqe(
                    Opcode::Call,
                    [
                        *number as u64,
                        payload.as_mut_ptr() as u64,
                        payload.len() as u64,
                        m[0],
                        m[1],
                        *number_b as u64,
                    ],
                );
                sqe.sqe_flags |= SqeFlags::MULTIPLE_IDS;
                Self::regular(socket.request(sqe)?)
            }
            _ => Err(Error::new(EINVAL)),
        }
    }

    /// Calls on the scheme socket itself without `FD`: redox-scheme's "write
    /// responses, then read requests" in one round trip (`metadata[1]` responses to
    /// write, `metadata[2]` requests to read).
    fn socket_call(&self, s: &SchemeSocket, buf: &mut [u8], metadata: &[u64]) -> Result<usize> {
        let (Some(&num_write), Some(&num_read)) = (metadata.get(1), metadata.get(2)) else {
            return Err(Error::new(EINVAL));
        };
        let wlen = (num_write as usize)
            .checked_mul(size_of::<Cqe>())
            .filter(|&l| l <= buf.len())
            .ok_or(Error::new(EINVAL))?;
        if wlen > 0 {
            s.write_responses(&buf[..wlen], &self.process)?;
        }
        let rlen = (num_read as usize)
            .checked_mul(size_of::<Sqe>())
            .filter(|&l| l <= buf.len())
            .ok_or(Error::new(EINVAL))?;
        if rlen == 0 {
            return Ok(2);
        }
        Ok(if s.read_requests(&mut buf[..rlen], false)? == 0 {
            1
        } else {
            2
        })
    }

    /// Verbs on a thread handle. Only `Iopl` is emulated: the calling thread gets
    /// (simulated) I/O port privilege.
    fn thread_call(&self, metadata: &[u64]) -> Result<usize> {
        match metadata.first() {
            // kernel `src/scheme/proc.rs` `kcall`: Iopl sets `userspace_io_allowed`
            // on `context::current()` — the calling thread, whichever thread the
            // handle names — with no uid check: holding a thread handle is the
            // capability (redox-real.md §8).
            Some(&verb) if verb == rflag::ProcSchemeVerb::Iopl as u64 => {
                self.process.grant_io_privilege();
                Ok(0)
            }
            _ => Err(Error::new(EOPNOTSUPP)),
        }
    }

    /// relibc's `redox_cur_thrfd_v0`: a handle on the calling thread.
    pub fn current_thread_fd(&self) -> Result<usize> {
        let d = self
            .kernel
            .new_description(DescKind::Thread, rflag::O_RDWR, false);
        self.process.insert(d, true)
    }

    /// The descriptions behind `fds`, removed from the table (or shared with it when
    /// `clone`); nothing is removed unless every fd is open.
    pub(super) fn take_descriptions(
        &self,
        fds: &[usize],
        clone: bool,
    ) -> Result<Vec<Arc<Description>>> {
        let descs = fds
            .iter()
            .map(|&fd| self.process.get(fd))
            .collect::<Result<Vec<_>>>()?;
        if !clone {
            for &fd in fds {
                // Another thread may have closed it meanwhile: that is its EBADF.
                self.process.remove(fd).map_err(|_| Error::new(EBADF))?;
            }
        }
        Ok(descs)
    }
}
