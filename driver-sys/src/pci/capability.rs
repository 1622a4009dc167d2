//! Walking the standard capability list.
//!
//! The list starts at the pointer in config offset 0x34 (when status bit 4 says
//! there is one) and chains through the "next" byte of each 2-byte header. The
//! list lives in memory the device controls, so the walk is bounded: pointers
//! must land in the device-specific region 0x40..=0xFC, no offset may be visited
//! twice, and at most [`MAX_CAPABILITIES`] entries are returned (the same bound as
//! Linux's `PCI_FIND_CAP_TTL`).

use super::config::{ConfigError, ConfigSpace, REG_STATUS};

/// Capability ID of MSI.
pub const CAP_ID_MSI: u8 = 0x05;
/// Capability ID of MSI-X.
pub const CAP_ID_MSIX: u8 = 0x11;
/// Capability ID of PCI Express.
pub const CAP_ID_PCIE: u8 = 0x10;
/// Capability ID of power management.
pub const CAP_ID_PM: u8 = 0x01;

/// Offset of the capabilities pointer in a type 0 or type 1 header.
pub const REG_CAPABILITIES_POINTER: u16 = 0x34;
/// Status register bit 4: the function has a capability list.
pub const STATUS_CAPABILITIES_LIST: u16 = 1 << 4;
/// At most this many capabilities are walked: 48 is how many 4-byte
/// capabilities fit in 0x40..0x100.
pub const MAX_CAPABILITIES: usize = 48;

/// One entry of the capability list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capability {
    /// The capability ID (byte 0 of the header), e.g. [`CAP_ID_MSI`].
    pub id: u8,
    /// Config-space offset of the header.
    pub offset: u8,
}

/// Why the capability list could not be walked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CapabilityError {
    /// Configuration-space access failed.
    Config(ConfigError),
    /// A pointer leads outside the device-specific region 0x40..=0xFC.
    BadPointer {
        /// Where the pointer was read (0x34 for the head).
        from: u16,
        /// The pointer value, low two bits cleared.
        pointer: u8,
    },
    /// The list returns to an offset already visited.
    Loop {
        /// The offset visited twice.
        offset: u8,
    },
    /// More than [`MAX_CAPABILITIES`] entries.
    TooMany,
    /// A header reads as 0xFF: the function has gone away (all-ones reads).
    DeviceGone {
        /// Offset of that header.
        offset: u8,
    },
}

impl From<ConfigError> for CapabilityError {
    fn from(e: ConfigError) -> Self {
        Self::Config(e)
    }
}

impl core::fmt::Display for CapabilityError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Config(e) => write!(f, "capability list: {e}"),
            Self::BadPointer { from, pointer } => {
                write!(
                    f,
                    "capability pointer {pointer:#x} at {from:#x} is outside 0x40..=0xfc"
                )
            }
            Self::Loop { offset } => write!(f, "capability list loops back to {offset:#x}"),
            Self::TooMany => write!(f, "capability list longer than {MAX_CAPABILITIES}"),
            Self::DeviceGone { offset } => {
                write!(
                    f,
                    "capability header at {offset:#x} reads all-ones; device gone"
                )
            }
        }
    }
}

impl std::error::Error for CapabilityError {}

/// An iterator over the capability list of one function.
///
/// Yields each capability, then at most one error, then ends. A corrupt tail
/// therefore does not hide the capabilities before it.
pub struct CapabilityWalk<'a, C: ConfigSpace + ?Sized> {
    cfg: &'a mut C,
    /// Where the next pointer is read from; `None` once finished.
    next_from: Option<u16>,
    /// Visited header offsets, one bit per dword in 0..0x100.
    visited: u64,
    count: usize,
}

impl<'a, C: ConfigSpace + ?Sized> CapabilityWalk<'a, C> {
    /// Starts a walk. Reads the status register lazily, on the first `next`.
    pub fn new(cfg: &'a mut C) -> Self {
        Self {
            cfg,
            next_from: Some(REG_CAPABILITIES_POINTER),
            visited: 0,
            count: 0,
        }
    }

