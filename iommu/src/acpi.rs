//! Reading ACPI tables the way acpid serves them (`redox-real.md` §6): raw
//! tables, header included, at `/scheme/acpi/tables/SIG-<12 hex>-<16 hex>`
//! (the OEM fields are hex-encoded bytes). The directory is listed by
//! getdents only; a table is found by its `SIG-` prefix.

use libredox::{Fd, flag};
use syscall::error::{EINVAL, EIO, ENOENT, Error, Result};

/// Where acpid lists the tables.
pub const TABLES: &str = "/scheme/acpi/tables";
/// Bytes of a packed Redox `DirentHeader` (inode u64, next u64, len u16, kind u8).
const DIRENT_HEADER: usize = 19;
/// The largest table read (the simulated firmware's bound; real IVRS/DMAR
/// tables are a few KiB).
pub const MAX_TABLE: usize = 1 << 20;
const MAX_LISTING: usize = 1 << 16;

fn errno(e: libredox::error::Error) -> Error {
    Error::new(e.errno())
}

/// The names of one getdents answer and the cookie after the last one.
fn names(mut rest: &[u8]) -> Result<(Vec<String>, u64)> {
    let (mut out, mut next) = (Vec::new(), 0);
    while !rest.is_empty() {
        let field = |r: core::ops::Range<usize>| rest.get(r).ok_or(Error::new(EIO));
        next = u64::from_le_bytes(field(8..16)?.try_into().map_err(|_| Error::new(EIO))?);
        let len = usize::from(u16::from_le_bytes(
            field(16..18)?.try_into().map_err(|_| Error::new(EIO))?,
        ));
        let record = rest.get(..len).filter(|_| len > DIRENT_HEADER);
        let record = record.ok_or(Error::new(EIO))?;
        let name = record.get(DIRENT_HEADER..).unwrap_or_default();
        let name = name.split(|&b| b == 0).next().unwrap_or_default();
        out.push(String::from_utf8_lossy(name).into_owned());
        rest = rest.get(len..).unwrap_or_default();
    }
    Ok((out, next))
}

/// Every table name under [`TABLES`].
pub fn list_tables() -> Result<Vec<String>> {
    let dir = Fd::open(
        TABLES,
        flag::O_RDONLY | flag::O_DIRECTORY | flag::O_CLOEXEC,
        0,
    )
    .map_err(errno)?;
    let (mut all, mut buf, mut cookie) = (Vec::new(), vec![0u8; 1024], 0u64);
    loop {
        let n = match libredox::call::getdents(dir.raw(), &mut buf, cookie) {
            // One entry did not fit: grow, as relibc's readdir does.
            Err(e) if e.errno() == EINVAL && buf.len() < MAX_LISTING => {
                buf.resize(buf.len() * 2, 0);
                continue;
            }
            r => r.map_err(errno)?,
        };
        let (names, next) = names(buf.get(..n).ok_or(Error::new(EIO))?)?;
        if names.is_empty() || next <= cookie || all.len() > MAX_LISTING {
            return Ok(all);
        }
        all.extend(names);
        cookie = next;
    }
}

/// The raw bytes of the first table whose signature is `signature`
/// (`ENOENT`: none listed; `EINVAL`: one above [`MAX_TABLE`]).
pub fn read_table(signature: &[u8; 4]) -> Result<Vec<u8>> {
    let prefix = format!("{}-", String::from_utf8_lossy(signature));
    let name = list_tables()?
        .into_iter()
        .find(|n| n.starts_with(&prefix))
        .ok_or(Error::new(ENOENT))?;
    let fd = Fd::open(
        &format!("{TABLES}/{name}"),
        flag::O_RDONLY | flag::O_CLOEXEC,
        0,
    )
    .map_err(errno)?;
    let mut table = Vec::new();
    let mut chunk = vec![0u8; 4096];
    loop {
        let n = fd.read(&mut chunk).map_err(errno)?;
        if n == 0 {
            return Ok(table);
        }
        table.extend_from_slice(chunk.get(..n).ok_or(Error::new(EIO))?);
        if table.len() > MAX_TABLE {
            return Err(Error::new(EINVAL));
        }
    }
}
