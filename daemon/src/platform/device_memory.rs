//! Where a device's data comes from besides its token value: the device's
//! register block in the DSMIL memory window.

use syscall::error::Result;

use crate::wire::Token;

/// Bytes of a device's register block that a read session captures.
///
/// 700 bytes make four read chunks (3 × 224 + 28), so every device read
/// exercises the chunking, including a short last chunk.
pub const DEVICE_BLOCK_LEN: usize = 700;

/// A device's register block, read by copy.
///
/// Implemented over the chunked MMIO window on real hardware (each device's
/// block at `index × stride` of the window) and by the simulated firmware
/// in `redox-host`. Reads are bounds-checked by the implementation; errors
/// are errno values (`EIO` for a device that does not answer).
pub trait DeviceMemory {
    /// Fills `out` (at most [`DEVICE_BLOCK_LEN`] bytes) with the start of
    /// `token`'s register block.
    fn read_block(&mut self, token: Token, out: &mut [u8]) -> Result<()>;
}
