//! The DSMIL controller's BAR0 register block: the contract between the driver
//! ([`super::DsmilController`]) and the device (real, or the simulated one in
//! `redox-host`).
//!
//! All registers are 32 bits, little-endian, at dword-aligned offsets of BAR0.
//!
//! | offset | name | access | meaning |
//! |---|---|---|---|
//! | `0x00` | [`ID`] | RO | [`ID_MAGIC`] (`"DSMC"`), so a driver knows it mapped the right BAR |
//! | `0x04` | [`VERSION`] | RO | interface version, [`INTERFACE_VERSION`] |
//! | `0x08` | [`CTRL`] | RW | bit 0 [`CTRL_ENABLE`]: process doorbells; bit 1 [`CTRL_IRQ_ENABLE`]: signal completions |
//! | `0x0C` | [`STATUS`] | RO | bit 0 [`STATUS_BUSY`], bit 1 [`STATUS_DONE`], bit 2 [`STATUS_ERROR`]; bits 15:8 the [`ErrorCode`] of the last command |
//! | `0x10` | [`DMA_ADDR_LO`] | RW | bus address (IOVA) of the driver's buffer, bits 31:0 |
//! | `0x14` | [`DMA_ADDR_HI`] | RW | bits 63:32 |
//! | `0x18` | [`DMA_LEN`] | RW | length of that buffer in bytes; the device never writes past it |
//! | `0x1C` | [`ARG`] | RW | command argument (the token for [`Command::ReadDeviceData`]) |
//! | `0x20` | [`COMMAND`] | RW | the [`Command`] to run |
//! | `0x24` | [`DOORBELL`] | RW | written last, with a sequence number ≠ [`COMPLETED`]: the device starts the command |
//! | `0x28` | [`COMPLETED`] | RO | sequence number of the last finished command |
//! | `0x2C` | [`XFER_LEN`] | RO | bytes the last command DMA'd into the buffer |
//! | `0x30` | [`IRQ_STATUS`] | RW | bit 0 [`IRQ_COMPLETION`]: set by the device with each completion interrupt; software writes 0 to clear |
//! | `0x34` | [`DEVICE_COUNT_REG`] | RO | devices in the table ([`crate::wire::DEVICE_COUNT`], 108) |
//! | `0x38` | [`DATA_LEN_REG`] | RO | bytes of one device's data block ([`DEVICE_DATA_LEN`]) |
//! | `0x3C` | [`FAULT_ADDR_LO`] | RO | bus address at which the last DMA failed, bits 31:0 |
//! | `0x40` | [`FAULT_ADDR_HI`] | RO | bits 63:32 |
//!
//! A command: program `DMA_ADDR_*`, `DMA_LEN`, `ARG`, `COMMAND`, then write the
//! next sequence number to `DOORBELL`. The device sets `BUSY`, DMAs the result
//! into the buffer (through the IOMMU when one is in front of it), writes
//! `XFER_LEN` and `STATUS`, stores the sequence number in `COMPLETED`, sets
//! `IRQ_COMPLETION` and signals interrupt 0 — MSI-X entry 0, MSI message 0 or
//! INTx, whichever the driver enabled. The sequence number lets the driver tell
//! its completion from a stale interrupt (a recycled vector, a shared INTx line).
//!
//! `IRQ_STATUS` is cleared by writing 0 rather than write-1-to-clear: the register
//! block is plain memory to the CPU, and with one command in flight at a time the
//! driver's clear cannot race a new completion.

use crate::wire::DeviceInfo;

/// `ID`: reads [`ID_MAGIC`].
pub const ID: usize = 0x00;
/// `VERSION`: reads [`INTERFACE_VERSION`].
pub const VERSION: usize = 0x04;
/// `CTRL`: enable bits.
pub const CTRL: usize = 0x08;
/// `STATUS`: state and error code of the last command.
pub const STATUS: usize = 0x0C;
/// `DMA_ADDR_LO`: buffer bus address, low half.
pub const DMA_ADDR_LO: usize = 0x10;
/// `DMA_ADDR_HI`: buffer bus address, high half.
pub const DMA_ADDR_HI: usize = 0x14;
/// `DMA_LEN`: buffer length in bytes.
pub const DMA_LEN: usize = 0x18;
/// `ARG`: command argument.
pub const ARG: usize = 0x1C;
/// `COMMAND`: the command code.
pub const COMMAND: usize = 0x20;
/// `DOORBELL`: sequence number that starts the programmed command.
pub const DOORBELL: usize = 0x24;
/// `COMPLETED`: sequence number of the last finished command.
pub const COMPLETED: usize = 0x28;
/// `XFER_LEN`: bytes DMA'd by the last command.
pub const XFER_LEN: usize = 0x2C;
/// `IRQ_STATUS`: interrupt causes.
pub const IRQ_STATUS: usize = 0x30;
/// `DEVICE_COUNT`: entries in the device table.
pub const DEVICE_COUNT_REG: usize = 0x34;
/// `DATA_LEN`: bytes of one device's data block.
pub const DATA_LEN_REG: usize = 0x38;
/// `FAULT_ADDR_LO`: where the last DMA failed, low half.
pub const FAULT_ADDR_LO: usize = 0x3C;
/// `FAULT_ADDR_HI`: where the last DMA failed, high half.
pub const FAULT_ADDR_HI: usize = 0x40;
/// Bytes of register space the driver touches (BAR0 is larger).
pub const REGISTER_BLOCK_LEN: usize = 0x44;

