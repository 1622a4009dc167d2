//! The IVRS table the simulated machine's firmware publishes for its AMD-Vi units,
//! built from the machine as it is when the table is read.
//!
//! Layout (AMD I/O Virtualization Technology specification 48882, §5; the field
//! offsets are those of Linux `drivers/iommu/amd/init.c` and ACPICA `actbl2.h`):
//! the 36-byte ACPI header, IVinfo (u32) and 8 reserved bytes, then per unit one
//! IVHD of type 0x10 (24-byte header) followed by one of type 0x11 (40-byte header,
//! with the EFR image) — firmware lists each unit once per IVHD type and an OS
//! picks the newest type it knows — and finally the IVMD blocks.
//!
//! Each IVHD names the unit's own PCI function (DeviceID), its register base, and
//! the requester ids it translates as device entries: runs of consecutive ids as a
//! RANGE START (0x03) / RANGE END (0x04) pair, single ids as SELECT (0x02).

use driver_sys::pci::PciAddress;

/// Where the first simulated AMD-Vi unit's registers sit (further units follow at
/// [`AMDVI_MMIO_STRIDE`]).
pub const AMDVI_MMIO_BASE: u64 = 0xFD20_0000;
/// Distance between the register blocks of successive units (the 512 KiB Linux
/// reserves for a unit with performance counters).
pub const AMDVI_MMIO_STRIDE: u64 = 0x8_0000;
/// Config-space offset of the IOMMU capability in the unit's PCI function.
pub const AMDVI_CAPABILITY_OFFSET: u16 = 0x40;
/// Signature.
pub const IVRS_SIGNATURE: [u8; 4] = *b"IVRS";
/// OEM ID of the simulated firmware's tables.
pub const SIM_OEM_ID: [u8; 6] = *b"DSMILH";
/// OEM table ID of the IVRS.
pub const IVRS_OEM_TABLE_ID: [u8; 8] = *b"SIMAMDVI";
/// IVRS revision: 2 allows IVHD type 0x11.
pub const IVRS_REVISION: u8 = 2;
/// Offset of the first IVHD/IVMD block.
pub const IVRS_HEADER_LENGTH: usize = 48;

/// IVinfo: EFRSup (bit 0), PASize 48 (bits 14:8), VASize 64 (bits 21:15).
pub const IVINFO: u32 = 1 | (48 << 8) | (64 << 15);
/// IVHD flags: Coherent (bit 5) — the simulated unit snoops its table walks.
pub const IVHD_FLAGS: u8 = 1 << 5;
/// IVMD flags of a unity range: Unity (bit 0), IR (bit 1), IW (bit 2).
pub const IVMD_UNITY_RW: u8 = 0b111;

/// Device entry types.
pub mod entry {
    /// One DeviceID.
    pub const SELECT: u8 = 0x02;
    /// First DeviceID of a range (the next RANGE END closes it).
    pub const RANGE_START: u8 = 0x03;
    /// Last DeviceID of a range.
    pub const RANGE_END: u8 = 0x04;
}

/// One AMD-Vi unit as firmware describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IvhdUnit {
    /// The unit's own PCI function.
    pub device_id: u16,
    /// Register base (the MMIO physical address).
    pub mmio_base: u64,
    /// PCI segment.
    pub segment: u16,
    /// The EFR register image (type 0x11 only).
    pub efr: u64,
    /// Requester ids behind the unit, in any order.
    pub devices: Vec<u16>,
}

/// A memory range every device must reach untranslated (IVMD type 0x20: all
/// peripherals, unity mapped, readable and writable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IvmdUnity {
    /// First byte (page aligned).
    pub start: u64,
    /// Length in bytes.
    pub len: u64,
}

/// The requester id of a function.
pub fn device_id(addr: &PciAddress) -> u16 {
    addr.requester_id()
}

