//! The ACPI `IVRS` table: where the AMD-Vi units are, which requester ids
//! each translates, and which memory every device must keep reaching.
//!
//! Layout (AMD IOMMU specification 48882 §5; field offsets as Linux's
//! `drivers/iommu/amd/init.c` and ACPICA `actbl2.h` read them, see
//! `notes/iommu-hw.md` §B.1): the 36-byte ACPI header, IVinfo (u32) and 8
//! reserved bytes, then blocks from offset 48, each `type u8, flags u8,
//! length u16, ...`:
//!
//! * IVHD `0x10` (24-byte header), `0x11` and `0x40` (40-byte header): one
//!   unit — its own PCI function, register base, segment — followed by
//!   device entries ([`ivhd`]). Firmware lists each unit once per IVHD type
//!   it supports; like Linux, only the highest type we know is used.
//! * IVMD `0x20` (all devices), `0x21` (one), `0x22` (a range): memory that
//!   must stay reachable untranslated ([`ivmd`]).
//!
//! Every length and offset is checked against the bytes: a malformed table
//! is an [`IvrsError`], never a panic and never a partial result.

pub mod ivhd;
pub mod ivmd;

use core::fmt;

pub use ivhd::{Coverage, DeviceRange, Ivhd, Special};
pub use ivmd::{DeviceSet, Ivmd};

/// Table signature.
pub const SIGNATURE: [u8; 4] = *b"IVRS";
/// Offset of the first IVHD/IVMD block.
pub const HEADER_LENGTH: usize = 48;

/// Why an IVRS table was refused. Offsets are from the table's first byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IvrsError {
    /// Fewer bytes than the 48-byte header, or than the header's length field.
    Truncated,
    /// The signature is not `IVRS`.
    Signature([u8; 4]),
    /// The header's length is below 48.
    Length(u32),
    /// The bytes do not sum to 0 modulo 256.
    Checksum,
    /// A block at `offset` whose length is below its header or past the table.
    Block {
        /// Offset of the block.
        offset: usize,
        /// The length it claims.
        length: usize,
    },
    /// A device entry at `offset` runs past its IVHD.
    Entry {
        /// Offset of the entry.
        offset: usize,
    },
    /// A RANGE END at `offset` without a RANGE START, or ending below it; or
    /// a RANGE START never closed before the IVHD ends.
    Range {
        /// Offset of the entry.
        offset: usize,
    },
    /// An IVMD at `offset` whose range is empty, unaligned or wraps.
    Memory {
        /// Offset of the block.
        offset: usize,
    },
}

impl fmt::Display for IvrsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IvrsError::Truncated => write!(f, "IVRS table truncated"),
            IvrsError::Signature(s) => write!(f, "signature {s:?} is not IVRS"),
            IvrsError::Length(l) => write!(f, "IVRS length {l} below its header"),
            IvrsError::Checksum => write!(f, "IVRS checksum does not sum to zero"),
            IvrsError::Block { offset, length } => {
                write!(f, "IVRS block at {offset:#x} has bad length {length}")
            }
            IvrsError::Entry { offset } => {
                write!(f, "IVHD device entry at {offset:#x} runs past its block")
            }
            IvrsError::Range { offset } => {
                write!(f, "IVHD device range at {offset:#x} is not well formed")
            }
            IvrsError::Memory { offset } => {
                write!(f, "IVMD at {offset:#x} describes no usable range")
            }
        }
    }
}

impl std::error::Error for IvrsError {}

impl From<IvrsError> for syscall::Error {
    fn from(_: IvrsError) -> Self {
        syscall::Error::new(syscall::error::EINVAL)
    }
}

/// A parsed IVRS table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ivrs {
    /// IVinfo (bit 0 EFRSup, bits 14:8 PASize, 21:15 VASize).
    pub info: u32,
    /// Every IVHD, in table order, of every type.
    pub ivhds: Vec<Ivhd>,
    /// Every IVMD, in table order.
    pub ivmds: Vec<Ivmd>,
}