    fn step(&mut self, from: u16) -> Result<Option<Capability>, CapabilityError> {
        if from == REG_CAPABILITIES_POINTER {
            let status = self.cfg.read_u16(REG_STATUS)?;
            if status & STATUS_CAPABILITIES_LIST == 0 {
                return Ok(None);
            }
        }
        // The low two bits of every pointer are reserved and must be ignored.
        let pointer = self.cfg.read_u8(from)? & 0xFC;
        if pointer == 0 {
            return Ok(None);
        }
        if pointer < 0x40 {
            return Err(CapabilityError::BadPointer { from, pointer });
        }
        let bit = 1u64 << (pointer >> 2);
        if self.visited & bit != 0 {
            return Err(CapabilityError::Loop { offset: pointer });
        }
        if self.count >= MAX_CAPABILITIES {
            return Err(CapabilityError::TooMany);
        }
        self.visited |= bit;
        self.count += 1;
        let id = self.cfg.read_u8(u16::from(pointer))?;
        if id == 0xFF {
            return Err(CapabilityError::DeviceGone { offset: pointer });
        }
        self.next_from = Some(u16::from(pointer) + 1);
        Ok(Some(Capability {
            id,
            offset: pointer,
        }))
    }
}

impl<C: ConfigSpace + ?Sized> Iterator for CapabilityWalk<'_, C> {
    type Item = Result<Capability, CapabilityError>;

    fn next(&mut self) -> Option<Self::Item> {
        let from = self.next_from.take()?;
        self.step(from).transpose()
    }
}

/// All capabilities of the function, or the first error met while walking.
pub fn capabilities<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
) -> Result<Vec<Capability>, CapabilityError> {
    CapabilityWalk::new(cfg).collect()
}

