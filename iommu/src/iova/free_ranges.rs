//! The slow path: free IOVA ranges of one window, indexed by address (to
//! merge neighbours on free) and by length (to find a fit in O(log n)).

use std::collections::{BTreeMap, BTreeSet};

use super::PAGE;

/// How many of the smallest sufficient ranges are tried before taking one
/// that fits whatever its alignment (bounds the best-fit search).
const BEST_FIT_TRIES: usize = 8;

/// Free ranges `[start, end)` of one window, page granular, never adjacent
/// (neighbours are merged).
#[derive(Debug, Default)]
pub(crate) struct FreeRanges {
    by_addr: BTreeMap<u64, u64>,
    by_size: BTreeSet<(u64, u64)>,
}

/// The first `align`-aligned address in `[start, end)` with `size` bytes after it.
fn fit(start: u64, end: u64, size: u64, align: u64) -> Option<u64> {
    let aligned = start.checked_next_multiple_of(align)?;
    (aligned.checked_add(size)? <= end).then_some(aligned)
}

impl FreeRanges {
    fn insert_raw(&mut self, start: u64, end: u64) {
        self.by_addr.insert(start, end);
        self.by_size.insert((end - start, start));
    }

    fn remove_raw(&mut self, start: u64, end: u64) {
        self.by_addr.remove(&start);
        self.by_size.remove(&(end - start, start));
    }

    /// The free range containing `addr`, if any.
    fn containing(&self, addr: u64) -> Option<(u64, u64)> {
        let (&start, &end) = self.by_addr.range(..=addr).next_back()?;
        (addr < end).then_some((start, end))
    }

    /// Gives `[start, end)` back, merging with free neighbours. The caller
    /// guarantees the range is not free already.
    pub(crate) fn release(&mut self, start: u64, mut end: u64) {
        if start >= end {
            return;
        }
        if let Some(next_end) = self.by_addr.get(&end).copied() {
            self.remove_raw(end, next_end);
            end = next_end;
        }
        // A free neighbour below grows in place (its address key stays).
        if let Some((&prev_start, prev_end)) = self.by_addr.range_mut(..start).next_back()
            && *prev_end == start
        {
            let old_len = *prev_end - prev_start;
            *prev_end = end;
            self.by_size.remove(&(old_len, prev_start));
            self.by_size.insert((end - prev_start, prev_start));
            return;
        }
        self.insert_raw(start, end);
    }

    /// Whether all of `[start, end)` is free.
    pub(crate) fn is_free(&self, start: u64, end: u64) -> bool {
        self.containing(start).is_some_and(|(_, e)| end <= e)
    }

    /// Takes `[start, end)` out of the free set; `false` (and no change) if
    /// some of it is not free.
    pub(crate) fn carve(&mut self, start: u64, end: u64) -> bool {
        let Some((range_start, range_end)) = self.containing(start) else {
            return false;
        };
        if end > range_end {
            return false;
        }
        self.by_size.remove(&(range_end - range_start, range_start));
        if range_start < start {
            // The part below keeps its address key: shrink it in place.
            if let Some(kept_end) = self.by_addr.get_mut(&range_start) {
                *kept_end = start;
            }
            self.by_size.insert((start - range_start, range_start));
        } else {
            self.by_addr.remove(&range_start);
        }
        if end < range_end {
            self.insert_raw(end, range_end);
        }
        true
    }

    /// Allocates `size` bytes aligned to `align` (a power of two ≥ a page):
    /// best fit among the few smallest ranges that are long enough, else the
    /// smallest range long enough to fit whatever its alignment. O(log n).
    pub(crate) fn alloc(&mut self, size: u64, align: u64) -> Option<u64> {
        let mut found = None;
        for &(len, start) in self.by_size.range((size, 0)..).take(BEST_FIT_TRIES) {
            if let Some(at) = fit(start, start + len, size, align) {
                found = Some((start, start + len, at));
                break;
            }
        }
        if found.is_none() {
            let sure = size.checked_add(align - PAGE)?;
            let &(len, start) = self.by_size.range((sure, 0)..).next()?;
            found = fit(start, start + len, size, align).map(|at| (start, start + len, at));
        }
        let (_, _, at) = found?;
        self.carve(at, at + size).then_some(at)
    }

    /// Length of the longest free range.
    pub(crate) fn largest(&self) -> u64 {
        self.by_size.last().map_or(0, |&(len, _)| len)
    }

    /// Number of free ranges (fragmentation).
    pub(crate) fn len(&self) -> usize {
        self.by_addr.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_and_carves() {
        let mut f = FreeRanges::default();
        f.release(0x1000, 0x3000);
        f.release(0x5000, 0x6000);
        f.release(0x3000, 0x5000);
        assert_eq!(f.len(), 1);
        assert!(f.is_free(0x1000, 0x6000));
        assert!(f.carve(0x2000, 0x3000));
        assert!(!f.is_free(0x1000, 0x6000));
        assert!(!f.carve(0x2000, 0x3000));
        assert_eq!(f.len(), 2);
    }

    #[test]
    fn alloc_honours_alignment() {
        let mut f = FreeRanges::default();
        f.release(0x1000, 0x40_0000);
        let a = f.alloc(0x20_0000, 0x20_0000).unwrap();
        assert_eq!(a, 0x20_0000);
        assert_eq!(f.alloc(0x20_0000, 0x20_0000), None);
        assert_eq!(f.alloc(0x1000, 0x1000), Some(0x1000));
    }
}
