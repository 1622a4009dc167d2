//! Legacy (128-bit) queued-invalidation descriptors (VT-d specification
//! 6.5.2; Linux `QI_*` in `iommu.h`; notes §A.4).
//!
//! Only what iommud sends can be built: context-cache, IOTLB and
//! invalidation-wait descriptors. The wait has a status write and nothing
//! else: QEMU 7.2 asserts that SW and IF are never set together (it aborts
//! the VM), rejects PD, and a wait with neither bit is an IQE; so the type
//! has no way to express IF or PD at all.

/// Descriptor type of a context-cache invalidation.
pub const TYPE_CONTEXT_CACHE: u64 = 0x1;
/// Descriptor type of an IOTLB invalidation.
pub const TYPE_IOTLB: u64 = 0x2;
/// Descriptor type of an invalidation wait.
pub const TYPE_WAIT: u64 = 0x5;
/// Wait descriptor: status write.
pub const WAIT_SW: u64 = 1 << 5;

/// Which context-cache entries to invalidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContextScope {
    /// Every entry (G = 1).
    Global,
    /// Entries tagged with `did` (G = 2).
    Domain(u16),
    /// The entry of `source_id` tagged with `did` (G = 3, FM = 0).
    Device {
        /// Domain id the cached entry carries (0 for not-present entries
        /// cached under caching mode).
        did: u16,
        /// Requester id.
        source_id: u16,
    },
}

/// Which IOTLB entries to invalidate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IotlbScope {
    /// Every entry (G = 1).
    Global,
    /// Entries of `did` (G = 2, DSI).
    Domain(u16),
    /// Entries of `did` in the 2^`mask` pages at `address` (G = 3, PSI).
    Page {
        /// Domain id.
        did: u16,
        /// First byte, aligned to 2^(12 + mask).
        address: u64,
        /// AM: log2 of the page count (≤ CAP.MAMV).
        mask: u8,
        /// IH: only leaves changed, paging-structure caches may stay.
        leaf_only: bool,
    },
}

/// A descriptor iommud queues.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Descriptor {
    /// Context-cache invalidation (type 1).
    ContextCache(ContextScope),
    /// IOTLB invalidation (type 2), draining reads/writes where the unit can.
    Iotlb {
        /// What to invalidate.
        scope: IotlbScope,
        /// DR.
        drain_reads: bool,
        /// DW.
        drain_writes: bool,
    },
    /// Invalidation wait (type 5) with a status write of `data` to
    /// `status_address` (4-byte aligned) once every earlier descriptor completed.
    Wait {
        /// Where the unit writes `data`.
        status_address: u64,
        /// The 32-bit status value.
        data: u32,
    },
}

impl Descriptor {
    /// The descriptor's two quadwords.
    pub fn encode(self) -> [u64; 2] {
        match self {
            Descriptor::ContextCache(scope) => {
                let (g, did, sid) = match scope {
                    ContextScope::Global => (1u64, 0u16, 0u16),
                    ContextScope::Domain(did) => (2, did, 0),
                    ContextScope::Device { did, source_id } => (3, did, source_id),
                };
                [
                    TYPE_CONTEXT_CACHE | (g << 4) | (u64::from(did) << 16) | (u64::from(sid) << 32),
                    0,
                ]
            }
            Descriptor::Iotlb {
                scope,
                drain_reads,
                drain_writes,
            } => {
                let drain = (u64::from(drain_writes) << 6) | (u64::from(drain_reads) << 7);
                let (g, did, hi) = match scope {
                    IotlbScope::Global => (1u64, 0u16, 0u64),
                    IotlbScope::Domain(did) => (2, did, 0),
                    IotlbScope::Page {
                        did,
                        address,
                        mask,
                        leaf_only,
                    } => (
                        3,
                        did,
                        (address & !0xFFF) | (u64::from(leaf_only) << 6) | u64::from(mask & 0x3F),
                    ),
                };
                [TYPE_IOTLB | (g << 4) | drain | (u64::from(did) << 16), hi]
            }
            Descriptor::Wait {
                status_address,
                data,
            } => [
                TYPE_WAIT | WAIT_SW | (u64::from(data) << 32),
                status_address & !3,
            ],
        }
    }
}

/// The PSI that covers `[iova, iova + size)`: the smallest naturally aligned
/// block of 2^AM pages holding the range, or `None` when AM would exceed
/// `max_mask` (then a DSI is needed, as Linux `cache_tag_flush_iotlb` does).
pub fn page_selective_mask(iova: u64, size: u64, max_mask: u8) -> Option<(u64, u8)> {
    let first = iova >> 12;
    let last = iova.checked_add(size.max(1))?.checked_sub(1)? >> 12;
    let mut mask = 0u8;
    // Smallest AM whose aligned block contains both ends.
    while (first >> mask) != (last >> mask) {
        mask += 1;
    }
    (mask <= max_mask).then(|| ((first >> mask) << (mask + 12), mask))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_hand_computed_values() {
        assert_eq!(
            Descriptor::ContextCache(ContextScope::Global).encode(),
            [0x11, 0]
        );
        assert_eq!(
            Descriptor::ContextCache(ContextScope::Device {
                did: 0,
                source_id: 0x0108
            })
            .encode(),
            [0x0108_0000_0031, 0]
        );
        let psi = Descriptor::Iotlb {
            scope: IotlbScope::Page {
                did: 7,
                address: 0x20_0000,
                mask: 9,
                leaf_only: true,
            },
            drain_reads: true,
            drain_writes: true,
        };
        assert_eq!(psi.encode(), [0x0007_00F2, 0x20_0049]);
        let wait = Descriptor::Wait {
            status_address: 0x5000,
            data: 3,
        };
        // SW only: bit 5, never IF (bit 4) or PD (bit 7).
        assert_eq!(wait.encode(), [0x3_0000_0025, 0x5000]);
    }

    #[test]
    fn psi_masks_cover_the_range() {
        assert_eq!(page_selective_mask(0x1000, 0x1000, 18), Some((0x1000, 0)));
        assert_eq!(page_selective_mask(0x2000, 0x2000, 18), Some((0x2000, 1)));
        // Straddling an alignment boundary needs a bigger block.
        assert_eq!(page_selective_mask(0x3000, 0x2000, 18), Some((0, 3)));
        assert_eq!(
            page_selective_mask(0x20_0000, 0x20_0000, 18),
            Some((0x20_0000, 9))
        );
        assert_eq!(page_selective_mask(0, 1 << 40, 18), None);
    }
}
