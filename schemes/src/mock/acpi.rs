//! The mocked `acpi` scheme: acpid's raw ACPI tables (`redox-os/base`
//! `drivers/acpid/src/scheme.rs`; redox-real.md §6), served from the simulated
//! machine's firmware.
//!
//! Paths (leading `/` removed, at most three components):
//! * `` — directory: `tables`, `symbols`.
//! * `tables` — directory of every table, one `SIG-<12 hex>-<16 hex>` entry each
//!   (signature, OEM ID bytes, OEM table ID bytes, uppercase hex), by `getdents` only.
//! * `tables/SIG-OOOOOOOOOOOO-TTTTTTTTTTTTTTTT` — the raw table, header included.
//! * `symbols` — directory of AML names: empty, the simulated firmware has no AML.
//! * `register_pci` — where pcid hands acpid its config-space fd (accepted, unused).
//!
//! Firmware tables come from [`AcpiTables`]: anything published with
//! [`AcpiTables::publish`], plus an `IVRS` built from the machine's AMD-Vi units,
//! PCI functions and reserved memory whenever the machine has a unit
//! ([`crate::hw::ivrs`]).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use driver_sys::pci::PciAddress;
use syscall::data::Stat;
use syscall::dirent::{DirEntry, DirentBuf, DirentKind};
use syscall::error::{
    EACCES, EBADF, EBADFD, EINVAL, EIO, EISDIR, ENOENT, ENOTDIR, EPERM, Error, Result,
};
use syscall::flag::{MODE_DIR, MODE_FILE, O_ACCMODE, O_DIRECTORY, O_RDONLY, O_STAT, O_SYMLINK};

use super::pci::PciScheme;
use crate::hw::ivrs::{
    self, AMDVI_MMIO_BASE, AMDVI_MMIO_STRIDE, IVRS_OEM_TABLE_ID, IVRS_REVISION, IVRS_SIGNATURE,
    IvhdUnit, IvmdUnity, SIM_OEM_ID,
};
use crate::kernel::kscheme::{Caller, KernelScheme};
use crate::kernel::wait::lock;

/// Length of an ACPI table header.
pub const SDT_HEADER_LEN: usize = 36;
/// Largest table the firmware publishes (a bound, not an ACPI limit).
pub const MAX_TABLE_LEN: usize = 1 << 20;
/// Length of a table file name: `SIG-` + 12 + `-` + 16.
pub const TABLE_NAME_LEN: usize = 34;
/// Creator ID the simulated firmware writes into its tables.
pub const SIM_CREATOR_ID: [u8; 4] = *b"RDXH";

/// Which table a name designates: signature, OEM ID and OEM table ID (acpid's
/// `SdtSignature`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TableId {
    /// The 4-byte signature.
    pub signature: [u8; 4],
    /// The 6-byte OEM ID.
    pub oem_id: [u8; 6],
    /// The 8-byte OEM table ID.
    pub oem_table_id: [u8; 8],
}

impl TableId {
    /// The file name acpid lists: signature, then the OEM fields as uppercase hex
    /// bytes (base `drivers/acpid/src/scheme.rs`, `getdents`). `None` if the
    /// signature is not UTF-8 (acpid answers `EIO` for such a table).
    pub fn file_name(&self) -> Option<String> {
        let sig = std::str::from_utf8(&self.signature).ok()?;
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02X}")).collect::<String>();
        Some(format!(
            "{sig}-{}-{}",
            hex(&self.oem_id),
            hex(&self.oem_table_id)
        ))
    }

    /// Parses a file name as acpid does (base `drivers/acpid/src/scheme.rs`,
    /// `parse_table`): exactly 34 bytes, dashes at 4 and 17, hex digits of either case.
    pub fn parse(name: &[u8]) -> Option<Self> {
        if name.len() != TABLE_NAME_LEN || name[4] != b'-' || name[17] != b'-' {
            return None;
        }
        let digit = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let byte = |pair: &[u8]| Some((digit(pair[0])? << 4) | digit(pair[1])?);
        let mut oem_id = [0u8; 6];
        for (i, b) in oem_id.iter_mut().enumerate() {
            *b = byte(&name[5 + 2 * i..7 + 2 * i])?;
        }
        let mut oem_table_id = [0u8; 8];
        for (i, b) in oem_table_id.iter_mut().enumerate() {
            *b = byte(&name[18 + 2 * i..20 + 2 * i])?;
        }
        let mut signature = [0u8; 4];
        signature.copy_from_slice(&name[..4]);
        Some(Self {
            signature,
            oem_id,
            oem_table_id,
        })
    }
}

