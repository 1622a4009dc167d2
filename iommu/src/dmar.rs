//! The ACPI DMAR table: which VT-d units exist, which devices each one
//! translates, and which memory ranges must stay identity-mapped (ACPICA
//! `actbl1.h`; Linux `drivers/iommu/intel/dmar.c`; notes §A.6).
//!
//! Layout: the 36-byte ACPI header, HAW (host address width − 1) at 36,
//! flags at 37, remapping structures from offset 48, each `type u16,
//! length u16, body`. iommud uses DRHD (type 0: a unit and its device
//! scopes) and RMRR (type 1: reserved memory of some devices); ATSR and
//! RHSA are logged and ignored, other types skipped.
//!
//! Everything is bounds-checked: a malformed table is an error, never a
//! panic, and memory is bounded by the table's own length.

use core::fmt;

use crate::bdf::Bdf;

/// Offset of the first remapping structure.
const STRUCTURES: usize = 48;
/// DRHD flag: the unit covers every device of its segment that no other
/// DRHD lists.
pub const INCLUDE_PCI_ALL: u8 = 1;

/// Why a DMAR table was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DmarError {
    /// Shorter than its header, or than its own length field says.
    Truncated,
    /// The signature is not `DMAR`.
    Signature,
    /// The bytes do not sum to 0 modulo 256.
    Checksum,
    /// A structure at this offset has a length that does not fit.
    Structure(usize),
    /// A device scope inside the structure at this offset is malformed.
    Scope(usize),
}

impl fmt::Display for DmarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Truncated => write!(f, "DMAR table truncated"),
            Self::Signature => write!(f, "not a DMAR table"),
            Self::Checksum => write!(f, "DMAR checksum mismatch"),
            Self::Structure(o) => write!(f, "DMAR structure at {o:#x} has a bad length"),
            Self::Scope(o) => write!(f, "bad device scope in the DMAR structure at {o:#x}"),
        }
    }
}

impl std::error::Error for DmarError {}

/// What a device scope entry names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScopeKind {
    /// A PCI endpoint (type 1).
    Endpoint,
    /// A PCI bridge and everything below it (type 2).
    Bridge,
    /// An I/O APIC (type 3, enumeration id = APIC id).
    IoApic,
    /// An MSI-capable HPET (type 4).
    Hpet,
    /// An ACPI namespace device (type 5).
    Namespace,
    /// Any other type.
    Other(u8),
}

/// One device scope entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceScope {
    /// Kind.
    pub kind: ScopeKind,
    /// Enumeration id (I/O APIC id, HPET number, …).
    pub enumeration_id: u8,
    /// The bus the path starts on.
    pub start_bus: u8,
    /// (device, function) pairs: the first on `start_bus`, each later one
    /// behind the bridge the previous pair names.
    pub path: Vec<(u8, u8)>,
}

/// Bridge bus numbers, read from PCI configuration space by whoever has it.
pub trait PciTopology {
    /// The (secondary, subordinate) bus numbers of bridge `bridge`, `None`
    /// when it is not a bridge or not known.
    fn bridge_buses(&self, bridge: Bdf) -> Option<(u8, u8)>;
}

/// A topology that knows no bridges: paths resolve only when they have
/// one element, and bridges cover only themselves.
#[derive(Clone, Copy, Debug, Default)]
pub struct FlatTopology;

impl PciTopology for FlatTopology {
    fn bridge_buses(&self, _: Bdf) -> Option<(u8, u8)> {
        None
    }
}

impl DeviceScope {
    /// The function the path names, following bridges through `topology`.
    pub fn resolve(&self, topology: &dyn PciTopology) -> Option<Bdf> {
        let (&(dev, func), walk) = self.path.split_last()?;
        let mut bus = self.start_bus;
        for &(d, f) in walk {
            bus = topology.bridge_buses(Bdf::new(bus, d, f)?)?.0;
        }
        Bdf::new(bus, dev, func)
    }

