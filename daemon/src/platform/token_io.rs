//! Reading and writing DSMIL tokens through firmware, whichever SMI path
//! the platform has.

use super::smi_error::SmiError;
use crate::wire::Token;

/// Token access through firmware.
///
/// Implemented by [`LegacySmi`](super::LegacySmi) and
/// [`CallingInterface`](super::CallingInterface); the scheme is generic over
/// it. Every implementation refuses quarantined tokens with
/// [`SmiError::Quarantined`] before touching any port, so the guarantee
/// "never written" does not depend on the caller remembering to check.
pub trait TokenIo {
    /// Reads the token's current value.
    fn read_token(&mut self, token: Token) -> Result<u32, SmiError>;
    /// Sets the token's value.
    fn write_token(&mut self, token: Token, value: u32) -> Result<(), SmiError>;
}
