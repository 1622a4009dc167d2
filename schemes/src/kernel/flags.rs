//! Flag translation: host libc values in, Redox values out.
//!
//! `libredox::flag` re-exports the *host's* libc constants, so a daemon built for Linux
//! passes Linux `O_*` bits to `redox_open_v1`. Schemes compare with `syscall::flag::*`
//! (the Redox values) on both systems, so the mocked kernel translates at the boundary,
//! exactly where relibc would have produced Redox values on a real system.

use syscall::flag as redox;

/// A host/Redox pair for one flag bit.
const PAIRS: &[(i32, usize)] = &[
    (libc::O_NONBLOCK, redox::O_NONBLOCK),
    (libc::O_APPEND, redox::O_APPEND),
    (libc::O_ASYNC, redox::O_ASYNC),
    (libc::O_CREAT, redox::O_CREAT),
    (libc::O_TRUNC, redox::O_TRUNC),
    (libc::O_EXCL, redox::O_EXCL),
    (libc::O_DIRECTORY, redox::O_DIRECTORY),
    (libc::O_NOFOLLOW, redox::O_NOFOLLOW),
    (libc::O_CLOEXEC, libredox::protocol::O_CLOEXEC),
];

/// Translates the flags of an `open`: access mode plus status and creation bits.
///
/// Linux has no separate O_RDONLY bit (it is 0); Redox does, so "neither write bit"
/// becomes `O_RDONLY`. Linux `O_PATH` becomes Redox `O_STAT` (open without access).
pub fn open_flags(host: i32) -> usize {
    let access = match host & libc::O_ACCMODE {
        libc::O_WRONLY => redox::O_WRONLY,
        libc::O_RDWR => redox::O_RDWR,
        _ if host & libc::O_PATH != 0 => redox::O_STAT,
        _ => redox::O_RDONLY,
    };
    access | common_bits(host) | fsync_bit(host)
}

/// Translates `F_SETFL` status flags (no access mode).
///
/// redox-scheme passes the literal `0x0020_0000` (Redox `O_EXLOCK`) there; on Linux that
/// bit is `O_PATH`, which means nothing to `F_SETFL`, so it is read as `O_EXLOCK`.
pub fn status_flags(host: usize) -> usize {
    let host_i = host as i32;
    let mut out = common_bits(host_i) | fsync_bit(host_i);
    if host_i & libc::O_PATH != 0 {
        out |= redox::O_EXLOCK;
    }
    out
}

/// Translates Redox status flags back to host values (for `F_GETFL`).
pub fn host_status_flags(redox_flags: usize) -> usize {
    let mut out = 0i32;
    for &(h, r) in PAIRS {
        if redox_flags & r != 0 {
            out |= h;
        }
    }
    if redox_flags & redox::O_FSYNC != 0 {
        out |= libc::O_SYNC;
    }
    match redox_flags & redox::O_ACCMODE {
        redox::O_WRONLY => out |= libc::O_WRONLY,
        redox::O_RDWR => out |= libc::O_RDWR,
        _ => {}
    }
    out as usize
}

/// Translates `mmap`'s host `PROT_*` and `MAP_*` values into Redox `MapFlags`.
pub fn map_flags(host_prot: u32, host_flags: u32) -> redox::MapFlags {
    let prot = host_prot as i32;
    let fl = host_flags as i32;
    let pairs = [
        (prot & libc::PROT_READ != 0, redox::MapFlags::PROT_READ),
        (prot & libc::PROT_WRITE != 0, redox::MapFlags::PROT_WRITE),
        (prot & libc::PROT_EXEC != 0, redox::MapFlags::PROT_EXEC),
        (fl & libc::MAP_SHARED != 0, redox::MapFlags::MAP_SHARED),
        (fl & libc::MAP_PRIVATE != 0, redox::MapFlags::MAP_PRIVATE),
        (fl & libc::MAP_FIXED != 0, redox::MapFlags::MAP_FIXED),
        (
            fl & libc::MAP_FIXED_NOREPLACE != 0,
            redox::MapFlags::MAP_FIXED_NOREPLACE,
        ),
    ];
    pairs
        .into_iter()
        .filter(|(on, _)| *on)
        .fold(redox::MapFlags::empty(), |acc, (_, f)| acc | f)
}

fn common_bits(host: i32) -> usize {
    PAIRS
        .iter()
        .filter(|(h, _)| host & h == *h)
        .fold(0, |acc, (_, r)| acc | r)
}

// Linux O_SYNC (= O_FSYNC) contains the O_DSYNC bit; require both.
fn fsync_bit(host: i32) -> usize {
    if host & libc::O_SYNC == libc::O_SYNC {
        redox::O_FSYNC
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_modes() {
        assert_eq!(open_flags(libc::O_RDONLY), redox::O_RDONLY);
        assert_eq!(open_flags(libc::O_WRONLY), redox::O_WRONLY);
        assert_eq!(open_flags(libc::O_RDWR), redox::O_RDWR);
        assert_eq!(open_flags(libc::O_PATH), redox::O_STAT);
    }

    #[test]
    fn creation_and_status_bits() {
        let f = open_flags(libc::O_RDWR | libc::O_CREAT | libc::O_EXCL | libc::O_NONBLOCK);
        assert_eq!(
            f,
            redox::O_RDWR | redox::O_CREAT | redox::O_EXCL | redox::O_NONBLOCK
        );
        let f = open_flags(libc::O_CLOEXEC | libc::O_DIRECTORY);
        assert_eq!(
            f,
            redox::O_RDONLY | libredox::protocol::O_CLOEXEC | redox::O_DIRECTORY
        );
    }

    #[test]
    fn redox_scheme_setfl_literal_is_exlock() {
        let host = libc::O_SYNC as usize | 0x0020_0000 | libc::O_NONBLOCK as usize;
        assert_eq!(
            status_flags(host),
            redox::O_FSYNC | redox::O_EXLOCK | redox::O_NONBLOCK
        );
    }

    #[test]
    fn getfl_round_trip() {
        let r = redox::O_RDWR | redox::O_NONBLOCK | redox::O_APPEND;
        let host = host_status_flags(r) as i32;
        assert_eq!(host, libc::O_RDWR | libc::O_NONBLOCK | libc::O_APPEND);
    }
}
