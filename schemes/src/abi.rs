//! The relibc C ABI that `libredox` (0.1 and 0.2) and `redox_event` (0.5) call.
//!
//! On Redox, relibc defines these symbols; on Linux this module does, and forwards
//! each call to the current thread's simulated process ([`crate::kernel::Context`]).
//! A thread that never entered a process gets `ENOSYS`, as does every call this
//! mocked kernel does not emulate. [`DEFINED`] lists the symbols; a test compares it
//! with what the locked libredox versions and this workspace's own product crates
//! declare (dsmild declares `redox_cur_thrfd_v0`, which libredox does not wrap).

#![allow(clippy::missing_safety_doc)]

use std::time::{Duration, Instant};

use event::raw::RawEventV1;
use syscall::error::{EFAULT, EINVAL, ENOSYS, Error, Result};
use syscall::flag::CallFlags;

use crate::kernel::Context;
use crate::kernel::process::with_current;

fn sys(f: impl FnOnce(&Context) -> Result<usize>) -> usize {
    let r = with_current(f).unwrap_or(Err(Error::new(ENOSYS)));
    Error::mux(r)
}

fn unemulated() -> usize {
    Error::mux(Err(Error::new(ENOSYS)))
}

/// A Redox `Stat` as the host's `struct stat` (what libredox hands back on Linux).
/// Redox `MODE_*` type bits have the same values as Linux `S_IF*`.
fn host_stat(st: &syscall::data::Stat) -> libc::stat {
    // SAFETY: `libc::stat` is plain old data; all-zero is a valid value.
    let mut out: libc::stat = unsafe { std::mem::zeroed() };
    out.st_dev = st.st_dev as _;
    out.st_ino = st.st_ino as _;
    out.st_mode = st.st_mode as _;
    out.st_nlink = st.st_nlink as _;
    out.st_uid = st.st_uid as _;
    out.st_gid = st.st_gid as _;
    out.st_size = st.st_size as _;
    out.st_blksize = st.st_blksize as _;
    out.st_blocks = st.st_blocks as _;
    out
}

/// # Safety
/// `ptr` must be valid for `len` bytes (or `len` zero).
unsafe fn bytes<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(Error::new(EFAULT));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// # Safety
/// `ptr` must be valid for writes of `len` bytes (or `len` zero).
unsafe fn bytes_mut<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8]> {
    if len == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(Error::new(EFAULT));
    }
    // SAFETY: the caller's contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
}

/// # Safety
/// As [`bytes`].
unsafe fn text<'a>(ptr: *const u8, len: usize) -> Result<&'a str> {
    // SAFETY: forwarded.
    std::str::from_utf8(unsafe { bytes(ptr, len)? }).map_err(|_| Error::new(EINVAL))
}

macro_rules! abi {
    ($( fn $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $body:block )*) => {
        $(
            #[doc = concat!("relibc's `", stringify!($name), "`.")]
            #[unsafe(no_mangle)]
            #[allow(unused_variables)]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> usize $body
        )*
        /// Every relibc symbol this crate defines.
        pub const DEFINED: &[&str] = &[$(stringify!($name)),*];
    };
}

