//! Quirk flags, a small hand-written bit set.

/// What to avoid for one PCI function.
///
/// The flags are literal: `NO_MSI` forbids plain MSI only and `NO_MSIX` MSI-X
/// only. (Linux's `no_msi` forbids both; entries taken from Linux set both.)
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QuirkFlags(u32);

impl QuirkFlags {
    /// Do not use plain MSI.
    pub const NO_MSI: Self = Self(1 << 0);
    /// Do not use MSI-X.
    pub const NO_MSIX: Self = Self(1 << 1);
    /// Use the legacy INTx pin even if MSI/MSI-X look usable.
    pub const FORCE_LEGACY_IRQ: Self = Self(1 << 2);
    /// Do not put the function behind the IOMMU (identity/passthrough DMA).
    pub const NO_IOMMU: Self = Self(1 << 3);
    /// The function can only address the low 4 GiB for DMA.
    pub const DMA_32BIT_ONLY: Self = Self(1 << 4);

    /// Every flag with its name, in bit order.
    pub const NAMED: [(&'static str, Self); 5] = [
        ("NO_MSI", Self::NO_MSI),
        ("NO_MSIX", Self::NO_MSIX),
        ("FORCE_LEGACY_IRQ", Self::FORCE_LEGACY_IRQ),
        ("NO_IOMMU", Self::NO_IOMMU),
        ("DMA_32BIT_ONLY", Self::DMA_32BIT_ONLY),
    ];

    const ALL_BITS: u32 = 0b1_1111;

    /// No flags.
    pub const fn empty() -> Self {
        Self(0)
    }

    /// The raw bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Flags from raw bits; `None` if an unknown bit is set.
    pub const fn from_bits(bits: u32) -> Option<Self> {
        if bits & !Self::ALL_BITS != 0 {
            None
        } else {
            Some(Self(bits))
        }
    }

    /// The flag called `name` (as in [`QuirkFlags::NAMED`]).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::NAMED
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, f)| *f)
    }

    /// Whether every flag of `other` is set.
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Whether any flag of `other` is set.
    pub const fn intersects(self, other: Self) -> bool {
        self.0 & other.0 != 0
    }

    /// Whether no flag is set.
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Both sets of flags.
    pub const fn union(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    /// Flags set in both.
    pub const fn intersection(self, other: Self) -> Self {
        Self(self.0 & other.0)
    }

    /// Names of the set flags, in bit order.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMED
            .into_iter()
            .filter(move |(_, f)| self.contains(*f))
            .map(|(n, _)| n)
    }
}

impl core::ops::BitOr for QuirkFlags {
    type Output = Self;
    fn bitor(self, rhs: Self) -> Self {
        self.union(rhs)
    }
}

impl core::ops::BitAnd for QuirkFlags {
    type Output = Self;
    fn bitand(self, rhs: Self) -> Self {
        self.intersection(rhs)
    }
}

impl core::ops::BitOrAssign for QuirkFlags {
    fn bitor_assign(&mut self, rhs: Self) {
        *self = self.union(rhs);
    }
}

impl core::fmt::Debug for QuirkFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "QuirkFlags({self})")
    }
}

impl core::fmt::Display for QuirkFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.is_empty() {
            return f.write_str("none");
        }
        for (i, name) in self.names().enumerate() {
            if i > 0 {
                f.write_str(" | ")?;
            }
            f.write_str(name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations_and_names() {
        let f = QuirkFlags::NO_MSI | QuirkFlags::DMA_32BIT_ONLY;
        assert!(f.contains(QuirkFlags::NO_MSI));
        assert!(!f.contains(QuirkFlags::NO_MSI | QuirkFlags::NO_MSIX));
        assert!(f.intersects(QuirkFlags::NO_MSI | QuirkFlags::NO_MSIX));
        assert_eq!(f.to_string(), "NO_MSI | DMA_32BIT_ONLY");
        assert_eq!(QuirkFlags::empty().to_string(), "none");
        assert_eq!(
            QuirkFlags::from_name("FORCE_LEGACY_IRQ"),
            Some(QuirkFlags::FORCE_LEGACY_IRQ)
        );
        assert_eq!(QuirkFlags::from_name("no_msi"), None);
        assert_eq!(QuirkFlags::from_bits(0b1_0001), Some(f));
        assert_eq!(QuirkFlags::from_bits(1 << 5), None);
        let mut g = QuirkFlags::empty();
        g |= QuirkFlags::NO_IOMMU;
        assert_eq!(g.bits(), 1 << 3);
        assert_eq!(
            f & (QuirkFlags::NO_MSI | QuirkFlags::NO_IOMMU),
            QuirkFlags::NO_MSI
        );
    }
}
