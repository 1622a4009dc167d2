//! Little-endian field access on fixed byte layouts.
//!
//! Every wire type encodes and decodes through these two functions so that no
//! client byte is ever reinterpreted in place: a short or misplaced field is an
//! `EINVAL`, never a panic.

use syscall::error::{EINVAL, Error, Result};

/// Copies `N` bytes starting at `at` out of `bytes`.
pub(crate) fn take<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N]> {
    let end = at.checked_add(N).ok_or(Error::new(EINVAL))?;
    bytes
        .get(at..end)
        .and_then(|field| <[u8; N]>::try_from(field).ok())
        .ok_or(Error::new(EINVAL))
}

/// Writes `field` at `at` in `out`.
///
/// Callers only pass compile-time offsets inside a buffer whose length they
/// checked first, so a miss is a layout bug: it is caught by the layout tests
/// (debug assertion) and never panics in release.
pub(crate) fn put(out: &mut [u8], at: usize, field: &[u8]) {
    let slot = at
        .checked_add(field.len())
        .and_then(|end| out.get_mut(at..end));
    debug_assert!(
        slot.is_some(),
        "wire layout bug: field at {at} outside buffer"
    );
    if let Some(slot) = slot {
        slot.copy_from_slice(field);
    }
}

/// Reads a little-endian `u16` at `at`.
pub(crate) fn u16_at(bytes: &[u8], at: usize) -> Result<u16> {
    take(bytes, at).map(u16::from_le_bytes)
}

/// Reads a little-endian `u32` at `at`.
pub(crate) fn u32_at(bytes: &[u8], at: usize) -> Result<u32> {
    take(bytes, at).map(u32::from_le_bytes)
}

/// Reads a little-endian `i32` at `at`.
pub(crate) fn i32_at(bytes: &[u8], at: usize) -> Result<i32> {
    take(bytes, at).map(i32::from_le_bytes)
}

/// Reads a little-endian `u64` at `at`.
pub(crate) fn u64_at(bytes: &[u8], at: usize) -> Result<u64> {
    take(bytes, at).map(u64::from_le_bytes)
}

/// Reads a byte that encodes a C `bool` (0 or 1); anything else is `EINVAL`.
pub(crate) fn bool_at(bytes: &[u8], at: usize) -> Result<bool> {
    match take::<1>(bytes, at)? {
        [0] => Ok(false),
        [1] => Ok(true),
        _ => Err(Error::new(EINVAL)),
    }
}

/// Checks that a decode input is exactly `size` bytes long.
///
/// Decoding is exact so a client and the daemon that disagree on a layout
/// fail loudly instead of reading a prefix.
pub(crate) fn exact(bytes: &[u8], size: usize) -> Result<()> {
    if bytes.len() == size {
        Ok(())
    } else {
        Err(Error::new(EINVAL))
    }
}

/// Checks that an encode output has room for `size` bytes.
pub(crate) fn room(out: &[u8], size: usize) -> Result<()> {
    if out.len() >= size {
        Ok(())
    } else {
        Err(Error::new(EINVAL))
    }
}
