//! The magazine layer: recently freed small IOVAs, ready to hand out again.
//!
//! Linux's `iova.c` puts a per-CPU cache in front of its allocator
//! ("rcache", after Bonwick's magazines): per size class a CPU has a
//! *loaded* and a *previous* magazine, a fixed array used as a stack, and a
//! shared *depot* of full magazines behind them. A free pushes onto the
//! loaded magazine and an allocation pops from it; only when both of a
//! CPU's magazines are full (or empty) does it trade a whole magazine with
//! the depot, so the common case touches one cache line that no other CPU
//! writes.
//!
//! Here the unit of concurrency is the thread that owns the allocator: a
//! domain's [`IovaAllocator`](super::IovaAllocator) is used through `&mut`
//! by one iommud thread, so its rack of loaded and previous magazines *is*
//! that thread's cache, and nothing on the hot path is shared. The depot
//! stays as the bounded second tier it is in Linux: it absorbs a burst of
//! frees of one class without sending them back to the slabs, at most
//! [`DEPOT_MAGAZINES`] full magazines per class, after which the oldest
//! overflow goes back to the slabs.
//!
//! A cached IOVA's slot bit is clear (so a second free of it is refused)
//! while its slab still counts it (see `SlabCache::cache`). The slab scan
//! would take such a slot for free, so [`Rack::pop`] answers `None` only
//! when no magazine of the class holds an IOVA in the allowed windows: only
//! then does the allocator scan, and only those windows. Each entry keeps
//! its slab's id, so taking it back needs no radix lookup.

use super::slab::CLASSES;
use super::window::window_of;

/// Entries per magazine (Linux's `IOVA_MAG_SIZE`).
pub(crate) const MAGAZINE_SIZE: usize = 127;
/// Full magazines the depot keeps per size class (Linux's `MAX_GLOBAL_MAGS`).
pub(crate) const DEPOT_MAGAZINES: usize = 32;
/// Empty magazines kept for reuse (enough for a burst to trade with the
/// depot without allocating; the rest are freed).
const SPARE_MAGAZINES: usize = DEPOT_MAGAZINES + 2;

/// A cached IOVA and the slab that holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cached {
    /// The IOVA (start of a slab slot).
    pub(crate) iova: u64,
    /// Its slab's id in the `SlabCache`.
    pub(crate) slab: u32,
}

/// A stack of up to [`MAGAZINE_SIZE`] cached IOVAs of one size class.
#[derive(Debug)]
pub(crate) struct Magazine {
    len: usize,
    iova: [u64; MAGAZINE_SIZE],
    slab: [u32; MAGAZINE_SIZE],
}

impl Magazine {
    fn empty() -> Box<Self> {
        Box::new(Self {
            len: 0,
            iova: [0; MAGAZINE_SIZE],
            slab: [0; MAGAZINE_SIZE],
        })
    }

    fn is_full(&self) -> bool {
        self.len == MAGAZINE_SIZE
    }

    #[inline]
    fn push(&mut self, entry: Cached) -> bool {
        let (Some(iova), Some(slab)) = (self.iova.get_mut(self.len), self.slab.get_mut(self.len))
        else {
            return false;
        };
        *iova = entry.iova;
        *slab = entry.slab;
        self.len += 1;
        true
    }

    /// Pops the newest entry in one of the `allowed` windows (Linux's
    /// `iova_magazine_pop` with its `limit_pfn`): the top one when it fits,
    /// else the newest that does, moved out by swapping the top into its
    /// place.
    #[inline]
    fn pop(&mut self, allowed: u64) -> Option<Cached> {
        let top = self.len.checked_sub(1)?;
        let fits = |iova: u64| allowed & (1 << window_of(iova)) != 0;
        let at = if self.iova.get(top).is_some_and(|&i| fits(i)) {
            top
        } else {
            self.iova.get(..top)?.iter().rposition(|&i| fits(i))?
        };
        let entry = Cached {
            iova: *self.iova.get(at)?,
            slab: *self.slab.get(at)?,
        };
        if at != top {
            self.iova.swap(at, top);
            self.slab.swap(at, top);
        }
        self.len = top;
        Some(entry)
    }

