//! How an SMI can fail, and the errno each failure becomes.

use core::fmt;
use std::time::Duration;

use syscall::error::{EACCES, EINVAL, EIO, ENXIO, ETIMEDOUT, Error};

/// An SMI failure, detailed enough for the log and `stats`; converts into
/// the errno a scheme client sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmiError {
    /// The token is quarantined; nothing was sent to firmware (`EACCES`).
    Quarantined,
    /// The status port reported an error (bit 7) (`EIO`).
    Firmware {
        /// The status byte.
        status: u8,
    },
    /// The status port read 0x00 or 0xFF for the hang-detection window:
    /// nothing is answering (`EIO`).
    InvalidStatus {
        /// The status byte.
        status: u8,
    },
    /// The status stayed at the same busy value for the hang-detection
    /// window (`ETIMEDOUT`).
    Hung {
        /// The status byte.
        status: u8,
    },
    /// The operation's time budget ran out (`ETIMEDOUT`).
    BudgetExceeded {
        /// Time spent when it gave up.
        elapsed: Duration,
    },
    /// The calling interface completed with a failure code in `output[0]`
    /// (−1 "completed with error" is `EIO`, −2 "not supported" `ENXIO`, any
    /// other code `EINVAL`; Linux `dell-smbios-base.c`).
    CallFailed {
        /// The `cbRES1` value.
        result: i32,
    },
    /// The calling interface returned with `output[0]` as it was written:
    /// firmware did not run the command (`EIO`).
    NoAnswer,
    /// The token is not in the DMI token table, so the calling interface has
    /// no location for it (`ENXIO`).
    NotInTokenTable,
    /// A calling-interface write can only set a token to its table value
    /// (`EINVAL`).
    NotTheTokenValue {
        /// The token's value in the table.
        value: u16,
    },
    /// The calling-interface buffer is unusable: shorter than 36 bytes or
    /// not entirely below 4 GiB (`EINVAL`).
    BadBuffer,
}

impl SmiError {
    /// The errno a client sees.
    pub const fn errno(&self) -> i32 {
        match self {
            SmiError::Quarantined => EACCES,
            SmiError::Firmware { .. } | SmiError::InvalidStatus { .. } => EIO,
            SmiError::Hung { .. } | SmiError::BudgetExceeded { .. } => ETIMEDOUT,
            SmiError::CallFailed { result: -1 } | SmiError::NoAnswer => EIO,
            SmiError::CallFailed { result: -2 } | SmiError::NotInTokenTable => ENXIO,
            SmiError::CallFailed { .. }
            | SmiError::NotTheTokenValue { .. }
            | SmiError::BadBuffer => EINVAL,
        }
    }

    /// Whether the request got to firmware at all: a refusal (quarantine), a
    /// token or value the DMI table does not allow, or an unusable buffer stop
    /// it before any SMI, and say nothing about the device.
    pub const fn reached_firmware(&self) -> bool {
        !matches!(
            self,
            SmiError::Quarantined
                | SmiError::NotInTokenTable
                | SmiError::NotTheTokenValue { .. }
                | SmiError::BadBuffer
        )
    }

    /// Whether raising the SMI again may help: a hung or silent attempt may
    /// be transient; an answer from firmware (error, failure code) is final,
    /// and so is a refusal or a spent budget.
    pub const fn is_retryable(&self) -> bool {
        matches!(self, SmiError::Hung { .. } | SmiError::InvalidStatus { .. })
    }
}

impl From<SmiError> for Error {
    fn from(error: SmiError) -> Error {
        Error::new(error.errno())
    }
}

impl fmt::Display for SmiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SmiError::Quarantined => write!(f, "token is quarantined"),
            SmiError::Firmware { status } => write!(f, "firmware error, status {status:#04x}"),
            SmiError::InvalidStatus { status } => {
                write!(f, "no firmware answer, status stuck at {status:#04x}")
            }
            SmiError::Hung { status } => write!(f, "SMI hung, status stuck at {status:#04x}"),
            SmiError::BudgetExceeded { elapsed } => {
                write!(f, "SMI budget exceeded after {} µs", elapsed.as_micros())
            }
            SmiError::CallFailed { result } => write!(f, "calling interface returned {result}"),
            SmiError::NoAnswer => write!(f, "calling interface: firmware did not answer"),
            SmiError::NotInTokenTable => write!(f, "token not in the DMI token table"),
            SmiError::NotTheTokenValue { value } => {
                write!(
                    f,
                    "the calling interface only sets the token's table value {value:#x}"
                )
            }
            SmiError::BadBuffer => write!(f, "calling-interface buffer not usable"),
        }
    }
}