abi! {
    fn redox_open_v1(path: *const u8, len: usize, flags: u32, mode: u16) {
        sys(|c| c.open(unsafe { text(path, len)? }, flags as i32, mode))
    }
    fn redox_openat_v1(fd: usize, path: *const u8, len: usize, flags: u32, fcntl_flags: u32) {
        sys(|c| c.openat(fd, unsafe { text(path, len)? }, flags as i32, fcntl_flags))
    }
    fn redox_dup_v1(fd: usize, buf: *const u8, len: usize) {
        sys(|c| c.dup(fd, unsafe { bytes(buf, len)? }))
    }
    fn redox_dup2_v1(old: usize, new: usize) {
        sys(|c| c.dup2(old, new))
    }
    fn redox_dup2_v2(old: usize, new: usize) {
        sys(|c| c.dup2(old, new))
    }
    fn redox_read_v1(fd: usize, dst: *mut u8, len: usize) {
        sys(|c| c.read(fd, unsafe { bytes_mut(dst, len)? }))
    }
    fn redox_write_v1(fd: usize, src: *const u8, len: usize) {
        sys(|c| c.write(fd, unsafe { bytes(src, len)? }))
    }
    fn redox_fchmod_v1(fd: usize, mode: u16) { unemulated() }
    fn redox_fchown_v1(fd: usize, uid: u32, gid: u32) { unemulated() }
    fn redox_getdents_v0(fd: usize, buf: *mut u8, len: usize, opaque: u64) {
        sys(|c| c.getdents(fd, unsafe { bytes_mut(buf, len)? }, opaque))
    }
    fn redox_fstat_v1(fd: usize, dst: *mut libc::stat) {
        sys(|c| {
            if dst.is_null() {
                return Err(Error::new(EFAULT));
            }
            let st = c.fstat(fd)?;
            // SAFETY: non-null; the caller passes a stat to fill.
            unsafe { dst.write(host_stat(&st)) };
            Ok(0)
        })
    }
    fn redox_fstatvfs_v1(fd: usize, dst: *mut libc::statvfs) { unemulated() }
    fn redox_fsync_v1(fd: usize) { unemulated() }
    fn redox_fdatasync_v1(fd: usize) { unemulated() }
    fn redox_ftruncate_v0(fd: usize, len: usize) { unemulated() }
    fn redox_futimens_v1(fd: usize, times: *const libc::timespec) { unemulated() }
    fn redox_fpath_v1(fd: usize, dst: *mut u8, len: usize) {
        sys(|c| c.fpath(fd, unsafe { bytes_mut(dst, len)? }))
    }
    fn redox_relpathat_v0(dirfd: usize, fd: usize, dst: *mut u8, len: usize) { unemulated() }
    fn redox_close_v1(fd: usize) {
        sys(|c| c.close(fd))
    }
    fn redox_get_pid_v1() {
        sys(|c| Ok(c.process.pid))
    }
    fn redox_get_euid_v1() {
        sys(|c| Ok(c.process.uid as usize))
    }
    fn redox_get_ruid_v1() {
        sys(|c| Ok(c.process.uid as usize))
    }
    fn redox_get_egid_v1() {
        sys(|c| Ok(c.process.gid as usize))
    }
    fn redox_get_rgid_v1() {
        sys(|c| Ok(c.process.gid as usize))
    }
    fn redox_get_ens_v0() {
        sys(|c| c.getns())
    }
    fn redox_get_ns_v0() {
        sys(|c| c.getns())
    }
    fn redox_get_proc_credentials_v1(cap_fd: usize, pid: usize, buf: *mut u8, len: usize) {
        unemulated()
    }
    fn redox_setrens_v1(rns: usize, ens: usize) {
        sys(|c| c.setrens(rns, ens))
    }
    fn redox_mkns_v1(names: *const libc::iovec, count: usize, flags: u32) { unemulated() }
    fn redox_kill_v1(pid: usize, signal: u32) { unemulated() }
    fn redox_waitpid_v1(pid: usize, status: *mut i32, options: u32) { unemulated() }
    fn redox_sigprocmask_v1(how: u32, new: *const u64, old: *mut u64) { unemulated() }
    fn redox_sigaction_v1(signal: u32, new: *const libc::sigaction, old: *mut libc::sigaction) {
        unemulated()
    }
    fn redox_clock_gettime_v1(clock: usize, ts: *mut libc::timespec) {
        sys(|c| {
            if ts.is_null() {
                return Err(Error::new(EFAULT));
            }
            let ns = if clock == libc::CLOCK_REALTIME as usize {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            } else {
                c.kernel.clock().now_ns()
            };
            // SAFETY: non-null; the caller passes a timespec to fill.
            unsafe {
                (*ts).tv_sec = (ns / 1_000_000_000) as libc::time_t;
                (*ts).tv_nsec = (ns % 1_000_000_000) as libc::c_long;
            }
            Ok(0)
        })
    }
    fn redox_mmap_v1(addr: *mut (), len: usize, prot: u32, flags: u32, fd: usize, offset: u64) {
        sys(|c| c.mmap(fd, addr as usize, len, prot, flags, offset))
    }
    fn redox_munmap_v1(addr: *mut (), len: usize) {
        sys(|c| c.munmap(addr as usize, len))
    }
    fn redox_strerror_v1(dst: *mut u8, dst_len: *mut usize, error: u32) {
        if dst_len.is_null() {
            return Error::mux(Err(Error::new(EFAULT)));
        }
        let msg = std::io::Error::from_raw_os_error(error as i32).to_string();
        let msg = msg.split(" (os error").next().unwrap_or("").to_string();
        // SAFETY: non-null in/out length; `dst` valid for that many bytes.
        unsafe {
            let cap = *dst_len;
            let n = msg.len().min(cap);
            if let Ok(out) = bytes_mut(dst, n) {
                out.copy_from_slice(&msg.as_bytes()[..n]);
            }
            *dst_len = msg.len();
            n
        }
    }
    fn redox_sys_call_v0(
        fd: usize,
        payload: *mut u8,
        len: usize,
        flags: usize,
        metadata: *const u64,
        metadata_len: usize,
    ) {
        sys(|c| {
            let meta: &[u64] = if metadata_len == 0 {
                &[]
            } else if metadata.is_null() {
                return Err(Error::new(EFAULT));
            } else {
                // SAFETY: the caller passes a metadata array of that length.
                unsafe { std::slice::from_raw_parts(metadata, metadata_len) }
            };
            let payload = unsafe { bytes_mut(payload, len)? };
            c.call(fd, payload, CallFlags::from_bits_retain(flags), meta)
        })
    }
    fn redox_sys_call_multiple_v0(
        fds: *const usize,
        fds_len: usize,
        payload: *mut u8,
        len: usize,
        flags: usize,
        metadata: *const u64,
        metadata_len: usize,
    ) {
        sys(|c| {
            if fds.is_null() && fds_len > 0 {
                return Err(Error::new(EFAULT));
            }
            let fds: &[usize] = if fds_len == 0 {
                &[]
            } else {
                // SAFETY: the caller passes an fd array of that length.
                unsafe { std::slice::from_raw_parts(fds, fds_len) }
            };
            let meta: &[u64] = if metadata_len == 0 {
                &[]
            } else if metadata.is_null() {
                return Err(Error::new(EFAULT));
            } else {
                // SAFETY: the caller passes a metadata array of that length.
                unsafe { std::slice::from_raw_parts(metadata, metadata_len) }
            };
            let payload = unsafe { bytes_mut(payload, len)? };
            c.call_multiple(fds, payload, CallFlags::from_bits_retain(flags), meta)
        })
    }
    fn redox_get_socket_token_v0(fd: usize, payload: *mut u8, len: usize) { unemulated() }
    fn redox_setns_v0(fd: usize) { unemulated() }
    fn redox_register_scheme_to_ns_v0(ns_fd: usize, name: *const u8, len: usize, cap_fd: usize) {
        sys(|c| c.register_scheme_to_ns(ns_fd, unsafe { text(name, len)? }, cap_fd))
    }
    fn redox_fcntl_v0(fd: usize, cmd: usize, arg: usize) {
        sys(|c| c.fcntl(fd, cmd, arg))
    }
    fn redox_numa_set_mem_policy_v0(policy: *const u8, len: usize) { unemulated() }
    fn redox_numa_get_mem_policy_v0(policy: *mut u8, len: usize) { unemulated() }
    fn redox_event_queue_create_v1(flags: u32) {
        sys(|c| c.event_queue_create())
    }
    fn redox_event_queue_get_events_v1(
        queue: usize,
        buf: *mut RawEventV1,
        count: usize,
        flags: u32,
        timeout: *const libc::timespec,
        sigset: *const u64,
    ) {
        sys(|c| {
            if buf.is_null() && count > 0 {
                return Err(Error::new(EFAULT));
            }
            let deadline = if timeout.is_null() {
                None
            } else {
                // SAFETY: non-null timespec from the caller; a relative timeout.
                let ts = unsafe { *timeout };
                let d = Duration::new(ts.tv_sec.max(0) as u64, ts.tv_nsec.clamp(0, 999_999_999) as u32);
                Some(Instant::now() + d)
            };
            let out: &mut [RawEventV1] = if count == 0 {
                &mut []
            } else {
                // SAFETY: the caller passes room for `count` events.
                unsafe { std::slice::from_raw_parts_mut(buf, count) }
            };
            c.event_queue_get(queue, out, deadline)
        })
    }
    fn redox_event_queue_ctl_v1(queue: usize, fd: usize, flags: u32, user_data: usize) {
        sys(|c| c.event_queue_ctl(queue, fd, flags, user_data))
    }
    fn redox_cur_thrfd_v0() {
        sys(|c| c.current_thread_fd())
    }
    fn redox_event_queue_destroy_v1(queue: usize) {
        sys(|c| c.close(queue))
    }
}