/// One firmware table.
#[derive(Clone, Debug)]
pub struct AcpiTable {
    /// Its identity.
    pub id: TableId,
    /// The whole table, header included.
    pub bytes: Arc<Vec<u8>>,
}

/// Builds a table: the 36-byte header (length, revision, checksum making the bytes
/// sum to 0, OEM fields, OEM revision 1, creator [`SIM_CREATOR_ID`] revision 1) and
/// `body`. `EINVAL` above [`MAX_TABLE_LEN`].
pub fn build_table(id: &TableId, revision: u8, body: &[u8]) -> Result<Vec<u8>> {
    let len = SDT_HEADER_LEN + body.len();
    if len > MAX_TABLE_LEN {
        return Err(Error::new(EINVAL));
    }
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(&id.signature);
    t.extend_from_slice(&(len as u32).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(&id.oem_id);
    t.extend_from_slice(&id.oem_table_id);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(&SIM_CREATOR_ID);
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |acc, &b| acc.wrapping_add(b));
    t[9] = sum.wrapping_neg();
    Ok(t)
}

/// Whether a table's bytes sum to 0 (mod 256), as ACPI requires.
pub fn checksum_ok(table: &[u8]) -> bool {
    table.iter().fold(0u8, |acc, &b| acc.wrapping_add(b)) == 0
}

/// Where the machine placed an AMD-Vi unit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AmdViPlacement {
    /// Index among the machine's units.
    pub index: usize,
    /// Register base the IVRS reports.
    pub mmio_base: u64,
    /// The unit's own PCI function (bus = index, device 0, function 2, as AMD
    /// puts its IOMMU at 00:00.2).
    pub device_id: u16,
}

struct UnitRecord {
    placement: AmdViPlacement,
    attached: BTreeSet<PciAddress>,
}

/// The simulated firmware's ACPI tables.
///
/// Other simulated hardware publishes its tables here: a VT-d model calls
/// [`AcpiTables::publish`] with `*b"DMAR"` and the body after the header; the
/// table then appears as `/scheme/acpi/tables/DMAR-<oem id>-<oem table id>`.
pub struct AcpiTables {
    published: Mutex<Vec<AcpiTable>>,
    units: Mutex<Vec<UnitRecord>>,
    pci: Arc<PciScheme>,
    unity: Vec<IvmdUnity>,
}

impl AcpiTables {
    /// Tables of a machine whose PCI bus is `pci` and whose firmware reserves
    /// `unity` ranges for every device.
    pub fn new(pci: Arc<PciScheme>, unity: Vec<IvmdUnity>) -> Self {
        Self {
            published: Mutex::new(Vec::new()),
            units: Mutex::new(Vec::new()),
            pci,
            unity,
        }
    }

    /// Publishes a revision-1 table: `body` is everything after the 36-byte header,
    /// which (with its checksum) is built here. A table with the same signature and
    /// OEM fields is replaced. `EINVAL` if the table would exceed [`MAX_TABLE_LEN`].
    pub fn publish(
        &self,
        signature: [u8; 4],
        oem_id: [u8; 6],
        oem_table_id: [u8; 8],
        body: &[u8],
    ) -> Result<()> {
        self.publish_revision(signature, oem_id, oem_table_id, 1, body)
    }

    /// [`AcpiTables::publish`] with the header's revision given.
    pub fn publish_revision(
        &self,
        signature: [u8; 4],
        oem_id: [u8; 6],
        oem_table_id: [u8; 8],
        revision: u8,
        body: &[u8],
    ) -> Result<()> {
        let id = TableId {
            signature,
            oem_id,
            oem_table_id,
        };
        let bytes = Arc::new(build_table(&id, revision, body)?);
        let mut p = lock(&self.published);
        p.retain(|t| t.id != id);
        p.push(AcpiTable { id, bytes });
        Ok(())
    }

