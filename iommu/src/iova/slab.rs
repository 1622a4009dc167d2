//! The fast path: per-size-class caches of small IOVAs.
//!
//! Linux's `iova.c` keeps freed PFNs in per-CPU "magazines" per size class so
//! that most allocations never touch the tree. A magazine entry carries no
//! record of who owns it, and this allocator must reject a free of something
//! it never handed out, so the cache here is a *slab*: a 2 MiB, 2 MiB-aligned
//! IOVA region taken from the slow path for one size class and cut into
//! naturally aligned slots, with one bit per slot. Taking a slot and giving
//! it back are a few bit operations (O(1)), the bit doubles as the validity
//! check on free, and the whole cache costs one bit per slot plus a 32-byte
//! header per slab (the bitmap sits inside the header when it is one word,
//! i.e. for slots of 8 pages and up; larger bitmaps live in a side pool) —
//! which keeps it in CPU cache with a million live allocations.
//!
//! Slabs with a free slot sit on a doubly-linked list per (class, window);
//! one bitmask per class says which windows have such a slab, so picking a
//! window that a DMA mask allows is one AND plus a bit scan. A radix over
//! 2 MiB regions finds the slab of an IOVA on free.
//!
//! In front of the slabs sit the magazines (`magazine.rs`). Parking a freed
//! slot in a magazine ([`SlabCache::cache`]) is validated as a free is and
//! clears the slot's bit, so a second free of it is refused; the slab counts
//! the magazine entries that name it (it is never dropped while one is
//! left) and is not told it has room. The slab scan stays safe because the
//! allocator only scans a class's slabs in windows where no magazine holds
//! an IOVA of that class (`Rack::pop` is exhaustive before it answers
//! `None`). A fixed claim ([`SlabCache::claim`]) may take a slot that waits
//! in a magazine: it sets the bit, and the entry, now stale, is forgotten
//! when it comes out ([`Uncached::Stale`]).

use super::{PAGE_SHIFT, window_pick};

/// log2 of the slab region size.
pub(crate) const SLAB_SHIFT: u32 = 21;
/// Slab region size: 2 MiB (also one level-1 page table's reach).
pub(crate) const SLAB_SIZE: u64 = 1 << SLAB_SHIFT;
/// Size classes: 4 KiB << class, up to 128 KiB (32 pages), as in Linux.
pub(crate) const CLASSES: usize = 6;
/// Largest size served from slabs.
pub(crate) const SLAB_MAX_ALLOC: u64 = 1 << (PAGE_SHIFT + CLASSES as u32 - 1);
/// Slabs live below 2^53, so that a region number fits the 32-bit header field.
pub(crate) const SLAB_LIMIT: u64 = 1 << (SLAB_SHIFT + 32);
const NONE: u32 = u32::MAX;
const WINDOWS: usize = 64;
/// 2 MiB regions per radix leaf (one leaf covers 1 GiB).
const LEAF_SHIFT: u32 = 9;
const LEAF_ENTRIES: usize = 1 << LEAF_SHIFT;
const LISTED: u8 = 1;
const ALIVE: u8 = 2;

/// One slab's header: 32 bytes, two per cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C)]
struct Slab {
    /// Bit w set = bitmap word w has a free slot.
    free_words: u8,
    class: u8,
    window: u8,
    flags: u8,
    /// Slots in use (bit set).
    live: u16,
    /// Magazine entries naming this slab, stale ones included: the slab
    /// is not dropped while any is left.
    cached: u16,
    prev: u32,
    next: u32,
    /// `base >> SLAB_SHIFT`.
    region: u32,
    ext: u32,
    /// The bitmap when it is a single word (classes from [`INLINE_CLASS`];
    /// below it the bitmap is `pool[ext..ext + words(class)]`). Bit set =
    /// slot in use (or beyond the slab's slot count).
    inline: u64,
}
/// First class whose bitmap is one word (64 slots or fewer).
const INLINE_CLASS: u8 = 3;
const _: () = assert!(words(INLINE_CLASS) == 1 && words(INLINE_CLASS - 1) == 2);
const _: () = assert!(size_of::<Slab>() == 32);

/// What a slot free found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotFree {
    /// Freed; the slab still has other slots in use or is worth keeping.
    Freed,
    /// Freed, and the slab is now empty and was dropped: give its region
    /// (`base`, in `window`) back to the slow path.
    SlabEmptied { base: u64, window: u8 },
}

