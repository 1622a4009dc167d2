//! Vector numbers, and how the Redox `irq` scheme names them.
//!
//! On x86 the IDT has 256 vectors: 0x00..=0x1F are CPU exceptions, 0x20..=0xEF
//! are for devices, 0xF0..=0xFF are the kernel's (IPIs, APIC error, spurious).
//!
//! Redox's `irq` scheme does not use vector numbers in its paths. It names an
//! *IRQ number*, which is the vector minus 32: `/scheme/irq/cpu-XX/NN` (XX =
//! the CPU number in two lowercase hex digits, NN = the IRQ number in decimal)
//! is vector NN + 32 on that CPU. IRQ numbers 0..=15 on the boot CPU are the
//! legacy ISA/IOAPIC lines (vectors 0x20..=0x2F), which a kernel normally
//! reserves — see [`crate::vector::VectorMatrix::with_reserved`].

/// The `irq` scheme's IRQ number N is vector N + 32.
pub const IRQ_VECTOR_OFFSET: u8 = 32;
/// First vector a device may be given.
pub const FIRST_DEVICE_VECTOR: u8 = 0x20;
/// Last vector a device may be given.
pub const LAST_DEVICE_VECTOR: u8 = 0xEF;
/// First vector the kernel keeps for itself.
pub const FIRST_SYSTEM_VECTOR: u8 = 0xF0;

/// An x86 interrupt vector (an IDT index).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Vector(pub u8);

impl Vector {
    /// The raw vector number.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// The vector the `irq` scheme's IRQ number `irq` stands for (`irq + 32`);
    /// `None` past vector 255.
    pub const fn from_irq_number(irq: u8) -> Option<Self> {
        match irq.checked_add(IRQ_VECTOR_OFFSET) {
            Some(v) => Some(Self(v)),
            None => None,
        }
    }

    /// The `irq` scheme's IRQ number for this vector (`vector − 32`); `None`
    /// for exception vectors, which the scheme cannot name.
    pub const fn irq_number(self) -> Option<u8> {
        self.0.checked_sub(IRQ_VECTOR_OFFSET)
    }

    /// Whether the vector is in the device range 0x20..=0xEF.
    pub const fn is_device_vector(self) -> bool {
        self.0 >= FIRST_DEVICE_VECTOR && self.0 <= LAST_DEVICE_VECTOR
    }
}

impl core::fmt::Display for Vector {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "{:#04x}", self.0)
    }
}

/// The `irq` scheme path that reserves `vector` on `cpu` when opened with
/// `O_CREAT`: `/scheme/irq/cpu-XX/NN`. `None` for exception vectors.
pub fn irq_scheme_path(cpu: u32, vector: Vector) -> Option<String> {
    let irq = vector.irq_number()?;
    Some(format!("/scheme/irq/cpu-{cpu:02x}/{irq}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn irq_numbers_are_vectors_minus_32() {
        assert_eq!(Vector::from_irq_number(0), Some(Vector(0x20)));
        assert_eq!(Vector::from_irq_number(17), Some(Vector(49)));
        assert_eq!(Vector::from_irq_number(223), Some(Vector(255)));
        assert_eq!(Vector::from_irq_number(224), None);
        assert_eq!(Vector(0x41).irq_number(), Some(0x21));
        assert_eq!(Vector(0x1F).irq_number(), None);
        for irq in 0..=223u8 {
            assert_eq!(
                Vector::from_irq_number(irq).and_then(Vector::irq_number),
                Some(irq)
            );
        }
    }

    #[test]
    fn scheme_paths() {
        assert_eq!(
            irq_scheme_path(0, Vector(0x30)).as_deref(),
            Some("/scheme/irq/cpu-00/16")
        );
        assert_eq!(
            irq_scheme_path(0x1b, Vector(0xEF)).as_deref(),
            Some("/scheme/irq/cpu-1b/207")
        );
        assert_eq!(irq_scheme_path(0, Vector(0x10)), None);
    }

    #[test]
    fn device_range() {
        assert!(!Vector(0x1F).is_device_vector());
        assert!(Vector(0x20).is_device_vector());
        assert!(Vector(0xEF).is_device_vector());
        assert!(!Vector(0xF0).is_device_vector());
    }
}