/// `"DSMC"` in little-endian byte order.
pub const ID_MAGIC: u32 = u32::from_le_bytes(*b"DSMC");
/// The interface version this driver speaks (major 1, minor 0).
pub const INTERFACE_VERSION: u32 = 0x0001_0000;

/// `CTRL` bit 0: the device processes doorbells.
pub const CTRL_ENABLE: u32 = 1 << 0;
/// `CTRL` bit 1: the device signals an interrupt at each completion.
pub const CTRL_IRQ_ENABLE: u32 = 1 << 1;

/// `STATUS` bit 0: a command is running.
pub const STATUS_BUSY: u32 = 1 << 0;
/// `STATUS` bit 1: the last command finished.
pub const STATUS_DONE: u32 = 1 << 1;
/// `STATUS` bit 2: the last command failed; bits 15:8 say why.
pub const STATUS_ERROR: u32 = 1 << 2;
/// Shift of the error code in `STATUS`.
pub const STATUS_CODE_SHIFT: u32 = 8;

/// `IRQ_STATUS` bit 0: a command completed.
pub const IRQ_COMPLETION: u32 = 1 << 0;

/// Bytes of one device's data block (the device's register snapshot). 700
/// bytes are four 224-byte read chunks, the last one short.
pub const DEVICE_DATA_LEN: usize = 700;

/// Bytes of the whole device table: 108 records of 40 bytes.
pub const DEVICE_TABLE_LEN: usize = crate::wire::DEVICE_COUNT * DeviceInfo::SIZE;

/// What `COMMAND` asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Command {
    /// DMA the device table: [`crate::wire::DEVICE_COUNT`] 40-byte
    /// [`DeviceInfo`] records in ascending token order.
    ReadDeviceTable = 1,
    /// DMA the [`DEVICE_DATA_LEN`]-byte data block of the token in `ARG`.
    ReadDeviceData = 2,
}

impl Command {
    /// Decodes a `COMMAND` value.
    pub fn from_raw(raw: u32) -> Option<Command> {
        match raw {
            1 => Some(Command::ReadDeviceTable),
            2 => Some(Command::ReadDeviceData),
            _ => None,
        }
    }
}

/// Why a command failed (`STATUS` bits 15:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ErrorCode {
    /// `COMMAND` held no known command.
    BadCommand = 1,
    /// `ARG` is not a DSMIL token.
    BadToken = 2,
    /// `DMA_LEN` is smaller than the result.
    BufferTooSmall = 3,
    /// The DMA was refused (IOMMU fault, bus mastering off, address width);
    /// `FAULT_ADDR_*` holds the address.
    DmaFault = 4,
    /// The device behind the token does not answer.
    DeviceNotResponding = 5,
}

impl ErrorCode {
    /// Decodes the code field of `STATUS`.
    pub fn from_status(status: u32) -> Option<ErrorCode> {
        match (status >> STATUS_CODE_SHIFT) & 0xFF {
            1 => Some(ErrorCode::BadCommand),
            2 => Some(ErrorCode::BadToken),
            3 => Some(ErrorCode::BufferTooSmall),
            4 => Some(ErrorCode::DmaFault),
            5 => Some(ErrorCode::DeviceNotResponding),
            _ => None,
        }
    }

    /// The `STATUS` value of a command that failed with this code.
    pub fn status(self) -> u32 {
        STATUS_DONE | STATUS_ERROR | ((self as u32) << STATUS_CODE_SHIFT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_status() {
        for code in [
            ErrorCode::BadCommand,
            ErrorCode::BadToken,
            ErrorCode::BufferTooSmall,
            ErrorCode::DmaFault,
            ErrorCode::DeviceNotResponding,
        ] {
            let s = code.status();
            assert!(s & STATUS_ERROR != 0 && s & STATUS_DONE != 0);
            assert_eq!(ErrorCode::from_status(s), Some(code));
        }
        assert_eq!(ErrorCode::from_status(STATUS_DONE), None);
        assert_eq!(Command::from_raw(2), Some(Command::ReadDeviceData));
        assert_eq!(Command::from_raw(0), None);
        assert_eq!(DEVICE_TABLE_LEN, 4320);
        assert_eq!(ID_MAGIC.to_le_bytes(), *b"DSMC");
    }
}
