//! Command ring entries (16 bytes; opcode in bits 31:28 of dword 1).
//!
//! | command | dword 0 | dword 1 | dwords 2–3 |
//! |---|---|---|---|
//! | `COMPLETION_WAIT` 0x01 | bit 0 S (store), 31:3 store address 31:3 | 19:0 store address 51:32 | the 64-bit value to store |
//! | `INV_DEV_ENTRY` 0x02 | 15:0 DeviceID | — | — |
//! | `INV_IOMMU_PAGES` 0x03 | 19:0 PASID | 15:0 DomainID | dword 2: bit 0 S, bit 1 PDE, 31:12 address; dword 3: address 63:32 |
//!
//! `INV_IOMMU_PAGES` with S = 0 invalidates one 4 KiB page; with S = 1 the
//! range size is encoded by the lowest zero bit of the address at or above
//! bit 12 (bit `k` zero, all lower bits from 12 one → `2^(k+1)` bytes,
//! aligned), and [`INVALIDATE_ALL_ADDRESS`] means the whole domain. PDE
//! (dword 2 bit 1) is always set, as current Linux does
//! (`build_inv_iommu_pages`): cached page-directory entries of the range go
//! too, so page-table pages emptied by an unmap can be freed after the wait.

/// `COMPLETION_WAIT` opcode.
pub const COMPLETION_WAIT: u8 = 0x01;
/// `INV_DEVTAB_ENTRY` opcode.
pub const INV_DEV_ENTRY: u8 = 0x02;
/// `INV_IOMMU_PAGES` opcode.
pub const INV_IOMMU_PAGES: u8 = 0x03;
/// `INV_IOMMU_PAGES` dword 2 bit 1: drop page-directory entries as well.
pub const PDE: u32 = 1 << 1;
/// With S = 1: every page of the domain.
pub const INVALIDATE_ALL_ADDRESS: u64 = 0x7FFF_FFFF_FFFF_F000;

/// One command.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Store `data` at `store_address` (8-byte aligned) once every earlier
    /// command has completed.
    CompletionWait {
        /// Physical address of the store.
        store_address: u64,
        /// Value stored.
        data: u64,
    },
    /// Drop the unit's cached copy of one device table entry.
    InvalidateDeviceEntry {
        /// Requester id.
        device_id: u16,
    },
    /// Drop IOTLB entries and cached page-directory entries (PDE=1) of a
    /// domain covering `[address, address + size)`.
    InvalidatePages {
        /// DomainID.
        domain_id: u16,
        /// First byte (4 KiB aligned).
        address: u64,
        /// Bytes; `u64::MAX` = the whole domain.
        size: u64,
    },
}

fn dwords(d: [u32; 4]) -> [u8; 16] {
    let mut out = [0u8; 16];
    for (chunk, word) in out.chunks_exact_mut(4).zip(d) {
        chunk.copy_from_slice(&word.to_le_bytes());
    }
    out
}

/// The address field of `INV_IOMMU_PAGES` for a range, and the S bit: the
/// smallest naturally aligned power-of-two block that covers the range.
pub fn encode_invalidation_range(address: u64, size: u64) -> (u64, bool) {
    let address = address & !0xFFF;
    if size <= 4096 {
        return (address, false);
    }
    let last = address.saturating_add(size - 1);
    let differing = 64 - (address ^ last).leading_zeros();
    if size == u64::MAX || differing >= 52 {
        return (INVALIDATE_ALL_ADDRESS, true);
    }
    // Bits below `differing` describe the block: ones from bit 12 up to bit
    // differing-2, bit differing-1 zero.
    let block = 1u64 << differing;
    let base = address & !(block - 1);
    (base | ((block >> 1) - 1) & !0xFFF, true)
}

/// Decodes the range of an `INV_IOMMU_PAGES` address field: (first byte, bytes).
pub fn decode_invalidation_range(address: u64, s: bool) -> (u64, u64) {
    let address = address & !0xFFF;
    if !s {
        return (address, 4096);
    }
    let ones = (address >> 12).trailing_ones();
    let bits = 12 + ones + 1;
    if bits >= 64 {
        return (0, u64::MAX);
    }
    let size = 1u64 << bits;
    (address & !(size - 1), size)
}