/// What taking a magazine entry back found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Uncached {
    /// The slot is in use again.
    Taken,
    /// A fixed claim had taken the slot: the entry is forgotten, and if
    /// that emptied the slab, here is its region (`base`, `window`) for the
    /// slow path.
    Stale(Option<(u64, u8)>),
}

/// Why a slot free was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SlotError {
    /// Not the start of a slot, or a size of another class.
    Mismatch,
    /// A fixed claim found the slot in use.
    InUse,
    /// The slot is not in use.
    NotAllocated,
}

/// All slabs of one allocator.
#[derive(Debug)]
pub(crate) struct SlabCache {
    slabs: Vec<Slab>,
    spare: Vec<u32>,
    /// Bitmap words of slabs with more than 64 slots.
    pool: Vec<u64>,
    /// Reusable pool blocks, by log2 of their word count (2, 4, 8 words).
    pool_spare: [Vec<u32>; 4],
    heads: [[u32; WINDOWS]; CLASSES],
    /// Per class: windows that have a slab with a free slot.
    nonempty: [u64; CLASSES],
    /// Region index >> LEAF_SHIFT → leaf number + 1 (0 = no leaf).
    radix_top: Vec<u32>,
    radix_leaves: Vec<[u32; LEAF_ENTRIES]>,
}

/// Slots per slab of `class`.
const fn slots(class: u8) -> u32 {
    1 << (SLAB_SHIFT - PAGE_SHIFT - class as u32)
}

/// Bitmap words per slab of `class`.
const fn words(class: u8) -> u32 {
    slots(class).div_ceil(64)
}

/// Initial bitmap word `w`: slots past the slab's count are marked used.
fn initial_word(class: u8, w: usize) -> u64 {
    let used = (slots(class) as usize).saturating_sub(w * 64).min(64);
    if used == 64 { 0 } else { !0 << used }
}

impl Slab {
    fn base(&self) -> u64 {
        u64::from(self.region) << SLAB_SHIFT
    }

    fn slot_shift(&self) -> u32 {
        PAGE_SHIFT + u32::from(self.class)
    }
}

/// The bitmap word `w` of `slab`, inline or in the pool.
#[inline]
fn word_mut<'a>(slab: &'a mut Slab, pool: &'a mut [u64], w: usize) -> Option<&'a mut u64> {
    if slab.class >= INLINE_CLASS {
        (w == 0).then_some(&mut slab.inline)
    } else {
        pool.get_mut(slab.ext as usize + w)
    }
}

fn word(slab: &Slab, pool: &[u64], w: usize) -> u64 {
    if slab.class >= INLINE_CLASS {
        if w == 0 { slab.inline } else { u64::MAX }
    } else {
        pool.get(slab.ext as usize + w).copied().unwrap_or(u64::MAX)
    }
}

impl SlabCache {
    pub(crate) fn new() -> Self {
        Self {
            slabs: Vec::new(),
            spare: Vec::new(),
            pool: Vec::new(),
            pool_spare: Default::default(),
            heads: [[NONE; WINDOWS]; CLASSES],
            nonempty: [0; CLASSES],
            radix_top: Vec::new(),
            radix_leaves: Vec::new(),
        }
    }

    fn link(&mut self, id: u32) {
        let Some(slab) = self.slabs.get(id as usize) else {
            return;
        };
        let (class, window) = (usize::from(slab.class), usize::from(slab.window));
        let Some(head) = self.heads.get_mut(class).and_then(|h| h.get_mut(window)) else {
            return;
        };
        let old = *head;
        *head = id;
        if let Some(h) = self.slabs.get_mut(old as usize) {
            h.prev = id;
        }
        if let Some(slab) = self.slabs.get_mut(id as usize) {
            slab.prev = NONE;
            slab.next = old;
            slab.flags |= LISTED;
        }
        if let Some(bits) = self.nonempty.get_mut(class) {
            *bits |= 1 << window;
        }
    }

    fn unlink(&mut self, id: u32) {
        let Some(slab) = self.slabs.get_mut(id as usize) else {
            return;
        };
        let (prev, next) = (slab.prev, slab.next);
        let (class, window) = (usize::from(slab.class), usize::from(slab.window));
        slab.flags &= !LISTED;
        slab.prev = NONE;
        slab.next = NONE;
        if let Some(n) = self.slabs.get_mut(next as usize) {
            n.prev = prev;
        }
        let Some(head) = self.heads.get_mut(class).and_then(|h| h.get_mut(window)) else {
            return;
        };
        match self.slabs.get_mut(prev as usize) {
            Some(p) => p.next = next,
            None => *head = next,
        }
        if *head == NONE
            && let Some(bits) = self.nonempty.get_mut(class)
        {
            *bits &= !(1 << window);
        }
    }

