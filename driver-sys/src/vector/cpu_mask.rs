//! A fixed-size CPU set for affinity masks.
//!
//! Fixed size (no heap) so allocating a vector never allocates memory.

/// Most CPUs a [`CpuMask`] (and so a [`crate::vector::VectorMatrix`]) can hold.
pub const MAX_CPUS: usize = 256;
const WORDS: usize = MAX_CPUS / 64;

/// A set of CPU numbers below [`MAX_CPUS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct CpuMask {
    words: [u64; WORDS],
}

impl CpuMask {
    /// No CPUs.
    pub const fn empty() -> Self {
        Self { words: [0; WORDS] }
    }

    /// Only `cpu` (empty if `cpu` is out of range).
    pub fn single(cpu: u32) -> Self {
        let mut m = Self::empty();
        m.insert(cpu);
        m
    }

    /// CPUs `0..n` (clamped to [`MAX_CPUS`]).
    pub fn first(n: usize) -> Self {
        let mut m = Self::empty();
        for cpu in 0..n.min(MAX_CPUS) {
            m.insert(cpu as u32);
        }
        m
    }

    /// Adds `cpu`; false if out of range.
    pub fn insert(&mut self, cpu: u32) -> bool {
        match self.words.get_mut(cpu as usize / 64) {
            Some(w) => {
                *w |= 1 << (cpu % 64);
                true
            }
            None => false,
        }
    }

    /// Removes `cpu`.
    pub fn remove(&mut self, cpu: u32) {
        if let Some(w) = self.words.get_mut(cpu as usize / 64) {
            *w &= !(1 << (cpu % 64));
        }
    }

    /// Whether `cpu` is in the set.
    pub fn contains(&self, cpu: u32) -> bool {
        self.words
            .get(cpu as usize / 64)
            .is_some_and(|w| w & (1 << (cpu % 64)) != 0)
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }

    /// Number of CPUs in the set.
    pub fn count(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// CPUs in both sets.
    pub fn intersection(&self, other: &Self) -> Self {
        let mut m = *self;
        for (a, b) in m.words.iter_mut().zip(other.words) {
            *a &= b;
        }
        m
    }

    /// CPUs in `self` but not `other`.
    pub fn difference(&self, other: &Self) -> Self {
        let mut m = *self;
        for (a, b) in m.words.iter_mut().zip(other.words) {
            *a &= !b;
        }
        m
    }

    /// The CPUs in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.words.iter().enumerate().flat_map(|(i, &w)| {
            let mut bits = w;
            core::iter::from_fn(move || {
                if bits == 0 {
                    return None;
                }
                let b = bits.trailing_zeros();
                bits &= bits - 1;
                Some(i as u32 * 64 + b)
            })
        })
    }
}

impl FromIterator<u32> for CpuMask {
    fn from_iter<I: IntoIterator<Item = u32>>(iter: I) -> Self {
        let mut m = Self::empty();
        for cpu in iter {
            m.insert(cpu);
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_operations() {
        let mut m: CpuMask = [1, 5, 64, 255].into_iter().collect();
        assert_eq!(m.count(), 4);
        assert!(m.contains(64) && !m.contains(2));
        assert!(!m.insert(256));
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 5, 64, 255]);
        m.remove(5);
        assert_eq!(m.iter().collect::<Vec<_>>(), vec![1, 64, 255]);
        let f = CpuMask::first(3);
        assert_eq!(f.intersection(&m).iter().collect::<Vec<_>>(), vec![1]);
        assert_eq!(f.difference(&m).iter().collect::<Vec<_>>(), vec![0, 2]);
        assert!(CpuMask::empty().is_empty());
        assert!(CpuMask::single(300).is_empty());
    }
}