    /// Takes every entry out.
    pub(crate) fn drain(&mut self) -> impl Iterator<Item = Cached> + '_ {
        let len = std::mem::take(&mut self.len);
        self.iova
            .iter()
            .zip(&self.slab)
            .take(len)
            .map(|(&iova, &slab)| Cached { iova, slab })
    }
}

/// One size class: the owner's two magazines and the depot behind them.
///
/// Magazines are boxed everywhere (the depot and the spare list too), so
/// trading one between the loaded slot and the depot moves a pointer, not
/// its 1.5 KiB of entries.
#[derive(Debug)]
#[allow(clippy::vec_box)]
struct Class {
    loaded: Box<Magazine>,
    prev: Box<Magazine>,
    depot: Vec<Box<Magazine>>,
}

/// The magazines of one allocator, all size classes.
#[derive(Debug)]
#[allow(clippy::vec_box)]
pub(crate) struct Rack {
    classes: Vec<Class>,
    /// Empty magazines kept for reuse, so trading with the depot does not
    /// allocate in steady state.
    spare: Vec<Box<Magazine>>,
    /// Entries cached over all classes.
    cached: usize,
}

impl Rack {
    pub(crate) fn new() -> Self {
        Self {
            classes: (0..CLASSES)
                .map(|_| Class {
                    loaded: Magazine::empty(),
                    prev: Magazine::empty(),
                    depot: Vec::with_capacity(DEPOT_MAGAZINES),
                })
                .collect(),
            spare: Vec::with_capacity(SPARE_MAGAZINES),
            cached: 0,
        }
    }

    /// IOVAs cached over all classes.
    pub(crate) fn cached(&self) -> usize {
        self.cached
    }

    /// Caches `entry` of `class`. When the class is already holding its
    /// limit, returns a full magazine that the caller must give back to
    /// the slabs (then hand back through [`recycle`](Self::recycle)).
    #[inline]
    pub(crate) fn push(&mut self, class: u8, entry: Cached) -> Option<Box<Magazine>> {
        let c = self.classes.get_mut(usize::from(class))?;
        if c.loaded.push(entry) {
            self.cached += 1;
            return None;
        }
        self.push_slow(class, entry)
    }

    #[cold]
    fn push_slow(&mut self, class: u8, entry: Cached) -> Option<Box<Magazine>> {
        let spare = self.spare.pop();
        let c = self.classes.get_mut(usize::from(class))?;
        let mut evicted = None;
        if c.prev.is_full() {
            // Both full: the loaded one goes to the depot, and the depot's
            // oldest to the slabs when the depot is at its limit.
            let fresh = spare.unwrap_or_else(Magazine::empty);
            let full = std::mem::replace(&mut c.loaded, fresh);
            if c.depot.len() >= DEPOT_MAGAZINES {
                let oldest = c.depot.remove(0);
                self.cached -= oldest.len;
                evicted = Some(oldest);
            }
            c.depot.push(full);
        } else {
            // Linux's swap: the previous magazine has room (it is empty,
            // since it only ever becomes non-full by being emptied).
            std::mem::swap(&mut c.loaded, &mut c.prev);
            if let Some(spare) = spare {
                self.spare.push(spare);
            }
        }
        if c.loaded.push(entry) {
            self.cached += 1;
        }
        evicted
    }

    /// Takes a cached IOVA of `class` in one of the `allowed` windows.
    /// `None` means that no magazine of the class (loaded, previous or in
    /// the depot) holds an IOVA in those windows.
    #[inline]
    pub(crate) fn pop(&mut self, class: u8, allowed: u64) -> Option<Cached> {
        let c = self.classes.get_mut(usize::from(class))?;
        if let Some(entry) = c.loaded.pop(allowed) {
            self.cached -= 1;
            return Some(entry);
        }
        self.pop_slow(class, allowed)
    }

    #[cold]
    fn pop_slow(&mut self, class: u8, allowed: u64) -> Option<Cached> {
        let c = self.classes.get_mut(usize::from(class))?;
        if c.loaded.len == 0 {
            if c.prev.len > 0 {
                std::mem::swap(&mut c.loaded, &mut c.prev);
            } else if let Some(full) = c.depot.pop() {
                let empty = std::mem::replace(&mut c.loaded, full);
                if self.spare.len() < SPARE_MAGAZINES {
                    self.spare.push(empty);
                }
            }
        }
        // Another DMA mask's entries may sit on top: look everywhere
        // before saying there is none (see the module docs for why).
        let entry = std::iter::once(&mut c.loaded)
            .chain(std::iter::once(&mut c.prev))
            .chain(c.depot.iter_mut().rev())
            .find_map(|m| m.pop(allowed))?;
        self.cached -= 1;
        Some(entry)
    }