    /// Takes a slot of `class` from a slab in one of the `allowed` windows.
    #[inline]
    pub(crate) fn alloc(&mut self, class: u8, allowed: u64) -> Option<u64> {
        let candidates = self.nonempty.get(usize::from(class))? & allowed;
        let window = window_pick(candidates)?;
        let id = *self.heads.get(usize::from(class))?.get(window as usize)?;
        let slab = self.slabs.get_mut(id as usize)?;
        let w = slab.free_words.trailing_zeros() as usize;
        let word = word_mut(slab, &mut self.pool, w)?;
        let bit = (!*word).trailing_zeros();
        *word |= 1 << bit;
        let word_full = *word == u64::MAX;
        if word_full {
            slab.free_words &= !(1 << w);
        }
        slab.live += 1;
        let iova = slab.base() + (((w as u64) << 6 | u64::from(bit)) << slab.slot_shift());
        if slab.free_words == 0 {
            self.unlink(id);
        }
        Some(iova)
    }

    /// The slab id owning the 2 MiB region of `iova`.
    #[inline]
    fn lookup(&self, iova: u64) -> Option<u32> {
        let region = iova >> SLAB_SHIFT;
        let leaf = *self
            .radix_top
            .get(usize::try_from(region >> LEAF_SHIFT).ok()?)?;
        let leaf = self.radix_leaves.get(leaf.checked_sub(1)? as usize)?;
        let id = *leaf.get(region as usize & (LEAF_ENTRIES - 1))?;
        id.checked_sub(1)
    }

    fn set_radix(&mut self, base: u64, value: u32) {
        let region = base >> SLAB_SHIFT;
        let Ok(top) = usize::try_from(region >> LEAF_SHIFT) else {
            return;
        };
        if self.radix_top.len() <= top {
            self.radix_top.resize(top + 1, 0);
        }
        let Some(slot) = self.radix_top.get_mut(top) else {
            return;
        };
        if *slot == 0 {
            self.radix_leaves.push([0; LEAF_ENTRIES]);
            *slot = self.radix_leaves.len() as u32;
        }
        let leaf = *slot as usize - 1;
        if let Some(entry) = self
            .radix_leaves
            .get_mut(leaf)
            .and_then(|l| l.get_mut(region as usize & (LEAF_ENTRIES - 1)))
        {
            *entry = value;
        }
    }

    /// Whether `iova` lies in a slab region.
    pub(crate) fn owns(&self, iova: u64) -> bool {
        self.lookup(iova).is_some()
    }

    fn pool_block(&mut self, words: u32) -> u32 {
        let spare = self.pool_spare.get_mut(words.trailing_zeros() as usize);
        if let Some(at) = spare.and_then(Vec::pop) {
            return at;
        }
        let at = self.pool.len() as u32;
        self.pool.resize(self.pool.len() + words as usize, 0);
        at
    }

    /// Registers a new slab on the 2 MiB region at `base` (below
    /// [`SLAB_LIMIT`], taken from the slow path by the caller).
    pub(crate) fn add(&mut self, base: u64, class: u8, window: u8) {
        let n = words(class);
        let ext = if n > 1 { self.pool_block(n) } else { 0 };
        for w in 0..n as usize {
            if let Some(word) = self.pool.get_mut(ext as usize + w).filter(|_| n > 1) {
                *word = initial_word(class, w);
            }
        }
        let slab = Slab {
            free_words: ((1u16 << n) - 1) as u8,
            class,
            window,
            flags: ALIVE,
            live: 0,
            cached: 0,
            prev: NONE,
            next: NONE,
            region: (base >> SLAB_SHIFT) as u32,
            ext,
            inline: initial_word(class, 0),
        };
        let id = match self.spare.pop() {
            Some(id) => {
                if let Some(s) = self.slabs.get_mut(id as usize) {
                    *s = slab;
                }
                id
            }
            None => {
                self.slabs.push(slab);
                self.slabs.len() as u32 - 1
            }
        };
        self.set_radix(base, id + 1);
        self.link(id);
    }

    fn drop_slab(&mut self, id: u32) -> Option<(u64, u8)> {
        let slab = *self.slabs.get(id as usize)?;
        if slab.flags & LISTED != 0 {
            self.unlink(id);
        }
        if let Some(s) = self.slabs.get_mut(id as usize) {
            s.flags &= !ALIVE;
        }
        if slab.class < INLINE_CLASS
            && let Some(spare) = self
                .pool_spare
                .get_mut(words(slab.class).trailing_zeros() as usize)
        {
            spare.push(slab.ext);
        }
        self.set_radix(slab.base(), 0);
        self.spare.push(id);
        Some((slab.base(), slab.window))
    }