pub(crate) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(
        b.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(
        b.get(at..at.checked_add(8)?)?.try_into().ok()?,
    ))
}

/// IVHD types this parser knows, lowest first.
pub const IVHD_TYPES: [u8; 3] = [0x10, 0x11, 0x40];

impl Ivrs {
    /// Parses a whole table (ACPI header included), as acpid serves it.
    pub fn parse(bytes: &[u8]) -> Result<Ivrs, IvrsError> {
        if bytes.len() < HEADER_LENGTH {
            return Err(IvrsError::Truncated);
        }
        let signature: [u8; 4] = bytes
            .get(..4)
            .and_then(|s| s.try_into().ok())
            .ok_or(IvrsError::Truncated)?;
        if signature != SIGNATURE {
            return Err(IvrsError::Signature(signature));
        }
        let length = u32_at(bytes, 4).ok_or(IvrsError::Truncated)?;
        let len = usize::try_from(length).map_err(|_| IvrsError::Length(length))?;
        if len < HEADER_LENGTH {
            return Err(IvrsError::Length(length));
        }
        let table = bytes.get(..len).ok_or(IvrsError::Truncated)?;
        if table.iter().fold(0u8, |sum, b| sum.wrapping_add(*b)) != 0 {
            return Err(IvrsError::Checksum);
        }
        let info = u32_at(table, 36).ok_or(IvrsError::Truncated)?;
        let mut ivrs = Ivrs {
            info,
            ivhds: Vec::new(),
            ivmds: Vec::new(),
        };
        let mut at = HEADER_LENGTH;
        while at < table.len() {
            let kind = *table.get(at).ok_or(IvrsError::Truncated)?;
            let length = u16_at(table, at + 2).ok_or(IvrsError::Block {
                offset: at,
                length: 0,
            })?;
            let length = usize::from(length);
            let bad = IvrsError::Block { offset: at, length };
            let end = at.checked_add(length).ok_or(bad)?;
            if length < 4 || end > table.len() {
                return Err(bad);
            }
            let block = table.get(at..end).ok_or(bad)?;
            match kind {
                0x10 | 0x11 | 0x40 => ivrs.ivhds.push(Ivhd::parse(block, at)?),
                0x20..=0x22 => ivrs.ivmds.push(Ivmd::parse(block, at)?),
                // Types this parser does not know are skipped by their length,
                // as Linux does.
                _ => {}
            }
            at = end;
        }
        Ok(ivrs)
    }

    /// The IVHD type a driver should use: the highest one listed that this
    /// parser knows (Linux's `get_highest_supported_ivhd_type`).
    pub fn ivhd_type(&self) -> Option<u8> {
        IVHD_TYPES
            .iter()
            .rev()
            .copied()
            .find(|t| self.ivhds.iter().any(|h| h.kind == *t))
    }

    /// The units: the IVHDs of [`ivhd_type`](Self::ivhd_type), one per unit.
    pub fn units(&self) -> impl Iterator<Item = &Ivhd> {
        let kind = self.ivhd_type();
        self.ivhds.iter().filter(move |h| Some(h.kind) == kind)
    }
}

/// Fills in an ACPI header (36 bytes, checksum last) in front of `body`:
/// for tests and for the simulated firmware.
pub fn with_header(signature: [u8; 4], revision: u8, body: &[u8]) -> Vec<u8> {
    let len = 36 + body.len();
    let mut t = Vec::with_capacity(len);
    t.extend_from_slice(&signature);
    t.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
    t.push(revision);
    t.push(0);
    t.extend_from_slice(b"DSMILT");
    t.extend_from_slice(b"IVRSTEST");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(b"DSML");
    t.extend_from_slice(&1u32.to_le_bytes());
    t.extend_from_slice(body);
    let sum = t.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    if let Some(c) = t.get_mut(9) {
        *c = 0u8.wrapping_sub(sum);
    }
    t
}