    /// Returns an emptied magazine for reuse.
    pub(crate) fn recycle(&mut self, magazine: Box<Magazine>) {
        if magazine.len == 0 && self.spare.len() < SPARE_MAGAZINES {
            self.spare.push(magazine);
        }
    }

    /// Takes every cached IOVA out (before a fixed claim or on exhaustion,
    /// as Linux's `free_cpu_cached_iovas` / `free_global_cached_iovas`).
    pub(crate) fn drain_all(&mut self) -> Vec<Cached> {
        let mut out = Vec::with_capacity(self.cached);
        for c in &mut self.classes {
            out.extend(c.loaded.drain());
            out.extend(c.prev.drain());
            for mut m in c.depot.drain(..) {
                out.extend(m.drain());
                if self.spare.len() < SPARE_MAGAZINES {
                    self.spare.push(m);
                }
            }
        }
        self.cached = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(n: u64) -> Cached {
        Cached {
            iova: (1 << 32) + (n << 12),
            slab: n as u32,
        }
    }

    #[test]
    fn lifo_within_a_class_and_classes_apart() {
        let mut r = Rack::new();
        assert!(r.push(0, entry(1)).is_none());
        assert!(r.push(0, entry(2)).is_none());
        assert!(r.push(1, entry(3)).is_none());
        assert_eq!(r.cached(), 3);
        assert_eq!(r.pop(0, u64::MAX), Some(entry(2)));
        assert_eq!(r.pop(1, u64::MAX), Some(entry(3)));
        assert_eq!(r.pop(1, u64::MAX), None);
        assert_eq!(r.pop(0, u64::MAX), Some(entry(1)));
        assert_eq!(r.pop(0, u64::MAX), None);
        assert_eq!(r.cached(), 0);
    }

    #[test]
    fn pop_honours_the_allowed_windows() {
        let mut r = Rack::new();
        let low = Cached {
            iova: 0x10_0000,
            slab: 7,
        };
        r.push(2, low);
        r.push(2, entry(1));
        // Only windows below 4 GiB: the older, low entry is taken.
        assert_eq!(r.pop(2, (1 << 32) - 1), Some(low));
        assert_eq!(r.pop(2, (1 << 32) - 1), None);
        assert_eq!(r.pop(2, u64::MAX), Some(entry(1)));
    }

    #[test]
    fn overflow_fills_prev_then_depot_then_evicts_the_oldest() {
        let mut r = Rack::new();
        let limit = (2 + DEPOT_MAGAZINES) * MAGAZINE_SIZE;
        for n in 0..limit as u64 {
            assert!(
                r.push(4, entry(n)).is_none(),
                "entry {n} is within the limit"
            );
        }
        assert_eq!(r.cached(), limit);
        let evicted = r.push(4, entry(limit as u64)).expect("over the limit");
        assert_eq!(evicted.len, MAGAZINE_SIZE);
        assert_eq!(r.cached(), limit + 1 - MAGAZINE_SIZE);
        r.recycle(evicted);
        let mut seen = 0;
        while r.pop(4, u64::MAX).is_some() {
            seen += 1;
        }
        assert_eq!(seen, limit + 1 - MAGAZINE_SIZE);
        assert_eq!(r.cached(), 0);
    }

    #[test]
    fn drain_all_returns_everything_once() {
        let mut r = Rack::new();
        for n in 0..400 {
            r.push((n % 6) as u8, entry(n));
        }
        let mut drained: Vec<u64> = r.drain_all().iter().map(|c| c.iova).collect();
        drained.sort_unstable();
        assert_eq!(drained, (0..400).map(|n| entry(n).iova).collect::<Vec<_>>());
        assert_eq!(r.cached(), 0);
        assert_eq!(r.pop(0, u64::MAX), None);
    }
}
