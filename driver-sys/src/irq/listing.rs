//! Reading the `irq` scheme's directories and its `bsp` file the way the Redox
//! kernel serves them.
//!
//! The kernel lists `/scheme/irq` and `/scheme/irq/cpu-XX` only through getdents
//! (`read` on a directory is `EISDIR`). A getdents call fails with `EINVAL` as soon as
//! one entry does not fit, so — as relibc's `readdir` does — the buffer is doubled
//! from 512 bytes until the listing fits. The kernel's continuation cookie of a CPU
//! listing is off (it skips entries, not vectors), so the first call that fits is
//! the listing; a later call only confirms the end.

use libredox::{Fd, flag};
use syscall::error::{EINVAL, EIO, Error, Result};

use crate::memory::errno;

/// Bytes of a Redox `DirentHeader`: `inode: u64, next_opaque_id: u64,
/// record_len: u16, kind: u8`, packed, little-endian.
const DIRENT_HEADER_LEN: usize = 19;
/// relibc's first getdents buffer.
const FIRST_BUFFER: usize = 512;
/// Beyond this a listing is not a kernel `irq` directory (224 names at most).
const MAX_BUFFER: usize = 64 * 1024;
/// Calls per listing; each real one adds entries, so this bounds a looping scheme.
const MAX_CALLS: usize = 64;

/// One directory entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirName {
    /// The name.
    pub name: String,
    /// The continuation cookie that follows it.
    pub next_opaque_id: u64,
    /// Redox `DirentKind` (2 character device, 4 directory).
    pub kind: u8,
}

/// Parses the records of one getdents answer; `EIO` for a malformed record.
pub fn parse_dirents(bytes: &[u8]) -> Result<Vec<DirName>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let header = rest.get(..DIRENT_HEADER_LEN).ok_or(Error::new(EIO))?;
        let next = header
            .get(8..16)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_le_bytes)
            .ok_or(Error::new(EIO))?;
        let len = header
            .get(16..18)
            .and_then(|b| b.try_into().ok())
            .map(u16::from_le_bytes)
            .ok_or(Error::new(EIO))?;
        let kind = header.get(18).copied().ok_or(Error::new(EIO))?;
        let len = usize::from(len);
        if len <= DIRENT_HEADER_LEN {
            return Err(Error::new(EIO));
        }
        let record = rest.get(..len).ok_or(Error::new(EIO))?;
        let name_and_pad = record.get(DIRENT_HEADER_LEN..).ok_or(Error::new(EIO))?;
        let end = name_and_pad
            .iter()
            .position(|&b| b == 0)
            .ok_or(Error::new(EIO))?;
        let name = name_and_pad.get(..end).ok_or(Error::new(EIO))?;
        let name = core::str::from_utf8(name).map_err(|_| Error::new(EIO))?;
        out.push(DirName {
            name: name.to_string(),
            next_opaque_id: next,
            kind,
        });
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok(out)
}

/// Lists directory `path` through getdents.
pub fn list_dir(path: &str) -> Result<Vec<String>> {
    let fd = Fd::open(
        path,
        flag::O_RDONLY | flag::O_DIRECTORY | flag::O_CLOEXEC,
        0,
    )
    .map_err(errno)?;
    let mut names = Vec::new();
    let mut buf = vec![0u8; FIRST_BUFFER];
    let mut opaque = 0u64;
    for _ in 0..MAX_CALLS {
        let n = match libredox::call::getdents(fd.raw(), &mut buf, opaque) {
            Ok(n) => n,
            Err(e) if e.errno() == EINVAL && buf.len() < MAX_BUFFER => {
                buf.resize(buf.len() * 2, 0);
                continue;
            }
            Err(e) => return Err(errno(e)),
        };
        if n == 0 {
            return Ok(names);
        }
        let entries = parse_dirents(buf.get(..n).ok_or(Error::new(EIO))?)?;
        let Some(last) = entries.last() else {
            return Ok(names);
        };
        if last.next_opaque_id <= opaque {
            // A cookie that does not advance would loop forever.
            return Ok(names);
        }
        opaque = last.next_opaque_id;
        names.extend(entries.into_iter().map(|e| e.name));
    }
    Ok(names)
}

/// Reads `bsp`: the kernel writes a u32 (the BSP's APIC id) and reports 8 bytes;
/// a 32-bit kernel reports 4. The buffer starts zeroed, so either works.
pub fn read_bsp(path: &str) -> Result<u32> {
    let fd = Fd::open(path, flag::O_RDONLY | flag::O_CLOEXEC, 0).map_err(errno)?;
    let mut b = [0u8; 8];
    let n = fd.read(&mut b).map_err(errno)?;
    if n != 4 && n != 8 {
        return Err(Error::new(EIO));
    }
    b.get(..4)
        .and_then(|w| w.try_into().ok())
        .map(u32::from_le_bytes)
        .ok_or(Error::new(EIO))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, next: u64) -> Vec<u8> {
        let mut r = Vec::new();
        r.extend_from_slice(&0u64.to_le_bytes());
        r.extend_from_slice(&next.to_le_bytes());
        let len = (DIRENT_HEADER_LEN + name.len() + 1).next_multiple_of(8);
        r.extend_from_slice(&(len as u16).to_le_bytes());
        r.push(2);
        r.extend_from_slice(name.as_bytes());
        r.resize(len, 0);
        r
    }

    #[test]
    fn records_parse() {
        let mut b = record("bsp", 1);
        b.extend(record("cpu-00", 1));
        let got = parse_dirents(&b).expect("parse");
        assert_eq!(
            got.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            ["bsp", "cpu-00"]
        );
    }

    #[test]
    fn malformed_records_are_eio() {
        let mut r = record("18", 51);
        r[16] = 3; // record_len shorter than the header
        assert_eq!(parse_dirents(&r).map_err(|e| e.errno), Err(EIO));
        let r = record("18", 51);
        assert_eq!(
            parse_dirents(&r[..r.len() - 8]).map_err(|e| e.errno),
            Err(EIO),
            "truncated"
        );
        let mut r = record("18", 51);
        for b in r.iter_mut().skip(DIRENT_HEADER_LEN) {
            *b = b'7';
        }
        assert_eq!(parse_dirents(&r).map_err(|e| e.errno), Err(EIO), "no NUL");
    }
}
