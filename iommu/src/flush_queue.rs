//! Lazy invalidation: unmapped IOVAs wait in a per-domain flush queue until
//! an IOTLB flush issued *after* their unmap has completed, and only then
//! return to the allocator (Linux's flush queues, with the same generation
//! rule). Until that flush, a device may still hit a stale IOTLB entry for
//! the page — the price of not waiting for the hardware on every unmap — but
//! the IOVA is never handed to a new mapping while that is possible.
//!
//! Generations count flushes: an entry queued while `started` flushes have
//! been issued carries generation `started + 1`, and is released once
//! `completed >= started + 1`.

use std::collections::VecDeque;

use crate::domain::Unmapped;

/// How UNMAP invalidates a domain's IOTLB entries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Invalidation {
    /// `INV_IOMMU_PAGES` + `COMPLETION_WAIT` before UNMAP answers.
    #[default]
    Strict,
    /// Flush queue: one whole-domain flush per [`FlushQueue`] fill or timeout.
    Lazy,
}

impl Invalidation {
    /// Wire value (SET_INVALIDATION `arg0`): 0 strict, 1 lazy.
    pub const fn from_wire(value: u32) -> Option<Self> {
        match value {
            0 => Some(Invalidation::Strict),
            1 => Some(Invalidation::Lazy),
            _ => None,
        }
    }

    /// The wire value.
    pub const fn as_wire(self) -> u32 {
        match self {
            Invalidation::Strict => 0,
            Invalidation::Lazy => 1,
        }
    }

    /// `strict` or `lazy`.
    pub const fn name(self) -> &'static str {
        match self {
            Invalidation::Strict => "strict",
            Invalidation::Lazy => "lazy",
        }
    }
}

/// Flush generations of the daemon (all units, all domains).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlushGenerations {
    /// Flushes issued.
    pub started: u64,
    /// Flushes whose completion wait finished.
    pub completed: u64,
}

impl FlushGenerations {
    /// The generation an entry queued now must wait for.
    pub fn next(&self) -> u64 {
        self.started + 1
    }
}

/// One unmap whose IOVA and emptied page-table pages wait for a completed
/// invalidation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Deferred {
    /// The IOVA range (returned to the allocator on release); `None` for
    /// tables detached by a failed map or by growth.
    pub unmapped: Option<Unmapped>,
    /// Page-table pages the unmap detached (freed on release).
    pub tables: Vec<u64>,
}

/// One domain's deferred unmaps (lazy mode), and strict unmaps whose
/// invalidation did not complete (quarantined until one does).
#[derive(Debug)]
pub struct FlushQueue {
    entries: VecDeque<(Deferred, u64)>,
    capacity: usize,
}

impl FlushQueue {
    /// A queue that asks for a flush once it holds `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Queues an unmap that must wait for flush generation `generation`;
    /// true when the queue is now full and should be flushed.
    pub fn push(&mut self, deferred: Deferred, generation: u64) -> bool {
        self.entries.push_back((deferred, generation));
        self.entries.len() >= self.capacity
    }

    /// Removes and returns every entry whose flush has completed.
    pub fn release(&mut self, completed: u64) -> Vec<Deferred> {
        let mut out = Vec::new();
        // Generations are pushed in non-decreasing order.
        while self
            .entries
            .front()
            .is_some_and(|&(_, generation)| generation <= completed)
        {
            if let Some((deferred, _)) = self.entries.pop_front() {
                out.push(deferred);
            }
        }
        out
    }

    /// The IOVA ranges `(iova, size)` of the unmaps waiting.
    pub fn ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.entries
            .iter()
            .filter_map(|(d, _)| d.unmapped.as_ref())
            .map(|u| (u.iova, u.size))
    }

    /// Entries waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether an IOVA range of a waiting entry overlaps `[iova, iova + size)`.
    pub fn holds(&self, iova: u64, size: u64) -> bool {
        self.entries
            .iter()
            .filter_map(|(d, _)| d.unmapped.as_ref())
            .any(|u| u.iova < iova.saturating_add(size) && iova < u.iova + u.size)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Mapping;
    use crate::protocol::MapFlags;

    fn unmapped(iova: u64) -> Deferred {
        Deferred {
            unmapped: Some(Unmapped {
                iova,
                size: 4096,
                mapping: Mapping {
                    phys: 0,
                    size: 4096,
                    flags: MapFlags::READ_WRITE,
                },
            }),
            tables: vec![iova << 12],
        }
    }

    #[test]
    fn entries_wait_for_a_later_flush() {
        let mut gens = FlushGenerations::default();
        let mut q = FlushQueue::new(3);
        assert!(!q.push(unmapped(0x1000), gens.next()));
        // A flush that was already running when the entry was queued does
        // not release it: only one started afterwards does.
        assert!(q.release(gens.completed).is_empty());
        gens.started += 1;
        assert!(!q.push(unmapped(0x2000), gens.next()));
        gens.completed = 1;
        assert_eq!(q.release(gens.completed), vec![unmapped(0x1000)]);
        assert!(q.holds(0x2000, 4096) && !q.holds(0x1000, 4096));
        assert!(!q.push(unmapped(0x3000), gens.next()));
        assert!(q.push(unmapped(0x4000), gens.next()), "full at capacity");
        gens.started += 1;
        gens.completed = 2;
        assert_eq!(q.release(gens.completed).len(), 3);
        assert!(q.is_empty());
    }
}