    /// Whether this entry covers `device`: an endpoint names it; a bridge
    /// names it or has it on a bus below (secondary..=subordinate).
    pub fn covers(&self, device: Bdf, topology: &dyn PciTopology) -> bool {
        let Some(named) = self.resolve(topology) else {
            return false;
        };
        match self.kind {
            ScopeKind::Endpoint => named == device,
            ScopeKind::Bridge => {
                named == device
                    || topology
                        .bridge_buses(named)
                        .is_some_and(|(sec, sub)| (sec..=sub).contains(&device.bus()))
            }
            _ => false,
        }
    }
}

/// A DRHD: one remapping unit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Drhd {
    /// Flags (bit 0 INCLUDE_PCI_ALL).
    pub flags: u8,
    /// Register-window size: 2^`size` pages (0 in older firmware: one page).
    pub size: u8,
    /// PCI segment.
    pub segment: u16,
    /// Physical base of the registers.
    pub register_base: u64,
    /// Devices it translates (besides, with INCLUDE_PCI_ALL, everyone else).
    pub scopes: Vec<DeviceScope>,
}

impl Drhd {
    /// INCLUDE_PCI_ALL.
    pub fn include_pci_all(&self) -> bool {
        self.flags & INCLUDE_PCI_ALL != 0
    }

    /// Whether a scope entry lists `device` (or a bridge above it).
    pub fn lists(&self, device: Bdf, topology: &dyn PciTopology) -> bool {
        self.scopes.iter().any(|s| s.covers(device, topology))
    }
}

/// An RMRR: memory some devices use across the hand-over, to be kept
/// identity-mapped for them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rmrr {
    /// PCI segment.
    pub segment: u16,
    /// First byte (4 KiB aligned).
    pub base: u64,
    /// Last byte, inclusive (the next byte is 4 KiB aligned).
    pub limit: u64,
    /// The devices.
    pub scopes: Vec<DeviceScope>,
}

impl Rmrr {
    /// Bytes in the region.
    pub fn size(&self) -> u64 {
        self.limit - self.base + 1
    }
}

/// A parsed DMAR table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dmar {
    /// Host address width in bits (HAW + 1).
    pub host_address_width: u32,
    /// Flags (bit 0 INTR_REMAP, 1 X2APIC_OPT_OUT, 2 DMA_CTRL_PLATFORM_OPT_IN).
    pub flags: u8,
    /// Units, in table order.
    pub units: Vec<Drhd>,
    /// Reserved memory regions with sane ranges.
    pub reserved: Vec<Rmrr>,
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(o..o + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], o: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(o..o + 8)?.try_into().ok()?))
}

/// Parses the scope entries in `body` (the structure starting at `at`).
fn scopes(body: &[u8], at: usize) -> Result<Vec<DeviceScope>, DmarError> {
    let mut out = Vec::new();
    let mut o = 0;
    while o < body.len() {
        let bad = DmarError::Scope(at);
        let kind = *body.get(o).ok_or(bad)?;
        let len = usize::from(*body.get(o + 1).ok_or(bad)?);
        if len < 6 || (len - 6) % 2 != 0 || o + len > body.len() {
            return Err(bad);
        }
        let entry = &body[o..o + len];
        out.push(DeviceScope {
            kind: match kind {
                1 => ScopeKind::Endpoint,
                2 => ScopeKind::Bridge,
                3 => ScopeKind::IoApic,
                4 => ScopeKind::Hpet,
                5 => ScopeKind::Namespace,
                k => ScopeKind::Other(k),
            },
            enumeration_id: entry[4],
            start_bus: entry[5],
            path: entry[6..].chunks_exact(2).map(|p| (p[0], p[1])).collect(),
        });
        o += len;
    }
    Ok(out)
}