    /// The slot that starts at `iova` in a slab of `class`: its slab id,
    /// bitmap word and bit. `None` when no slab holds the region; `Mismatch`
    /// when the slab is of another class or `iova` is not a slot start.
    #[inline]
    fn locate(&self, iova: u64, class: u8) -> Option<Result<(u32, usize, u64), SlotError>> {
        let id = self.lookup(iova)?;
        let slab = self.slabs.get(id as usize)?;
        let offset = iova.wrapping_sub(slab.base());
        let shift = slab.slot_shift();
        if slab.class != class || offset & ((1 << shift) - 1) != 0 {
            return Some(Err(SlotError::Mismatch));
        }
        let slot = offset >> shift;
        Some(Ok((id, (slot >> 6) as usize, 1 << (slot & 63))))
    }

    /// Frees the slot at `iova` whose footprint is of `class`; `None` when
    /// `iova` is not in a slab region.
    #[inline]
    pub(crate) fn free(&mut self, iova: u64, class: u8) -> Option<Result<SlotFree, SlotError>> {
        let (id, w, mask) = match self.locate(iova, class)? {
            Ok(at) => at,
            Err(e) => return Some(Err(e)),
        };
        let slab = self.slabs.get_mut(id as usize)?;
        let was_full = slab.free_words == 0;
        let Some(word) = word_mut(slab, &mut self.pool, w) else {
            return Some(Err(SlotError::Mismatch));
        };
        if *word & mask == 0 {
            return Some(Err(SlotError::NotAllocated));
        }
        *word &= !mask;
        slab.free_words |= 1 << w;
        slab.live -= 1;
        if was_full {
            self.link(id);
        }
        Some(Ok(match self.drop_if_empty(id) {
            Some((base, window)) => SlotFree::SlabEmptied { base, window },
            None => SlotFree::Freed,
        }))
    }

    /// Drops slab `id` if nothing is in use and no magazine names it,
    /// unless it is the only one with room in its list (then it is kept, so
    /// that alternating alloc/free at a boundary does not carve and release
    /// every time). Returns the dropped region for the slow path.
    fn drop_if_empty(&mut self, id: u32) -> Option<(u64, u8)> {
        let slab = self.slabs.get(id as usize)?;
        let (class, window) = (usize::from(slab.class), usize::from(slab.window));
        let only_one_listed = slab.flags & LISTED != 0
            && slab.next == NONE
            && self.heads.get(class).and_then(|h| h.get(window)) == Some(&id);
        if slab.live != 0 || slab.cached != 0 || only_one_listed {
            return None;
        }
        self.drop_slab(id)
    }

    /// A free of the slot at `iova` (footprint of `class`) that parks it
    /// in a magazine instead: validated exactly as [`free`](Self::free) is,
    /// the slot's bit is cleared and the slab counts one more magazine
    /// entry, but its free lists stay as they were (the slot is not room
    /// for the slab scan). Returns the slab id; `None` when `iova` is not in
    /// a slab region.
    #[inline]
    pub(crate) fn cache(&mut self, iova: u64, class: u8) -> Option<Result<u32, SlotError>> {
        let (id, w, mask) = match self.locate(iova, class)? {
            Ok(at) => at,
            Err(e) => return Some(Err(e)),
        };
        let slab = self.slabs.get_mut(id as usize)?;
        let Some(word) = word_mut(slab, &mut self.pool, w) else {
            return Some(Err(SlotError::Mismatch));
        };
        if *word & mask == 0 {
            return Some(Err(SlotError::NotAllocated));
        }
        *word &= !mask;
        slab.live -= 1;
        slab.cached += 1;
        Some(Ok(id))
    }

    /// Takes the magazine entry (`iova` in slab `id`) back: the slot goes
    /// into use again, or, if a fixed claim took it meanwhile, the entry is
    /// stale and only forgotten.
    #[inline]
    pub(crate) fn uncache(&mut self, id: u32, iova: u64) -> Uncached {
        let Some(slab) = self.slabs.get_mut(id as usize) else {
            return Uncached::Stale(None);
        };
        slab.cached = slab.cached.saturating_sub(1);
        let slot = iova.wrapping_sub(slab.base()) >> slab.slot_shift();
        let taken = match word_mut(slab, &mut self.pool, (slot >> 6) as usize) {
            Some(word) if *word & (1 << (slot & 63)) == 0 => {
                *word |= 1 << (slot & 63);
                true
            }
            _ => false,
        };
        if taken {
            slab.live += 1;
            Uncached::Taken
        } else {
            Uncached::Stale(self.drop_if_empty(id))
        }
    }