/// Device entries for `ids`: sorted, duplicates dropped, consecutive runs as ranges.
pub fn device_entries(ids: &[u16]) -> Vec<u8> {
    let mut ids = ids.to_vec();
    ids.sort_unstable();
    ids.dedup();
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(&first) = ids.get(i) {
        let mut last = first;
        while ids
            .get(i + 1)
            .is_some_and(|&n| Some(n) == last.checked_add(1))
        {
            i += 1;
            last = ids[i];
        }
        let [lo, hi] = first.to_le_bytes();
        if last == first {
            out.extend_from_slice(&[entry::SELECT, lo, hi, 0]);
        } else {
            let [elo, ehi] = last.to_le_bytes();
            out.extend_from_slice(&[entry::RANGE_START, lo, hi, 0]);
            out.extend_from_slice(&[entry::RANGE_END, elo, ehi, 0]);
        }
        i += 1;
    }
    out
}

fn ivhd(kind: u8, unit: &IvhdUnit) -> Vec<u8> {
    let entries = device_entries(&unit.devices);
    let header_len: usize = if kind == 0x10 { 24 } else { 40 };
    let len = header_len + entries.len();
    let mut b = Vec::with_capacity(len);
    b.push(kind);
    b.push(IVHD_FLAGS);
    b.extend_from_slice(&(len as u16).to_le_bytes());
    b.extend_from_slice(&unit.device_id.to_le_bytes());
    b.extend_from_slice(&AMDVI_CAPABILITY_OFFSET.to_le_bytes());
    b.extend_from_slice(&unit.mmio_base.to_le_bytes());
    b.extend_from_slice(&unit.segment.to_le_bytes());
    // IOMMU info: MSI number 0, UnitID 0.
    b.extend_from_slice(&0u16.to_le_bytes());
    // Type 0x10: feature reporting; 0x11: attributes. Nothing to report.
    b.extend_from_slice(&0u32.to_le_bytes());
    if kind != 0x10 {
        b.extend_from_slice(&unit.efr.to_le_bytes());
        b.extend_from_slice(&0u64.to_le_bytes());
    }
    b.extend_from_slice(&entries);
    b
}

fn ivmd_all(range: &IvmdUnity) -> Vec<u8> {
    let mut b = Vec::with_capacity(32);
    b.push(0x20);
    b.push(IVMD_UNITY_RW);
    b.extend_from_slice(&32u16.to_le_bytes());
    // DeviceID and auxiliary data are reserved for type 0x20; segment 0.
    b.extend_from_slice(&[0; 12]);
    b.extend_from_slice(&range.start.to_le_bytes());
    b.extend_from_slice(&range.len.to_le_bytes());
    b
}

/// The IVRS body (everything after the 36-byte ACPI header).
pub fn ivrs_body(units: &[IvhdUnit], unity: &[IvmdUnity]) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&IVINFO.to_le_bytes());
    b.extend_from_slice(&[0; 8]);
    for unit in units {
        b.extend_from_slice(&ivhd(0x10, unit));
        b.extend_from_slice(&ivhd(0x11, unit));
    }
    for range in unity {
        b.extend_from_slice(&ivmd_all(range));
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_become_ranges_and_singletons_selects() {
        let e = device_entries(&[0x18, 0x10, 0x11, 0x12, 0x11]);
        assert_eq!(
            e,
            vec![3, 0x10, 0, 0, 4, 0x12, 0, 0, 2, 0x18, 0, 0],
            "0x10..=0x12 as a range, 0x18 alone, the duplicate dropped"
        );
        assert!(device_entries(&[]).is_empty());
        assert_eq!(device_entries(&[0xFFFF, 0xFFFE]).len(), 8);
    }

    #[test]
    fn blocks_have_their_lengths() {
        let unit = IvhdUnit {
            device_id: 2,
            mmio_base: AMDVI_MMIO_BASE,
            segment: 0,
            efr: 0,
            devices: vec![0x18],
        };
        let body = ivrs_body(
            std::slice::from_ref(&unit),
            &[IvmdUnity {
                start: 0xD000_0000,
                len: 0x1000,
            }],
        );
        // IVinfo + reserved, IVHD 0x10 (24 + 4), IVHD 0x11 (40 + 4), IVMD 32.
        assert_eq!(body.len(), 12 + 28 + 44 + 32);
        assert_eq!(body[12], 0x10);
        assert_eq!(u16::from_le_bytes([body[14], body[15]]), 28);
        assert_eq!(body[12 + 28], 0x11);
        assert_eq!(body[12 + 28 + 44], 0x20);
    }
}
