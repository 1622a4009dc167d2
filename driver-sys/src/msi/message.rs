//! x86 MSI message composition and validation.
//!
//! Layout (Intel SDM vol. 3, "Message Signalled Interrupts"):
//!
//! Address (low dword): bits 31:20 = 0xFEE, 19:12 destination APIC ID, 11:5
//! extended destination ID (APIC ID bits 14:8 on platforms that support it),
//! 4 = 0 (1 would be the interrupt-remapping format), 3 redirection hint, 2
//! destination mode (0 physical, 1 logical), 1:0 ignored. The high dword is 0
//! in this format; it only carries bits with x2APIC interrupt remapping.
//!
//! Data: bits 7:0 vector, 10:8 delivery mode, 13:11 reserved, 14 level (1 =
//! assert), 15 trigger mode (0 edge, 1 level), 31:16 reserved.

/// The fixed top of every x86 MSI address.
pub const MSI_ADDRESS_BASE: u32 = 0xFEE0_0000;
/// Mask of the 0xFEE prefix.
pub const MSI_ADDRESS_BASE_MASK: u32 = 0xFFF0_0000;
/// Address bit 4: set in the interrupt-remapping (remappable) format.
pub const MSI_ADDRESS_REMAPPABLE: u32 = 1 << 4;
/// Address bit 3: redirection hint.
pub const MSI_ADDRESS_REDIRECTION_HINT: u32 = 1 << 3;
/// Address bit 2: logical destination mode.
pub const MSI_ADDRESS_DEST_MODE_LOGICAL: u32 = 1 << 2;
/// Data bit 14: level assert.
pub const MSI_DATA_LEVEL_ASSERT: u32 = 1 << 14;
/// Data bit 15: level-triggered.
pub const MSI_DATA_TRIGGER_LEVEL: u32 = 1 << 15;
/// Highest APIC ID the 8-bit destination plus the 7-bit extended destination
/// ID can address. Beyond it interrupt remapping is needed.
pub const MAX_MSI_APIC_ID: u32 = 0x7FFF;

/// How the interrupt is delivered (data bits 10:8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryMode {
    /// Deliver `vector` to the destination.
    Fixed = 0,
    /// Deliver `vector` to the lowest-priority processor of the destination.
    LowestPriority = 1,
    /// System management interrupt; vector must be 0.
    Smi = 2,
    /// Non-maskable interrupt; vector ignored (must be 0 here).
    Nmi = 4,
    /// INIT; vector must be 0.
    Init = 5,
    /// External interrupt controller supplies the vector (must be 0 here).
    ExtInt = 7,
}

impl DeliveryMode {
    fn from_bits(bits: u32) -> Option<Self> {
        Some(match bits {
            0 => Self::Fixed,
            1 => Self::LowestPriority,
            2 => Self::Smi,
            4 => Self::Nmi,
            5 => Self::Init,
            7 => Self::ExtInt,
            _ => return None,
        })
    }

    /// Whether the data's vector field selects the IDT entry.
    pub fn is_vectored(self) -> bool {
        matches!(self, Self::Fixed | Self::LowestPriority)
    }
}

/// Edge or level triggered (data bit 15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerMode {
    /// Edge (what PCI MSI always is in practice).
    Edge,
    /// Level.
    Level,
}

/// Physical or logical destination (address bit 2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DestinationMode {
    /// Destination is an APIC ID.
    Physical,
    /// Destination is a logical APIC ID / cluster.
    Logical,
}

/// Why a message cannot be composed or decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsiMessageError {
    /// Vectors 0..=15 are reserved for exceptions and cannot be delivered.
    ReservedVector(u8),
    /// Non-vectored delivery modes (SMI, NMI, INIT, ExtINT) take vector 0.
    VectorWithNonVectoredMode {
        /// The delivery mode.
        mode: DeliveryMode,
        /// The vector given.
        vector: u8,
    },
    /// The APIC ID needs more than 15 bits (interrupt remapping).
    ApicIdTooLarge(u32),
    /// Address bits 31:20 are not 0xFEE.
    NotAnMsiAddress(u64),
    /// The remappable format (address bit 4) is not supported here.
    RemappableFormat,
    /// The high address dword is not zero.
    HighAddressSet(u64),
    /// Delivery mode 3 or 6.
    ReservedDeliveryMode(u8),
    /// Data bits 13:11 or 31:16 set.
    ReservedDataBits(u32),
}