    /// Gives the magazine entry (`iova` in slab `id`) back to its slab as
    /// free room. Returns the slab's region if that emptied it.
    pub(crate) fn release(&mut self, id: u32, iova: u64) -> Option<(u64, u8)> {
        match self.uncache(id, iova) {
            Uncached::Taken => {
                let class = self.slabs.get(id as usize)?.class;
                match self.free(iova, class)? {
                    Ok(SlotFree::SlabEmptied { base, window }) => Some((base, window)),
                    _ => None,
                }
            }
            Uncached::Stale(emptied) => emptied,
        }
    }

    /// A fixed claim of exactly the slot at `iova` of `class`: `None` when
    /// no slab holds the region, `Mismatch` when the slab is of another
    /// class or `iova` is not a slot start, `InUse` when it is allocated.
    /// A slot waiting in a magazine is taken (its entry goes stale).
    pub(crate) fn claim(&mut self, iova: u64, class: u8) -> Option<Result<(), SlotError>> {
        let (id, w, mask) = match self.locate(iova, class)? {
            Ok(at) => at,
            Err(e) => return Some(Err(e)),
        };
        let slab = self.slabs.get_mut(id as usize)?;
        let Some(word) = word_mut(slab, &mut self.pool, w) else {
            return Some(Err(SlotError::Mismatch));
        };
        if *word & mask != 0 {
            return Some(Err(SlotError::InUse));
        }
        *word |= mask;
        let word_full = *word == u64::MAX;
        slab.live += 1;
        if word_full {
            slab.free_words &= !(1 << w);
        }
        if slab.free_words == 0 && slab.flags & LISTED != 0 {
            self.unlink(id);
        }
        Some(Ok(()))
    }

    /// The in-use slots of the slab at `iova`'s region, as `(iova, size)`.
    pub(crate) fn live_slots(&self, iova: u64) -> Vec<(u64, u64)> {
        let Some(slab) = self.lookup(iova).and_then(|id| self.slabs.get(id as usize)) else {
            return Vec::new();
        };
        let shift = slab.slot_shift();
        (0..u64::from(slots(slab.class)))
            .filter(|slot| word(slab, &self.pool, (slot >> 6) as usize) & (1 << (slot & 63)) != 0)
            .map(|slot| (slab.base() + (slot << shift), 1 << shift))
            .collect()
    }

    /// Removes the slab owning `iova`'s region whatever its contents;
    /// returns `(base, window)`. The caller takes over the live slots.
    pub(crate) fn retire(&mut self, iova: u64) -> Option<(u64, u8)> {
        let id = self.lookup(iova)?;
        self.drop_slab(id)
    }

    /// Drops every empty slab in the `allowed` windows; returns their regions.
    pub(crate) fn reclaim_empty(&mut self, allowed: u64) -> Vec<(u64, u8)> {
        let ids: Vec<u32> = (0..self.slabs.len() as u32)
            .filter(|&id| {
                self.slabs.get(id as usize).is_some_and(|s| {
                    s.flags & ALIVE != 0
                        && s.live == 0
                        && s.cached == 0
                        && allowed & (1 << s.window) != 0
                })
            })
            .collect();
        ids.into_iter()
            .filter_map(|id| self.drop_slab(id))
            .collect()
    }

    /// Region bases of slabs overlapping `[start, end)`, in order.
    pub(crate) fn regions_in(&self, start: u64, end: u64) -> Vec<u64> {
        let mut out = Vec::new();
        let mut region = start >> SLAB_SHIFT;
        let last = (end - 1) >> SLAB_SHIFT;
        while region <= last {
            let top = region >> LEAF_SHIFT;
            let present = usize::try_from(top)
                .ok()
                .and_then(|t| self.radix_top.get(t))
                .is_some_and(|&l| l != 0);
            if !present {
                // Skip the whole 1 GiB the missing leaf would cover.
                region = (top + 1) << LEAF_SHIFT;
                continue;
            }
            if self.owns(region << SLAB_SHIFT) {
                out.push(region << SLAB_SHIFT);
            }
            region += 1;
        }
        out
    }

    /// Number of slabs in use.
    pub(crate) fn slab_count(&self) -> usize {
        self.slabs.len() - self.spare.len()
    }
}
