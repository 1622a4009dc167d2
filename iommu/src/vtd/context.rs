//! Legacy-mode root and context entries (VT-d specification 9.1/9.3; Linux
//! `struct root_entry`/`struct context_entry` and the `context_set_*`
//! helpers; notes §A.2).
//!
//! Root entry (16 bytes, one per bus): `lo` bit 0 P, bits 63:12 the context
//! table; `hi` reserved in legacy mode.
//!
//! Context entry (16 bytes, one per devfn):
//!
//! | bits | field |
//! |---|---|
//! | lo 0 | P |
//! | lo 1 | FPD: fault processing disable (iommud keeps faults on) |
//! | lo 3:2 | TT: 00 translated, 01 translated + device-TLB, 10 pass-through |
//! | lo 63:12 | SLPTPTR: the second-level root table |
//! | hi 2:0 | AW: 1 = 39-bit/3 levels, 2 = 48-bit/4 levels |
//! | hi 23:8 | DID |

/// Present, in both entry kinds.
pub const PRESENT: u64 = 1;
/// Fault processing disable.
pub const FPD: u64 = 1 << 1;
const TT_SHIFT: u32 = 2;
const ADDR_MASK: u64 = 0x000F_FFFF_FFFF_F000;

/// A root entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RootEntry {
    /// Low quadword.
    pub lo: u64,
    /// High quadword (reserved, 0).
    pub hi: u64,
}

impl RootEntry {
    /// A present entry pointing at the context table at `table`.
    pub const fn present(table: u64) -> Self {
        Self {
            lo: (table & ADDR_MASK) | PRESENT,
            hi: 0,
        }
    }

    /// P.
    pub const fn is_present(self) -> bool {
        self.lo & PRESENT != 0
    }

    /// The context table address.
    pub const fn table(self) -> u64 {
        self.lo & ADDR_MASK
    }
}

/// The translation type of a context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TranslationType {
    /// TT = 00: untranslated requests walk the second-level tables.
    Translated,
    /// TT = 10: untranslated requests pass through (IOVA = physical).
    PassThrough,
}

/// A context entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct ContextEntry {
    /// Low quadword (P, FPD, TT, SLPTPTR).
    pub lo: u64,
    /// High quadword (AW, DID).
    pub hi: u64,
}

impl ContextEntry {
    /// Not present: every request of the device faults (reason 2). This is
    /// the "blocked" state.
    pub const BLOCKED: ContextEntry = ContextEntry { lo: 0, hi: 0 };

    /// A present entry translating through the tables at `root` with
    /// `agaw` (AW) and domain id `did`.
    pub const fn translated(did: u16, root: u64, agaw: u8) -> Self {
        Self {
            lo: (root & ADDR_MASK) | PRESENT,
            hi: Self::high(did, agaw),
        }
    }

    /// A present pass-through entry. AW must still name a width SAGAW
    /// offers: QEMU checks it for pass-through entries too (fault 3), and
    /// Linux programs the unit's widest.
    pub const fn pass_through(did: u16, agaw: u8) -> Self {
        Self {
            lo: (0b10 << TT_SHIFT) | PRESENT,
            hi: Self::high(did, agaw),
        }
    }

    const fn high(did: u16, agaw: u8) -> u64 {
        ((did as u64) << 8) | (agaw as u64 & 7)
    }

    /// P.
    pub const fn is_present(self) -> bool {
        self.lo & PRESENT != 0
    }

    /// The domain id (`None` when not present).
    pub const fn domain(self) -> Option<u16> {
        if self.is_present() {
            Some((self.hi >> 8) as u16)
        } else {
            None
        }
    }

    /// TT, when it is one iommud writes.
    pub const fn translation_type(self) -> Option<TranslationType> {
        match (self.lo >> TT_SHIFT) & 3 {
            0 => Some(TranslationType::Translated),
            2 => Some(TranslationType::PassThrough),
            _ => None,
        }
    }

    /// SLPTPTR.
    pub const fn root(self) -> u64 {
        self.lo & ADDR_MASK
    }

    /// AW.
    pub const fn agaw(self) -> u8 {
        (self.hi & 7) as u8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_hand_computed_values() {
        let r = RootEntry::present(0x12_3000);
        assert_eq!((r.lo, r.hi), (0x12_3001, 0));
        // DID 5, 3 levels (AW 1), root 0xABC000: lo = root | P, hi = 5 << 8 | 1.
        let c = ContextEntry::translated(5, 0xABC_000, 1);
        assert_eq!((c.lo, c.hi), (0xABC_001, 0x501));
        assert_eq!(c.translation_type(), Some(TranslationType::Translated));
        // Pass-through: TT = 10 in bits 3:2, no table, AW still set.
        let p = ContextEntry::pass_through(1, 2);
        assert_eq!((p.lo, p.hi), (0b1001, 0x102));
        assert_eq!(p.translation_type(), Some(TranslationType::PassThrough));
        assert_eq!(ContextEntry::BLOCKED.domain(), None);
        assert_eq!(p.domain(), Some(1));
    }
}