    /// Publishes a table exactly as firmware built it, header included (guest mode
    /// serves the tables QEMU generated this way). The identity comes from the
    /// header; `EINVAL` if the bytes are shorter than a header, the header's length
    /// disagrees with them, or they exceed [`MAX_TABLE_LEN`].
    pub fn publish_raw(&self, bytes: Vec<u8>) -> Result<()> {
        let declared = bytes
            .get(4..8)
            .map(|l| u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize);
        if bytes.len() < SDT_HEADER_LEN
            || bytes.len() > MAX_TABLE_LEN
            || declared != Some(bytes.len())
        {
            return Err(Error::new(EINVAL));
        }
        let mut id = TableId {
            signature: [0; 4],
            oem_id: [0; 6],
            oem_table_id: [0; 8],
        };
        id.signature.copy_from_slice(&bytes[0..4]);
        id.oem_id.copy_from_slice(&bytes[10..16]);
        id.oem_table_id.copy_from_slice(&bytes[16..24]);
        let mut p = lock(&self.published);
        p.retain(|t| t.id != id);
        p.push(AcpiTable {
            id,
            bytes: Arc::new(bytes),
        });
        Ok(())
    }

    /// Places a new AMD-Vi unit on the machine; the IVRS describes it from now on.
    pub fn add_amdvi_unit(&self) -> AmdViPlacement {
        let mut units = lock(&self.units);
        let index = units.len();
        let placement = AmdViPlacement {
            index,
            mmio_base: AMDVI_MMIO_BASE + AMDVI_MMIO_STRIDE * index as u64,
            device_id: ((index as u16 & 0xFF) << 8) | 2,
        };
        units.push(UnitRecord {
            placement,
            attached: BTreeSet::new(),
        });
        placement
    }

    /// Records that unit `index` now translates `function`'s DMA.
    pub fn attach_amdvi(&self, index: usize, function: PciAddress) {
        let mut units = lock(&self.units);
        for (i, u) in units.iter_mut().enumerate() {
            if i == index {
                u.attached.insert(function);
            } else {
                u.attached.remove(&function);
            }
        }
    }

    /// The IVRS as the firmware would build it now, if the machine has an AMD-Vi unit.
    /// A unit lists the functions attached to it; functions attached to no unit are
    /// listed under the first (firmware puts every device behind some IOMMU).
    pub fn ivrs(&self) -> Option<Vec<u8>> {
        let functions = self.pci.addresses();
        let units = lock(&self.units);
        if units.is_empty() {
            return None;
        }
        let described: Vec<IvhdUnit> = units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let devices = functions
                    .iter()
                    .filter(|f| f.segment == 0)
                    .filter(|f| {
                        u.attached.contains(f)
                            || (i == 0 && !units.iter().any(|o| o.attached.contains(f)))
                    })
                    .map(ivrs::device_id)
                    .collect();
                IvhdUnit {
                    device_id: u.placement.device_id,
                    mmio_base: u.placement.mmio_base,
                    segment: 0,
                    efr: 0,
                    devices,
                }
            })
            .collect();
        let id = TableId {
            signature: IVRS_SIGNATURE,
            oem_id: SIM_OEM_ID,
            oem_table_id: IVRS_OEM_TABLE_ID,
        };
        build_table(
            &id,
            IVRS_REVISION,
            &ivrs::ivrs_body(&described, &self.unity),
        )
        .ok()
    }

    /// Every table, in the order acpid would list them: published ones, then the IVRS.
    pub fn tables(&self) -> Vec<AcpiTable> {
        let mut v = lock(&self.published).clone();
        if let Some(bytes) = self.ivrs() {
            v.push(AcpiTable {
                id: TableId {
                    signature: IVRS_SIGNATURE,
                    oem_id: SIM_OEM_ID,
                    oem_table_id: IVRS_OEM_TABLE_ID,
                },
                bytes: Arc::new(bytes),
            });
        }
        v
    }
}

enum Kind {
    TopLevel,
    Tables,
    Symbols,
    /// The table named at open (`None`: no such table; acpid opens any well-formed
    /// name and fails reads with `EBADFD`).
    Table(Option<Arc<Vec<u8>>>),
    RegisterPci,
}

impl Kind {
    fn is_dir(&self) -> bool {
        matches!(self, Self::TopLevel | Self::Tables | Self::Symbols)
    }
}

struct Handle {
    kind: Kind,
    stat: bool,
    allowed_to_eval: bool,
    offset: usize,
}

/// The `acpi` scheme.
pub struct AcpiScheme {
    tables: Arc<AcpiTables>,
    handles: Mutex<HashMap<usize, Handle>>,
    next: AtomicUsize,
}

impl AcpiScheme {
    /// The scheme over the machine's firmware tables.
    pub fn new(tables: Arc<AcpiTables>) -> Self {
        Self {
            tables,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
        }
    }