impl Dmar {
    /// Parses a whole DMAR table, header included (what
    /// `/scheme/acpi/tables/DMAR-…` reads).
    pub fn parse(table: &[u8]) -> Result<Self, DmarError> {
        if table.len() < STRUCTURES {
            return Err(DmarError::Truncated);
        }
        if &table[0..4] != b"DMAR" {
            return Err(DmarError::Signature);
        }
        let length = u32_at(table, 4).ok_or(DmarError::Truncated)? as usize;
        if length < STRUCTURES || length > table.len() {
            return Err(DmarError::Truncated);
        }
        let table = &table[..length];
        if table.iter().fold(0u8, |s, &b| s.wrapping_add(b)) != 0 {
            return Err(DmarError::Checksum);
        }
        let mut dmar = Dmar {
            host_address_width: u32::from(table[36]) + 1,
            flags: table[37],
            units: Vec::new(),
            reserved: Vec::new(),
        };
        let mut at = STRUCTURES;
        while at < table.len() {
            let bad = DmarError::Structure(at);
            let kind = u16_at(table, at).ok_or(bad)?;
            let len = usize::from(u16_at(table, at + 2).ok_or(bad)?);
            if len < 4 || at + len > table.len() {
                return Err(bad);
            }
            let s = &table[at..at + len];
            match kind {
                0 => {
                    if len < 16 {
                        return Err(bad);
                    }
                    dmar.units.push(Drhd {
                        flags: s[4],
                        size: s[5] & 0xF,
                        segment: u16_at(s, 6).ok_or(bad)?,
                        register_base: u64_at(s, 8).ok_or(bad)?,
                        scopes: scopes(&s[16..], at)?,
                    });
                }
                1 => {
                    if len < 24 {
                        return Err(bad);
                    }
                    let rmrr = Rmrr {
                        segment: u16_at(s, 6).ok_or(bad)?,
                        base: u64_at(s, 8).ok_or(bad)?,
                        limit: u64_at(s, 16).ok_or(bad)?,
                        scopes: scopes(&s[24..], at)?,
                    };
                    // Linux `rmrr_sanity_check`: warn about broken firmware
                    // and carry on; a range that is not page-granular
                    // cannot be identity-mapped, so it is left out.
                    let sane = rmrr.base.is_multiple_of(4096)
                        && rmrr.base <= rmrr.limit
                        && rmrr
                            .limit
                            .checked_add(1)
                            .is_some_and(|e| e.is_multiple_of(4096));
                    if sane {
                        dmar.reserved.push(rmrr);
                    } else {
                        log::warn!(
                            "iommud: firmware bug: RMRR {:#x}..={:#x} is not page-granular, ignored",
                            rmrr.base,
                            rmrr.limit
                        );
                    }
                }
                2 => log::info!("iommud: DMAR ATSR (ATS ports) ignored: no device-TLB support"),
                3 => log::info!("iommud: DMAR RHSA (unit NUMA proximity) ignored"),
                other => log::info!("iommud: DMAR structure type {other} skipped"),
            }
            at += len;
        }
        Ok(dmar)
    }

    /// The unit that translates `device` on segment 0, as Linux
    /// `dmar_find_matched_drhd_unit` decides: the first DRHD whose scopes
    /// list it or a bridge above it, else the segment's INCLUDE_PCI_ALL unit.
    pub fn unit_for(&self, device: Bdf, topology: &dyn PciTopology) -> Option<usize> {
        let segment0 = |d: &&Drhd| d.segment == 0;
        self.units
            .iter()
            .position(|d| segment0(&d) && !d.include_pci_all() && d.lists(device, topology))
            .or_else(|| {
                self.units
                    .iter()
                    .position(|d| segment0(&d) && d.include_pci_all())
            })
    }

    /// The RMRRs of segment 0 that apply to `device`.
    pub fn reserved_for<'a>(
        &'a self,
        device: Bdf,
        topology: &'a dyn PciTopology,
    ) -> impl Iterator<Item = &'a Rmrr> + 'a {
        self.reserved
            .iter()
            .filter(move |r| r.segment == 0 && r.scopes.iter().any(|s| s.covers(device, topology)))
    }
}