impl core::fmt::Display for MsiMessageError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ReservedVector(v) => write!(f, "vector {v:#x} is reserved for exceptions"),
            Self::VectorWithNonVectoredMode { mode, vector } => {
                write!(f, "{mode:?} delivery takes vector 0, not {vector:#x}")
            }
            Self::ApicIdTooLarge(id) => write!(f, "APIC ID {id:#x} needs interrupt remapping"),
            Self::NotAnMsiAddress(a) => write!(f, "{a:#x} is not an MSI address"),
            Self::RemappableFormat => write!(f, "remappable MSI format not supported"),
            Self::HighAddressSet(a) => write!(f, "MSI address {a:#x} has a high dword"),
            Self::ReservedDeliveryMode(m) => write!(f, "reserved delivery mode {m}"),
            Self::ReservedDataBits(d) => write!(f, "reserved bits set in MSI data {d:#x}"),
        }
    }
}

impl std::error::Error for MsiMessageError {}

/// Where and how an interrupt is sent: the fields of an x86 MSI message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct X86MsiTarget {
    /// Destination APIC ID (up to [`MAX_MSI_APIC_ID`]).
    pub apic_id: u32,
    /// IDT vector.
    pub vector: u8,
    /// Delivery mode.
    pub delivery: DeliveryMode,
    /// Trigger mode.
    pub trigger: TriggerMode,
    /// Level bit (1 = assert); only meaningful for level triggering.
    pub level_assert: bool,
    /// Destination mode.
    pub destination_mode: DestinationMode,
    /// Redirection hint: with logical mode, allow lowest-priority redirection.
    pub redirection_hint: bool,
}

impl X86MsiTarget {
    /// The common case: fixed, edge-triggered, physical destination.
    pub fn fixed(apic_id: u32, vector: u8) -> Self {
        Self {
            apic_id,
            vector,
            delivery: DeliveryMode::Fixed,
            trigger: TriggerMode::Edge,
            level_assert: false,
            destination_mode: DestinationMode::Physical,
            redirection_hint: false,
        }
    }

    /// Encodes the message, validating the fields.
    pub fn compose(&self) -> Result<MsiMessage, MsiMessageError> {
        if self.delivery.is_vectored() {
            if self.vector < 0x10 {
                return Err(MsiMessageError::ReservedVector(self.vector));
            }
        } else if self.vector != 0 {
            return Err(MsiMessageError::VectorWithNonVectoredMode {
                mode: self.delivery,
                vector: self.vector,
            });
        }
        if self.apic_id > MAX_MSI_APIC_ID {
            return Err(MsiMessageError::ApicIdTooLarge(self.apic_id));
        }
        let mut address =
            MSI_ADDRESS_BASE | ((self.apic_id & 0xFF) << 12) | (((self.apic_id >> 8) & 0x7F) << 5);
        if self.redirection_hint {
            address |= MSI_ADDRESS_REDIRECTION_HINT;
        }
        if self.destination_mode == DestinationMode::Logical {
            address |= MSI_ADDRESS_DEST_MODE_LOGICAL;
        }
        let mut data = u32::from(self.vector) | ((self.delivery as u32) << 8);
        if self.level_assert {
            data |= MSI_DATA_LEVEL_ASSERT;
        }
        if self.trigger == TriggerMode::Level {
            data |= MSI_DATA_TRIGGER_LEVEL;
        }
        Ok(MsiMessage {
            address: u64::from(address),
            data,
        })
    }
}

/// An encoded MSI message: what is written to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct MsiMessage {
    /// Message address (low dword in bits 31:0, high dword in 63:32).
    pub address: u64,
    /// Message data. MSI only has the low 16 bits on the wire.
    pub data: u32,
}

