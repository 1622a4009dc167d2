//! Event log entries (16 bytes, written by the unit).
//!
//! | dword | bits | field |
//! |---|---|---|
//! | 0 | 15:0 | DeviceID (requester id) |
//! | 1 | 15:0 | DomainID |
//! | 1 | 27:16 | flags: 0x010 PR (the page was present: a permission fault), 0x020 RW (a write), 0x040 PE (permission), 0x100 TR (translation request) |
//! | 1 | 31:28 | event code (0x2 = IO_PAGE_FAULT) |
//! | 2–3 | | address |

use crate::bdf::Bdf;

/// `IO_PAGE_FAULT` event code.
pub const IO_PAGE_FAULT: u8 = 0x2;
/// Flag: the page was present (permission violation rather than a missing page).
pub const FLAG_PRESENT: u16 = 0x010;
/// Flag: the access was a write.
pub const FLAG_WRITE: u16 = 0x020;
/// Flag: a permission check failed.
pub const FLAG_PERMISSION: u16 = 0x040;

/// One raw event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventLogEntry {
    /// Event code (dword 1 bits 31:28).
    pub code: u8,
    /// Requester id.
    pub device_id: u16,
    /// DomainID.
    pub domain_id: u16,
    /// Flags (dword 1 bits 27:16).
    pub flags: u16,
    /// Address.
    pub address: u64,
}

impl EventLogEntry {
    /// Decodes the 16 bytes of one entry.
    pub fn decode(bytes: &[u8; 16]) -> Self {
        let dword = |i: usize| {
            let mut b = [0u8; 4];
            if let Some(src) = bytes.get(i * 4..i * 4 + 4) {
                b.copy_from_slice(src);
            }
            u32::from_le_bytes(b)
        };
        let d1 = dword(1);
        Self {
            code: (d1 >> 28) as u8,
            device_id: dword(0) as u16,
            domain_id: d1 as u16,
            flags: ((d1 >> 16) & 0xFFF) as u16,
            address: u64::from(dword(2)) | (u64::from(dword(3)) << 32),
        }
    }

    /// The I/O page fault this entry reports, if it is one.
    pub fn page_fault(&self) -> Option<IoPageFault> {
        (self.code == IO_PAGE_FAULT).then_some(IoPageFault {
            device: Bdf::from_requester_id(self.device_id),
            domain_id: self.domain_id,
            address: self.address,
            write: self.flags & FLAG_WRITE != 0,
            present: self.flags & FLAG_PRESENT != 0,
        })
    }
}

/// A decoded I/O page fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IoPageFault {
    /// The device that attempted the access.
    pub device: Bdf,
    /// The domain its device table entry named.
    pub domain_id: u16,
    /// The IOVA (bus address) it used.
    pub address: u64,
    /// A write (else a read).
    pub write: bool,
    /// The page was mapped but the access was not permitted.
    pub present: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_a_write_fault() {
        let mut b = [0u8; 16];
        b[0..4].copy_from_slice(&0x0108u32.to_le_bytes());
        b[4..8].copy_from_slice(&(0x2000_0007u32 | (u32::from(FLAG_WRITE) << 16)).to_le_bytes());
        b[8..16].copy_from_slice(&0x1_0000_2000u64.to_le_bytes());
        let e = EventLogEntry::decode(&b);
        let f = e.page_fault().unwrap();
        assert_eq!(f.device.to_string(), "01:01.0");
        assert_eq!((f.domain_id, f.address, f.write), (7, 0x1_0000_2000, true));
    }
}