    fn kind_of(&self, path: &str) -> Result<Kind> {
        let components: Vec<&str> = path.split('/').take(3).collect();
        Ok(match components.as_slice() {
            [""] => Kind::TopLevel,
            ["register_pci"] => Kind::RegisterPci,
            ["tables"] => Kind::Tables,
            ["tables", name] => {
                let id = TableId::parse(name.as_bytes()).ok_or(Error::new(ENOENT))?;
                let bytes = self
                    .tables
                    .tables()
                    .into_iter()
                    .find(|t| t.id == id)
                    .map(|t| t.bytes);
                Kind::Table(bytes)
            }
            ["symbols"] => Kind::Symbols,
            // No AML namespace: no symbol exists.
            _ => return Err(Error::new(ENOENT)),
        })
    }
}

impl KernelScheme for AcpiScheme {
    /// base `drivers/acpid/src/scheme.rs` `openat`: leading `/` removed; a directory
    /// needs `O_DIRECTORY` or `O_STAT` (`EISDIR`), a file refuses `O_DIRECTORY`
    /// (`ENOTDIR`); `O_RDONLY` (or `O_STAT`) is for anyone, any other access mode
    /// needs uid 0 (`EINVAL` otherwise); `O_SYMLINK` without `O_STAT` is `EINVAL`.
    fn open(&self, path: &str, flags: usize, caller: &Caller) -> Result<usize> {
        let kind = self.kind_of(path.trim_start_matches('/'))?;
        let stat = flags & O_STAT == O_STAT;
        let dir = flags & O_DIRECTORY == O_DIRECTORY;
        if kind.is_dir() && !dir && !stat {
            return Err(Error::new(EISDIR));
        }
        if !kind.is_dir() && dir && !stat {
            return Err(Error::new(ENOTDIR));
        }
        let allowed_to_eval = if flags & O_ACCMODE == O_RDONLY || stat {
            false
        } else if caller.is_root() {
            true
        } else {
            return Err(Error::new(EINVAL));
        };
        if flags & O_SYMLINK == O_SYMLINK && !stat {
            return Err(Error::new(EINVAL));
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(
            id,
            Handle {
                kind,
                stat,
                allowed_to_eval,
                offset: 0,
            },
        );
        Ok(id)
    }

    /// base `drivers/acpid/src/scheme.rs` `read`: a table's raw bytes from the
    /// handle's offset (acpid's handles are positioned); a handle opened with
    /// `O_STAT` is `EBADF`; a directory or other non-file is `EINVAL`; a table that
    /// does not exist is `EBADFD`.
    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        let handle = handles.get_mut(&h).ok_or(Error::new(EBADF))?;
        if handle.stat {
            return Err(Error::new(EBADF));
        }
        let Kind::Table(table) = &handle.kind else {
            return Err(Error::new(EINVAL));
        };
        let bytes = table.as_ref().ok_or(Error::new(EBADFD))?;
        let src = bytes
            .get(handle.offset.min(bytes.len())..)
            .unwrap_or_default();
        let n = src.len().min(buf.len());
        buf[..n].copy_from_slice(&src[..n]);
        handle.offset += n;
        Ok(n)
    }

    /// base `drivers/acpid/src/scheme.rs` `write`: always `EBADF`.
    fn write(&self, _h: usize, _buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        Err(Error::new(EBADF))
    }

    /// base `drivers/acpid/src/scheme.rs` `call`: evaluating needs a handle opened
    /// for writing by root (`EPERM` otherwise) on an AML symbol; tables are not.
    fn call(&self, h: usize, _payload: &mut [u8], _meta: &[u64], _c: &Caller) -> Result<usize> {
        let handles = lock(&self.handles);
        let handle = handles.get(&h).ok_or(Error::new(EBADF))?;
        if !handle.allowed_to_eval {
            return Err(Error::new(EPERM));
        }
        Err(Error::new(EBADF))
    }