/// The first capability with `id`, `None` if the list ends without one.
///
/// A corrupt list is only an error if it is reached before a match.
pub fn find_capability<C: ConfigSpace + ?Sized>(
    cfg: &mut C,
    id: u8,
) -> Result<Option<Capability>, CapabilityError> {
    for cap in CapabilityWalk::new(cfg) {
        let cap = cap?;
        if cap.id == id {
            return Ok(Some(cap));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::config::MemoryConfigSpace;

    /// A config space whose list is `(offset, id, next)` triples.
    fn with_list(head: u8, caps: &[(u8, u8, u8)]) -> MemoryConfigSpace {
        let mut cfg = MemoryConfigSpace::new();
        cfg.write_u16(REG_STATUS, STATUS_CAPABILITIES_LIST).unwrap();
        cfg.write_u8(REG_CAPABILITIES_POINTER, head).unwrap();
        for &(offset, id, next) in caps {
            cfg.write_u8(u16::from(offset), id).unwrap();
            cfg.write_u8(u16::from(offset) + 1, next).unwrap();
        }
        cfg
    }

    #[test]
    fn walks_a_well_formed_list() {
        let mut cfg = with_list(
            0x40,
            &[
                (0x40, CAP_ID_PM, 0x50),
                (0x50, CAP_ID_MSI, 0x70),
                (0x70, CAP_ID_MSIX, 0),
            ],
        );
        let caps = capabilities(&mut cfg).unwrap();
        assert_eq!(
            caps,
            vec![
                Capability {
                    id: CAP_ID_PM,
                    offset: 0x40
                },
                Capability {
                    id: CAP_ID_MSI,
                    offset: 0x50
                },
                Capability {
                    id: CAP_ID_MSIX,
                    offset: 0x70
                },
            ]
        );
        assert_eq!(
            find_capability(&mut cfg, CAP_ID_MSIX).unwrap(),
            Some(Capability {
                id: CAP_ID_MSIX,
                offset: 0x70
            })
        );
        assert_eq!(find_capability(&mut cfg, CAP_ID_PCIE).unwrap(), None);
    }

    #[test]
    fn no_list_without_status_bit() {
        let mut cfg = with_list(0x40, &[(0x40, CAP_ID_MSI, 0)]);
        cfg.write_u16(REG_STATUS, 0).unwrap();
        assert_eq!(capabilities(&mut cfg).unwrap(), vec![]);
    }

    #[test]
    fn reserved_pointer_bits_are_ignored() {
        let mut cfg = with_list(0x43, &[(0x40, CAP_ID_MSI, 0x52), (0x50, CAP_ID_MSIX, 0)]);
        let ids: Vec<u8> = capabilities(&mut cfg)
            .unwrap()
            .iter()
            .map(|c| c.id)
            .collect();
        assert_eq!(ids, vec![CAP_ID_MSI, CAP_ID_MSIX]);
    }

    #[test]
    fn self_loop_is_reported_not_hung() {
        let mut cfg = with_list(0x40, &[(0x40, CAP_ID_PM, 0x40)]);
        assert_eq!(
            capabilities(&mut cfg),
            Err(CapabilityError::Loop { offset: 0x40 })
        );
    }

    #[test]
    fn long_cycle_is_reported() {
        let mut cfg = with_list(
            0x40,
            &[
                (0x40, 1, 0x50),
                (0x50, 2, 0x60),
                (0x60, 3, 0x44),
                (0x44, 4, 0x50),
            ],
        );
        assert_eq!(
            capabilities(&mut cfg),
            Err(CapabilityError::Loop { offset: 0x50 })
        );
    }

    #[test]
    fn pointer_into_header_is_rejected() {
        let mut cfg = with_list(0x40, &[(0x40, CAP_ID_PM, 0x10)]);
        let walked: Vec<_> = CapabilityWalk::new(&mut cfg).collect();
        assert_eq!(walked.len(), 2, "the good entry, then the error");
        assert_eq!(
            walked[0],
            Ok(Capability {
                id: CAP_ID_PM,
                offset: 0x40
            })
        );
        assert_eq!(
            walked[1],
            Err(CapabilityError::BadPointer {
                from: 0x41,
                pointer: 0x10
            })
        );
        // A match before the corruption is still found.
        assert!(find_capability(&mut cfg, CAP_ID_PM).unwrap().is_some());
        assert!(find_capability(&mut cfg, CAP_ID_MSI).is_err());
    }

    #[test]
    fn all_ones_header_means_device_gone() {
        let mut cfg = with_list(0x40, &[(0x40, 0xFF, 0xFF)]);
        assert_eq!(
            capabilities(&mut cfg),
            Err(CapabilityError::DeviceGone { offset: 0x40 })
        );
    }

    #[test]
    fn every_dword_filled_stops_at_the_bound() {
        // 0x40, 0x44, ... 0xFC: 48 distinct entries, then the last points back
        // into the chain: both the bound and the loop check are exercised.
        let mut cfg = with_list(0x40, &[]);
        for i in 0..48u16 {
            let offset = 0x40 + i * 4;
            let next = if i == 47 { 0x40 } else { offset + 4 };
            cfg.write_u8(offset, 0x09).unwrap();
            cfg.write_u8(offset + 1, next as u8).unwrap();
        }
        let walked: Vec<_> = CapabilityWalk::new(&mut cfg).collect();
        assert_eq!(walked.len(), 49);
        assert!(walked[..48].iter().all(Result::is_ok));
        assert!(walked[48].is_err());
    }

    #[test]
    fn arbitrary_bytes_never_hang_or_panic() {
        // A deterministic pseudo-random fill of the header region.
        let mut cfg = MemoryConfigSpace::new();
        let mut x: u32 = 0x1234_5678;
        for off in 0..256u16 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            cfg.write_u8(off, (x >> 24) as u8).unwrap();
        }
        cfg.write_u16(REG_STATUS, STATUS_CAPABILITIES_LIST).unwrap();
        let n = CapabilityWalk::new(&mut cfg).count();
        assert!(n <= MAX_CAPABILITIES + 1);
    }
}
