//! Address windows: the IOVA space cut at every power of two.
//!
//! Window `k` is `[2^k, 2^(k+1))`, for `k` from 12 (so page 0 is never in
//! any window) up to the IOMMU address width. A DMA mask `2^m - 1` then
//! allows exactly the windows `k < m`: honouring a mask is a bitmask AND,
//! never a search. A mask that is not of that form is rounded down to the
//! largest that is (a device with mask `0x2_FFFF_FFFF` is treated as 33-bit).
//! The price is that one allocation never spans two windows, so the largest
//! single allocation a device with an `m`-bit mask can get is `2^(m-1)`
//! (2 GiB for a 32-bit device, minus the MSI window); fixed IOVAs
//! ([`super::IovaAllocator::alloc_at`]) may span windows.
//!
//! Preference: windows at or above 4 GiB in ascending order, then the
//! 32-bit windows in descending order. IOVAs thus grow upward from 4 GiB
//! (page tables stay at 3 levels until 512 GiB are in use) and the space
//! below 4 GiB stays for the devices that can reach nothing else.

/// First window index (4 KiB).
pub(crate) const FIRST_WINDOW: u32 = 12;
/// Windows entirely below 4 GiB.
const LOW_WINDOWS: u64 = (1 << 32) - 1;

/// The most preferred window among `candidates` (a bitmask of window indices).
#[inline]
pub(crate) fn window_pick(candidates: u64) -> Option<u32> {
    let high = candidates & !LOW_WINDOWS;
    if high != 0 {
        Some(high.trailing_zeros())
    } else if candidates != 0 {
        Some(63 - candidates.leading_zeros())
    } else {
        None
    }
}

/// Windows of `candidates` in preference order.
pub(crate) fn preference(mut candidates: u64) -> impl Iterator<Item = u32> {
    std::iter::from_fn(move || {
        let w = window_pick(candidates)?;
        candidates &= !(1 << w);
        Some(w)
    })
}

/// The window holding `iova` (≥ 4 KiB).
#[inline]
pub(crate) fn window_of(iova: u64) -> u32 {
    63 - iova.leading_zeros()
}

/// Start of window `k`.
pub(crate) const fn window_start(k: u32) -> u64 {
    1 << k
}

/// End (exclusive) of window `k`.
pub(crate) const fn window_end(k: u32) -> u64 {
    1 << (k + 1)
}

/// Windows a device with `dma_mask` may use in an `address_bits` space;
/// `None` if the mask cannot reach even the first window.
pub(crate) fn allowed_windows(dma_mask: u64, address_bits: u32) -> Option<u64> {
    let mask_bits = match dma_mask.checked_add(1) {
        None => 64,
        Some(limit) => 63 - limit.leading_zeros(),
    };
    let top = mask_bits.min(address_bits);
    if top <= FIRST_WINDOW {
        return None;
    }
    Some(((1u64 << top) - 1) & !((1u64 << FIRST_WINDOW) - 1))
}

/// Splits `[start, end)` at window boundaries: `(window, piece_start, piece_end)`.
pub(crate) fn pieces(start: u64, end: u64) -> impl Iterator<Item = (u32, u64, u64)> {
    let mut cur = start;
    std::iter::from_fn(move || {
        if cur >= end || cur == 0 {
            return None;
        }
        let w = window_of(cur);
        let piece_end = end.min(window_end(w));
        let piece = (w, cur, piece_end);
        cur = piece_end;
        Some(piece)
    })
}

/// What is left in one window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowUsage {
    /// First IOVA of the window.
    pub start: u64,
    /// End (exclusive) of the window.
    pub end: u64,
    /// Bytes of the window that can ever be allocated (reserved regions excluded).
    pub usable_bytes: u64,
    /// Bytes not allocated now (cached small IOVAs count as free).
    pub free_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_select_windows() {
        let w32 = allowed_windows(0xFFFF_FFFF, 48).unwrap();
        assert_eq!(63 - w32.leading_zeros(), 31);
        assert_eq!(w32.trailing_zeros(), 12);
        let w64 = allowed_windows(u64::MAX, 39).unwrap();
        assert_eq!(63 - w64.leading_zeros(), 38);
        assert_eq!(
            allowed_windows(0x2_FFFF_FFFF, 48),
            allowed_windows(0x1_FFFF_FFFF, 48)
        );
        assert_eq!(allowed_windows(0xFFF, 48), None);
    }

    #[test]
    fn preference_is_upward_from_4g_then_downward() {
        let order: Vec<u32> = preference(allowed_windows(0xF_FFFF_FFFF, 48).unwrap()).collect();
        assert_eq!(&order[..5], &[32, 33, 34, 35, 31]);
        assert_eq!(order.last(), Some(&12));
    }

    #[test]
    fn pieces_split_at_powers_of_two() {
        let p: Vec<_> = pieces(0x3000, 0x11000).collect();
        assert_eq!(
            p,
            vec![
                (13, 0x3000, 0x4000),
                (14, 0x4000, 0x8000),
                (15, 0x8000, 0x10000),
                (16, 0x10000, 0x11000)
            ]
        );
    }
}
