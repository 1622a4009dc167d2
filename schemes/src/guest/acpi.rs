//! The `acpi` scheme in guest mode: the tables the guest's firmware (QEMU) built,
//! read from `/sys/firmware/acpi/tables/`, under the names acpid gives them.
//!
//! As upstream acpid (`drivers/acpid/src/scheme.rs`): `tables` lists one
//! `SIG-OOOOOOOOOOOO-TTTTTTTTTTTTTTTT` name per line (OEM ID and OEM table ID as
//! uppercase hex of their bytes); `tables/<name>` (either case, exactly 34
//! characters, else `ENOENT`) reads the whole raw table, header included. Reads
//! advance a per-handle position (kernel schemes get no offset from the mocked
//! kernel). Only read-only opens are allowed for non-root callers.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use syscall::error::{EBADF, EINVAL, ENOENT, Error, Result};

use crate::kernel::kscheme::{Caller, KernelScheme};
use crate::kernel::wait::lock;

/// Where Linux exposes the ACPI tables.
pub const SYSFS_ACPI_TABLES: &str = "/sys/firmware/acpi/tables";

/// acpid's name for a table: signature, OEM ID and OEM table ID as hex.
/// `None` if the table is shorter than its header's first 24 bytes.
pub fn table_name(table: &[u8]) -> Option<String> {
    let sig = std::str::from_utf8(table.get(0..4)?).ok()?;
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
    Some(format!(
        "{sig}-{}-{}",
        hex(table.get(10..16)?),
        hex(table.get(16..24)?)
    ))
}

struct Open {
    data: Arc<Vec<u8>>,
    pos: usize,
}

/// The guest's `acpi` scheme.
pub struct SysfsAcpiScheme {
    tables: HashMap<String, Arc<Vec<u8>>>,
    handles: Mutex<HashMap<usize, Open>>,
    next: AtomicUsize,
}

impl SysfsAcpiScheme {
    /// Every table file directly under `dir` (normally [`SYSFS_ACPI_TABLES`]).
    pub fn load(dir: &Path) -> std::io::Result<Self> {
        let mut tables = HashMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            if !entry.file_type()?.is_file() {
                continue;
            }
            let data = std::fs::read(entry.path())?;
            if let Some(name) = table_name(&data) {
                tables.insert(name, Arc::new(data));
            }
        }
        Ok(Self {
            tables,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
        })
    }

    /// The table names, sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.tables.keys().cloned().collect();
        v.sort();
        v
    }
}

impl KernelScheme for SysfsAcpiScheme {
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize> {
        if flags & syscall::flag::O_ACCMODE != syscall::flag::O_RDONLY && !caller.is_root() {
            return Err(Error::new(EINVAL));
        }
        let data = match path.trim_matches('/') {
            "tables" => Arc::new(
                self.names()
                    .into_iter()
                    .flat_map(|n| (n + "\n").into_bytes())
                    .collect::<Vec<u8>>(),
            ),
            p => {
                let name = p.strip_prefix("tables/").ok_or(Error::new(ENOENT))?;
                if name.len() != 34 {
                    return Err(Error::new(ENOENT));
                }
                let (sig, ids) = name.split_at(4);
                let wanted = format!("{sig}{}", ids.to_ascii_uppercase());
                self.tables
                    .get(&wanted)
                    .cloned()
                    .ok_or(Error::new(ENOENT))?
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, Open { data, pos: 0 });
        Ok(id)
    }

    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        let open = handles.get_mut(&h).ok_or(Error::new(EBADF))?;
        let rest = open.data.get(open.pos..).unwrap_or_default();
        let n = rest.len().min(buf.len());
        buf[..n].copy_from_slice(&rest[..n]);
        open.pos += n;
        Ok(n)
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_acpid() {
        let mut t = vec![0u8; 48];
        t[0..4].copy_from_slice(b"IVRS");
        t[10..16].copy_from_slice(b"BOCHS ");
        t[16..24].copy_from_slice(b"BXPC    ");
        assert_eq!(
            table_name(&t).as_deref(),
            Some("IVRS-424F43485320-4258504320202020")
        );
        assert_eq!(table_name(&t).map(|n| n.len()), Some(34));
        assert!(table_name(&t[..20]).is_none());
    }
}