    /// base `drivers/acpid/src/scheme.rs` `getdents`: the top level lists `tables`
    /// and `symbols`, `tables` one uppercase-hex name per table (kind Regular), each
    /// entry's next id its index + 1; on a file `EIO`. An entry that does not fit
    /// fails the call (`EINVAL`), as `DirentBuf::entry` does.
    fn getdents(&self, h: usize, buf: &mut [u8], header_size: u16, opaque: u64) -> Result<usize> {
        let names: Vec<(String, DirentKind)> = {
            let handles = lock(&self.handles);
            let handle = handles.get(&h).ok_or(Error::new(EACCES))?;
            match handle.kind {
                Kind::TopLevel => ["tables", "symbols"]
                    .iter()
                    .map(|n| (n.to_string(), DirentKind::Directory))
                    .collect(),
                Kind::Symbols => Vec::new(),
                Kind::Tables => {
                    let mut v = Vec::new();
                    for t in self.tables.tables() {
                        v.push((
                            t.id.file_name().ok_or(Error::new(EIO))?,
                            DirentKind::Regular,
                        ));
                    }
                    v
                }
                Kind::Table(_) | Kind::RegisterPci => return Err(Error::new(EIO)),
            }
        };
        let mut out = DirentBuf::new(buf, header_size).ok_or(Error::new(EINVAL))?;
        let skip = usize::try_from(opaque).unwrap_or(usize::MAX);
        for (i, (name, kind)) in names.iter().enumerate().skip(skip) {
            out.entry(DirEntry {
                inode: 0,
                next_opaque_id: i as u64 + 1,
                name,
                kind: *kind,
            })?;
        }
        Ok(out.finalize())
    }

    /// base `drivers/acpid/src/scheme.rs` `fstat`: a table's size is its length,
    /// directories 0; mode `MODE_FILE` or `MODE_DIR` (no permission bits);
    /// `register_pci` `EBADF`; a missing table `EBADFD`.
    fn fstat(&self, h: usize) -> Result<Stat> {
        let mut stat = Stat::default();
        let handles = lock(&self.handles);
        let handle = handles.get(&h).ok_or(Error::new(EBADF))?;
        stat.st_size = match &handle.kind {
            Kind::Table(Some(bytes)) => bytes.len() as u64,
            Kind::Table(None) => return Err(Error::new(EBADFD)),
            Kind::RegisterPci => return Err(Error::new(EBADF)),
            _ => 0,
        };
        stat.st_mode = if handle.kind.is_dir() {
            MODE_DIR
        } else {
            MODE_FILE
        };
        Ok(stat)
    }

    fn close(&self, h: usize) {
        lock(&self.handles).remove(&h);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_tables_are_served_byte_for_byte() {
        let t = AcpiTables::new(Arc::new(PciScheme::new()), Vec::new());
        let mut raw = vec![0u8; 48];
        raw[0..4].copy_from_slice(b"IVRS");
        raw[4..8].copy_from_slice(&48u32.to_le_bytes());
        raw[10..16].copy_from_slice(b"BOCHS ");
        raw[16..24].copy_from_slice(b"BXPC    ");
        raw[28..32].copy_from_slice(b"BXPC");
        t.publish_raw(raw.clone()).expect("publish");
        let all = t.tables();
        assert_eq!(all.len(), 1);
        assert_eq!(*all[0].bytes, raw, "header kept as firmware built it");
        assert_eq!(
            all[0].id.file_name().as_deref(),
            Some("IVRS-424F43485320-4258504320202020")
        );
        let mut lying = raw.clone();
        lying[4..8].copy_from_slice(&47u32.to_le_bytes());
        assert_eq!(t.publish_raw(lying), Err(Error::new(EINVAL)));
        assert_eq!(t.publish_raw(raw[..20].to_vec()), Err(Error::new(EINVAL)));
    }

    #[test]
    fn names_round_trip_in_either_case() {
        let id = TableId {
            signature: *b"DMAR",
            oem_id: *b"BOCHS ",
            oem_table_id: *b"BXPCDMAR",
        };
        let name = id.file_name().expect("utf-8");
        assert_eq!(name, "DMAR-424F43485320-42585043444D4152");
        assert_eq!(TableId::parse(name.as_bytes()), Some(id));
        assert_eq!(
            TableId::parse(name.to_lowercase().as_bytes()).map(|t| t.oem_id),
            Some(id.oem_id)
        );
        assert!(TableId::parse(&name.as_bytes()[..33]).is_none());
        assert!(TableId::parse(format!("{name}0").as_bytes()).is_none());
    }

    #[test]
    fn built_tables_check_out() {
        let id = TableId {
            signature: *b"TEST",
            oem_id: *b"OEMOEM",
            oem_table_id: *b"TABLE_ID",
        };
        let t = build_table(&id, 3, &[1, 2, 3]).expect("table");
        assert_eq!(t.len(), 39);
        assert_eq!(u32::from_le_bytes([t[4], t[5], t[6], t[7]]), 39);
        assert_eq!(t[8], 3);
        assert!(checksum_ok(&t));
    }
}
