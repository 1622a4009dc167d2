//! Asking a pcid channel which function it is: the proof behind ASSIGN by
//! channel.
//!
//! A driver holds the channel of exactly one function (`/scheme/pci/<addr>/
//! channel`, root only, one open at a time: pcid answers `ENOLCK` to a
//! second open). When it passes that channel to a domain handle, iommud
//! sends `RequestConfig` on it and assigns the function pcid names in the
//! answer, never one the client names. The wire format is upstream pcid's
//! (bincode 1, see `redox-real.md` §4.3 and `driver_sys::pci::pcid_wire`):
//! the request is the bare variant index `1u32` LE in one write; the answer
//! is a u64 LE length, then `PcidClientResponse::Config` (variant `1u32`)
//! whose first fields are the function's address: segment u16, bus u8,
//! device u8, function u8. This crate sits below driver-sys, so it decodes
//! those few leading bytes itself; a test checks them against pcid_wire.

use libredox::call;
use syscall::error::{EBADMSG, EINVAL, EIO, ENODEV, Error, Result};

use crate::bdf::Bdf;

/// `PcidClientRequest::RequestConfig` on the wire.
pub const REQUEST_CONFIG: [u8; 4] = 1u32.to_le_bytes();
/// Variant index of `PcidClientResponse::Config`.
pub const RESPONSE_CONFIG: u32 = 1;
/// pcid's own bound on an answer (1 MiB).
pub const MAX_ANSWER: u64 = 0x10_0000;

/// The function a `Config` answer body names (segment 0 only: one AMD-Vi
/// device table per segment, and this daemon drives segment 0).
pub fn decode_config_address(body: &[u8]) -> Result<Bdf> {
    let field = |range: core::ops::Range<usize>| body.get(range).ok_or(Error::new(EBADMSG));
    let variant = u32::from_le_bytes(field(0..4)?.try_into().map_err(|_| Error::new(EBADMSG))?);
    if variant != RESPONSE_CONFIG {
        return Err(Error::new(EBADMSG));
    }
    let segment = u16::from_le_bytes(field(4..6)?.try_into().map_err(|_| Error::new(EBADMSG))?);
    let addr = field(6..9)?;
    if segment != 0 {
        return Err(Error::new(ENODEV));
    }
    Bdf::new(addr[0], addr[1], addr[2]).ok_or(Error::new(EBADMSG))
}

fn read_exact(fd: usize, mut buf: &mut [u8]) -> Result<()> {
    while !buf.is_empty() {
        let n = call::read(fd, buf).map_err(|e| Error::new(e.errno()))?;
        if n == 0 {
            return Err(Error::new(EIO));
        }
        buf = buf.get_mut(n..).ok_or(Error::new(EIO))?;
    }
    Ok(())
}

/// Sends `RequestConfig` on the channel `fd` and returns the function pcid
/// says it is. `EINVAL` from pcid (an exchange of the driver's own still
/// unread) comes back as is; a malformed answer is `EBADMSG`.
pub fn request_function(fd: usize) -> Result<Bdf> {
    let n = call::write(fd, &REQUEST_CONFIG).map_err(|e| Error::new(e.errno()))?;
    if n != REQUEST_CONFIG.len() {
        return Err(Error::new(EIO));
    }
    let mut len = [0u8; 8];
    read_exact(fd, &mut len)?;
    let len = u64::from_le_bytes(len);
    if len > MAX_ANSWER {
        return Err(Error::new(EBADMSG));
    }
    let mut body = vec![0u8; usize::try_from(len).map_err(|_| Error::new(EINVAL))?];
    read_exact(fd, &mut body)?;
    decode_config_address(&body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_the_address_and_refuses_everything_else() {
        let mut body = RESPONSE_CONFIG.to_le_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0x12, 0x1f, 7, 0xAA]);
        assert_eq!(
            decode_config_address(&body),
            Ok(Bdf::new(0x12, 0x1f, 7).unwrap())
        );
        assert_eq!(
            decode_config_address(&body[..8]).unwrap_err().errno,
            EBADMSG
        );
        let mut other = body.clone();
        other[0] = 6;
        assert_eq!(decode_config_address(&other).unwrap_err().errno, EBADMSG);
        let mut seg = body.clone();
        seg[4] = 1;
        assert_eq!(decode_config_address(&seg).unwrap_err().errno, ENODEV);
        let mut dev = body;
        dev[7] = 32;
        assert_eq!(decode_config_address(&dev).unwrap_err().errno, EBADMSG);
    }
}
