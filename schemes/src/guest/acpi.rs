//! The `acpi` scheme in guest mode: the simulated scheme itself
//! ([`crate::mock::acpi`], copying acpid: `tables` listed by getdents under
//! `SIG-<hex OEM ID>-<hex OEM table ID>` names, raw tables header included), serving
//! the tables the guest's firmware — QEMU — built, read once from
//! `/sys/firmware/acpi/tables/` and published unchanged.

use std::path::Path;

use crate::mock::acpi::AcpiTables;

/// Where Linux exposes the ACPI tables.
pub const SYSFS_ACPI_TABLES: &str = "/sys/firmware/acpi/tables";

/// Publishes every table file directly under `dir` (normally [`SYSFS_ACPI_TABLES`])
/// into `tables`; returns how many. A file that is not a well-formed table is
/// skipped with a warning.
pub fn publish_sysfs_tables(tables: &AcpiTables, dir: &Path) -> std::io::Result<usize> {
    let mut n = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let bytes = std::fs::read(entry.path())?;
        match tables.publish_raw(bytes) {
            Ok(()) => n += 1,
            Err(e) => log::warn!("guest acpi: {}: {e}", entry.path().display()),
        }
    }
    Ok(n)
}