impl MsiMessage {
    /// Low address dword.
    pub fn address_lo(&self) -> u32 {
        self.address as u32
    }

    /// High address dword.
    pub fn address_hi(&self) -> u32 {
        (self.address >> 32) as u32
    }

    /// The vector field of the data.
    pub fn vector(&self) -> u8 {
        self.data as u8
    }

    /// Validates the message against the x86 format and decodes its fields —
    /// what a kernel or IOMMU checks before honouring a driver's message.
    pub fn decode(&self) -> Result<X86MsiTarget, MsiMessageError> {
        if self.address_hi() != 0 {
            return Err(MsiMessageError::HighAddressSet(self.address));
        }
        let lo = self.address_lo();
        if lo & MSI_ADDRESS_BASE_MASK != MSI_ADDRESS_BASE {
            return Err(MsiMessageError::NotAnMsiAddress(self.address));
        }
        if lo & MSI_ADDRESS_REMAPPABLE != 0 {
            return Err(MsiMessageError::RemappableFormat);
        }
        if self.data & !(0xFF | (0x7 << 8) | MSI_DATA_LEVEL_ASSERT | MSI_DATA_TRIGGER_LEVEL) != 0 {
            return Err(MsiMessageError::ReservedDataBits(self.data));
        }
        let mode_bits = (self.data >> 8) & 0x7;
        let delivery = DeliveryMode::from_bits(mode_bits)
            .ok_or(MsiMessageError::ReservedDeliveryMode(mode_bits as u8))?;
        let target = X86MsiTarget {
            apic_id: ((lo >> 12) & 0xFF) | (((lo >> 5) & 0x7F) << 8),
            vector: self.vector(),
            delivery,
            trigger: if self.data & MSI_DATA_TRIGGER_LEVEL != 0 {
                TriggerMode::Level
            } else {
                TriggerMode::Edge
            },
            level_assert: self.data & MSI_DATA_LEVEL_ASSERT != 0,
            destination_mode: if lo & MSI_ADDRESS_DEST_MODE_LOGICAL != 0 {
                DestinationMode::Logical
            } else {
                DestinationMode::Physical
            },
            redirection_hint: lo & MSI_ADDRESS_REDIRECTION_HINT != 0,
        };
        // Re-run the field rules (reserved vectors, vector with NMI, ...).
        target.compose()?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Expected values are worked out by hand from the SDM bit layout above.

    #[test]
    fn fixed_edge_physical_to_bsp() {
        // 0xFEE | dest 0 | vector 0x41 fixed edge.
        let m = X86MsiTarget::fixed(0, 0x41).compose().unwrap();
        assert_eq!(m.address, 0xFEE0_0000);
        assert_eq!(m.data, 0x0000_0041);
    }

    #[test]
    fn destination_id_lands_in_19_12() {
        // APIC 0x2B << 12 = 0x2B000.
        let m = X86MsiTarget::fixed(0x2B, 0x20).compose().unwrap();
        assert_eq!(m.address, 0xFEE2_B000);
        assert_eq!(m.data, 0x20);
        let m = X86MsiTarget::fixed(0xFF, 0xEF).compose().unwrap();
        assert_eq!(m.address, 0xFEEF_F000);
    }

    #[test]
    fn lowest_priority_logical_with_redirection_hint() {
        // address: 0xFEE00000 | 3<<12 (0x3000) | RH 0x8 | DM 0x4 = 0xFEE0300C
        // data: vector 0x30 | mode 1<<8 (0x100) = 0x0130
        let t = X86MsiTarget {
            apic_id: 3,
            vector: 0x30,
            delivery: DeliveryMode::LowestPriority,
            trigger: TriggerMode::Edge,
            level_assert: false,
            destination_mode: DestinationMode::Logical,
            redirection_hint: true,
        };
        let m = t.compose().unwrap();
        assert_eq!(m.address, 0xFEE0_300C);
        assert_eq!(m.data, 0x0000_0130);
        assert_eq!(m.decode().unwrap(), t);
    }

    #[test]
    fn level_triggered_asserted() {
        // data: 0x8000 (trigger) | 0x4000 (assert) | 0xEF = 0xC0EF
        let t = X86MsiTarget {
            trigger: TriggerMode::Level,
            level_assert: true,
            ..X86MsiTarget::fixed(1, 0xEF)
        };
        let m = t.compose().unwrap();
        assert_eq!(m.address, 0xFEE0_1000);
        assert_eq!(m.data, 0x0000_C0EF);
        assert_eq!(m.decode().unwrap(), t);
    }

    #[test]
    fn non_vectored_modes() {
        // NMI: mode 4 << 8 = 0x400; SMI 0x200; INIT 0x500; ExtINT 0x700.
        for (mode, data) in [
            (DeliveryMode::Nmi, 0x400),
            (DeliveryMode::Smi, 0x200),
            (DeliveryMode::Init, 0x500),
            (DeliveryMode::ExtInt, 0x700),
        ] {
            let t = X86MsiTarget {
                delivery: mode,
                ..X86MsiTarget::fixed(0, 0)
            };
            assert_eq!(t.compose().unwrap().data, data);
            let bad = X86MsiTarget { vector: 0x40, ..t };
            assert_eq!(
                bad.compose(),
                Err(MsiMessageError::VectorWithNonVectoredMode { mode, vector: 0x40 })
            );
        }
    }

    #[test]
    fn extended_destination_id() {
        // APIC 0x1A5: low byte 0xA5 << 12 = 0xA5000; high bits 0x1 << 5 = 0x20.
        let m = X86MsiTarget::fixed(0x1A5, 0x22).compose().unwrap();
        assert_eq!(m.address, 0xFEEA_5020);
        assert_eq!(m.decode().unwrap().apic_id, 0x1A5);
        // 0x7FFF is the largest: 0xFF << 12 | 0x7F << 5 = 0xFF000 | 0xFE0.
        let m = X86MsiTarget::fixed(0x7FFF, 0x22).compose().unwrap();
        assert_eq!(m.address, 0xFEEF_FFE0);
        assert_eq!(
            X86MsiTarget::fixed(0x8000, 0x22).compose(),
            Err(MsiMessageError::ApicIdTooLarge(0x8000))
        );
    }

    #[test]
    fn reserved_vectors_rejected() {
        assert_eq!(
            X86MsiTarget::fixed(0, 0x0F).compose(),
            Err(MsiMessageError::ReservedVector(0x0F))
        );
        assert!(X86MsiTarget::fixed(0, 0x10).compose().is_ok());
    }

    #[test]
    fn decode_rejects_foreign_messages() {
        let ok = MsiMessage {
            address: 0xFEE0_1000,
            data: 0x41,
        };
        assert!(ok.decode().is_ok());
        assert_eq!(
            MsiMessage {
                address: 0xFED0_0000,
                data: 0x41
            }
            .decode(),
            Err(MsiMessageError::NotAnMsiAddress(0xFED0_0000))
        );
        assert_eq!(
            MsiMessage {
                address: 0x1_FEE0_0000,
                data: 0x41
            }
            .decode(),
            Err(MsiMessageError::HighAddressSet(0x1_FEE0_0000))
        );
        assert_eq!(
            MsiMessage {
                address: 0xFEE0_0010,
                data: 0x41
            }
            .decode(),
            Err(MsiMessageError::RemappableFormat)
        );
        assert_eq!(
            MsiMessage {
                address: 0xFEE0_0000,
                data: 0x341
            }
            .decode(),
            Err(MsiMessageError::ReservedDeliveryMode(3))
        );
        assert_eq!(
            MsiMessage {
                address: 0xFEE0_0000,
                data: 0x1_0041
            }
            .decode(),
            Err(MsiMessageError::ReservedDataBits(0x1_0041))
        );
        assert_eq!(
            MsiMessage {
                address: 0xFEE0_0000,
                data: 0x0005
            }
            .decode(),
            Err(MsiMessageError::ReservedVector(5))
        );
    }
}
