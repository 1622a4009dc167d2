//! Primary fault records (VT-d specification 10.4.14; Linux `dma_frcd_*`
//! and `dmar_fault`; notes §A.5).
//!
//! A record is 16 bytes at `CAP.FRO × 16 + 16·i`: quadword 0 holds FI (the
//! faulting page, bits 63:12); dword 2 the source id (bits 15:0); dword 3
//! FR (bits 7:0), T (bit 30: 1 = read, 0 = write) and F (bit 31: valid,
//! write 1 to clear). The dwords at +8 and +12 are 32-bit registers.

use core::fmt;

use crate::bdf::Bdf;

/// F: the record holds a fault (write 1 to clear).
pub const FRCD_F: u32 = 1 << 31;
/// T: the faulting request was a read.
pub const FRCD_T: u32 = 1 << 30;

/// A fault-reason code (Linux `dma_remap_fault_reasons`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultReason(pub u8);

impl FaultReason {
    /// Root entry not present.
    pub const ROOT_NOT_PRESENT: FaultReason = FaultReason(0x1);
    /// Context entry not present.
    pub const CONTEXT_NOT_PRESENT: FaultReason = FaultReason(0x2);
    /// Invalid context entry (AW or TT).
    pub const INVALID_CONTEXT: FaultReason = FaultReason(0x3);
    /// Address beyond MGAW / AW.
    pub const BEYOND_WIDTH: FaultReason = FaultReason(0x4);
    /// Write not permitted (or the entry was not present for a write).
    pub const WRITE: FaultReason = FaultReason(0x5);
    /// Read not permitted (or the entry was not present for a read).
    pub const READ: FaultReason = FaultReason(0x6);
    /// Reserved bits set in a second-level entry.
    pub const PTE_RESERVED: FaultReason = FaultReason(0xC);

    /// What the code means.
    pub fn describe(self) -> &'static str {
        match self.0 {
            0x1 => "root entry not present",
            0x2 => "context entry not present",
            0x3 => "invalid context entry",
            0x4 => "address beyond the guest address width",
            0x5 => "write not permitted",
            0x6 => "read not permitted",
            0x7 => "cannot access a paging entry",
            0x8 => "root table address invalid",
            0x9 => "context table pointer invalid",
            0xA => "reserved bits in a root entry",
            0xB => "reserved bits in a context entry",
            0xC => "reserved bits in a page-table entry",
            0xD => "translation type blocks the request",
            0xE => "translated address in the interrupt range",
            0x20..=0x26 => "interrupt-remapping fault",
            0x30.. => "scalable-mode fault",
            _ => "unknown fault reason",
        }
    }
}

/// One primary fault record as the unit reported it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FaultRecord {
    /// Requester id.
    pub source_id: u16,
    /// The faulting page (FI, 4 KiB aligned).
    pub address: u64,
    /// FR.
    pub reason: FaultReason,
    /// T: a read (false: a write).
    pub read: bool,
}

impl FaultRecord {
    /// Decodes quadword 0, dword 2 and dword 3 of a record (`None` when F is
    /// clear: the slot holds no fault).
    pub fn decode(fi: u64, sid_dword: u32, flags_dword: u32) -> Option<Self> {
        (flags_dword & FRCD_F != 0).then_some(Self {
            source_id: sid_dword as u16,
            address: fi & !0xFFF,
            reason: FaultReason(flags_dword as u8),
            read: flags_dword & FRCD_T != 0,
        })
    }

    /// The requester.
    pub fn device(&self) -> Bdf {
        Bdf::from_requester_id(self.source_id)
    }
}

impl fmt::Display for FaultRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "vt-d fault device={} address={:#x} {} reason={:#x} ({})",
            self.device(),
            self.address,
            if self.read { "read" } else { "write" },
            self.reason.0,
            self.reason.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_decode_as_linux_reads_them() {
        // QEMU: T set for a read, FR 6, SID 00:03.0.
        let r = FaultRecord::decode(0x1234_5678, 0x18, FRCD_F | FRCD_T | 0x6).unwrap();
        assert_eq!(r.address, 0x1234_5000);
        assert_eq!(r.device(), Bdf::new(0, 3, 0).unwrap());
        assert!(r.read);
        assert_eq!(r.reason, FaultReason::READ);
        assert_eq!(FaultRecord::decode(0, 0, 0x6), None);
        assert!(r.to_string().contains("read not permitted"));
    }
}