impl Command {
    /// The 16 bytes placed in the ring.
    pub fn encode(&self) -> [u8; 16] {
        match *self {
            Command::CompletionWait {
                store_address,
                data,
            } => dwords([
                (store_address as u32 & !7) | 1,
                ((store_address >> 32) as u32 & 0xF_FFFF) | (u32::from(COMPLETION_WAIT) << 28),
                data as u32,
                (data >> 32) as u32,
            ]),
            Command::InvalidateDeviceEntry { device_id } => {
                dwords([u32::from(device_id), u32::from(INV_DEV_ENTRY) << 28, 0, 0])
            }
            Command::InvalidatePages {
                domain_id,
                address,
                size,
            } => {
                let (field, s) = encode_invalidation_range(address, size);
                dwords([
                    0,
                    u32::from(domain_id) | (u32::from(INV_IOMMU_PAGES) << 28),
                    (field as u32 & !0xFFF) | u32::from(s) | PDE,
                    (field >> 32) as u32,
                ])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip_to_covering_blocks() {
        assert_eq!(encode_invalidation_range(0x5000, 0x1000), (0x5000, false));
        // Two pages at 0x4000: an 8 KiB block, bit 12 (the lowest) clear.
        assert_eq!(encode_invalidation_range(0x4000, 0x2000), (0x4000, true));
        assert_eq!(decode_invalidation_range(0x4000, true), (0x4000, 0x2000));
        // Bit 12 set, bit 13 clear: 16 KiB.
        assert_eq!(decode_invalidation_range(0x5000, true), (0x4000, 0x4000));
        // An unaligned pair widens to the covering block.
        let (f, s) = encode_invalidation_range(0x5000, 0x2000);
        let (base, size) = decode_invalidation_range(f, s);
        assert!(
            base <= 0x5000 && base + size >= 0x7000,
            "{base:#x}+{size:#x}"
        );
        assert_eq!(
            encode_invalidation_range(0, u64::MAX),
            (INVALIDATE_ALL_ADDRESS, true)
        );
        assert_eq!(
            decode_invalidation_range(INVALIDATE_ALL_ADDRESS, true),
            (0, u64::MAX)
        );
        for (addr, size) in [(0x20_0000u64, 0x20_0000u64), (0x1_0000_0000, 0x4000_0000)] {
            let (f, s) = encode_invalidation_range(addr, size);
            assert_eq!(decode_invalidation_range(f, s), (addr, size));
        }
    }

    #[test]
    fn opcodes_sit_in_dword1_bits_31_28() {
        for (cmd, op) in [
            (
                Command::CompletionWait {
                    store_address: 0x1_2345_6788,
                    data: 7,
                },
                COMPLETION_WAIT,
            ),
            (
                Command::InvalidateDeviceEntry { device_id: 0x10 },
                INV_DEV_ENTRY,
            ),
            (
                Command::InvalidatePages {
                    domain_id: 3,
                    address: 0,
                    size: 4096,
                },
                INV_IOMMU_PAGES,
            ),
        ] {
            let b = cmd.encode();
            assert_eq!(b[7] >> 4, op, "{cmd:?}");
        }
        let b = Command::InvalidatePages {
            domain_id: 3,
            address: 0x4000,
            size: 0x2000,
        }
        .encode();
        assert_eq!(
            u32::from_le_bytes([b[8], b[9], b[10], b[11]]),
            0x4000 | 1 | PDE,
            "S and PDE"
        );
        let b = Command::CompletionWait {
            store_address: 0x1_2345_6788,
            data: 0xAABB,
        }
        .encode();
        assert_eq!(&b[0..4], &0x2345_6789u32.to_le_bytes());
        assert_eq!(u32::from_le_bytes([b[4], b[5], b[6], b[7]]) & 0xF_FFFF, 1);
    }
}
