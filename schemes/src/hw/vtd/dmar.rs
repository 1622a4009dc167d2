//! The DMAR table the simulated machine's firmware publishes, laid out the
//! way QEMU's `build_dmar_q35` (`hw/i386/acpi-build.c`) lays out its own:
//! HAW = aw-bits − 1, flags, one DRHD per unit (not INCLUDE_PCI_ALL) whose
//! scopes list the I/O APIC (SID 0xFF00) and each translated function,
//! then RMRRs.

use iommu::Bdf;

/// A device scope entry the firmware lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A PCI endpoint (type 1).
    Endpoint(Bdf),
    /// A PCI bridge, covering everything below it (type 2).
    Bridge(Bdf),
    /// An I/O APIC (type 3) on QEMU's pseudo bus 0xFF, path 00.0.
    IoApic(u8),
}

/// One unit of the table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarUnit {
    /// Register base.
    pub base: u64,
    /// INCLUDE_PCI_ALL.
    pub include_pci_all: bool,
    /// Listed devices.
    pub scopes: Vec<Scope>,
}

/// One RMRR: `[base, limit]` (inclusive, page-granular) for `devices`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DmarReserved {
    /// First byte.
    pub base: u64,
    /// Last byte.
    pub limit: u64,
    /// The devices that use it.
    pub devices: Vec<Bdf>,
}

fn scope_bytes(out: &mut Vec<u8>, scope: Scope) {
    let (kind, id, bus, dev, func) = match scope {
        Scope::Endpoint(b) => (1u8, 0u8, b.bus(), b.device(), b.function()),
        Scope::Bridge(b) => (2, 0, b.bus(), b.device(), b.function()),
        Scope::IoApic(id) => (3, id, 0xFF, 0, 0),
    };
    out.extend_from_slice(&[kind, 8, 0, 0, id, bus, dev, func]);
}

fn structure(out: &mut Vec<u8>, kind: u16, body: &[u8]) {
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&((body.len() + 4) as u16).to_le_bytes());
    out.extend_from_slice(body);
}

/// Everything after the 36-byte ACPI header: HAW = `aw_bits` − 1, flags
/// INTR_REMAP (as QEMU with intremap on), 10 reserved bytes, the DRHDs, then
/// the RMRRs. [`crate::mock::acpi::AcpiTables::publish`] adds the header.
pub fn body(aw_bits: u32, units: &[DmarUnit], reserved: &[DmarReserved]) -> Vec<u8> {
    let mut t = Vec::with_capacity(128);
    t.push((aw_bits - 1) as u8);
    t.push(0x01);
    t.extend_from_slice(&[0; 10]);
    for unit in units {
        let mut b = vec![u8::from(unit.include_pci_all), 0, 0, 0];
        b.extend_from_slice(&unit.base.to_le_bytes());
        for &s in &unit.scopes {
            scope_bytes(&mut b, s);
        }
        structure(&mut t, 0, &b);
    }
    for r in reserved {
        let mut b = vec![0u8; 4];
        b.extend_from_slice(&r.base.to_le_bytes());
        b.extend_from_slice(&r.limit.to_le_bytes());
        for &d in &r.devices {
            scope_bytes(&mut b, Scope::Endpoint(d));
        }
        structure(&mut t, 1, &b);
    }
    t
}
