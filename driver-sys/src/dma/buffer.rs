//! Physically contiguous DMA memory owned by the driver.
//!
//! [`DmaRegion`] is untyped: a zeroed, physically contiguous allocation from the
//! memory scheme with its physical address, released (`munmap`) on drop.
//! [`DmaBuffer<T>`] puts a type on it: `Deref` to `T`, for descriptors and rings.
//! Only [`Zeroable`] types are allowed, because the memory arrives zeroed and is
//! handed out as a `T` without running a constructor.

use core::marker::PhantomData;
use core::ops::{Deref, DerefMut};

use syscall::error::{ENOMEM, Error, Result};

/// The last bus address a device limited to 32 address bits can drive.
pub const LIMIT_32BIT: u64 = 0xFFFF_FFFF;

use crate::memory::{Mapping, PhysMemory};

/// Types for which all-zero bytes are a valid value and any bytes a device
/// writes are too (no references, no enums with holes, no `bool`).
///
/// # Safety
/// Implement only for plain-data types meeting that rule.
pub unsafe trait Zeroable: Sized {}

macro_rules! zeroable {
    ($($t:ty),*) => { $(unsafe impl Zeroable for $t {})* };
}
zeroable!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize
);
// SAFETY: an array of plain data is plain data.
unsafe impl<T: Zeroable, const N: usize> Zeroable for [T; N] {}

/// A zeroed, physically contiguous allocation and its physical address.
#[derive(Debug)]
pub struct DmaRegion {
    mapping: Mapping,
    phys: u64,
    len: usize,
}

impl DmaRegion {
    /// Allocates `len` bytes (rounded up to pages) anywhere in RAM.
    pub fn new(memory: &PhysMemory, len: usize) -> Result<Self> {
        let (mapping, phys) = memory.alloc_contiguous(len)?;
        Ok(Self::from_parts(mapping, phys))
    }

    /// Allocates `len` bytes whose last physical address is at most `limit`, for a
    /// device no IOMMU translates (see [`PhysMemory::alloc_contiguous_below`]:
    /// bounded retries, then `ENOMEM` with the reason logged).
    pub fn new_below(memory: &PhysMemory, len: usize, limit: u64) -> Result<Self> {
        let (mapping, phys) = memory.alloc_contiguous_below(len, limit)?;
        Ok(Self::from_parts(mapping, phys))
    }

    fn from_parts(mapping: Mapping, phys: u64) -> Self {
        Self {
            len: mapping.len(),
            mapping,
            phys,
        }
    }

    /// Physical address of the first byte.
    pub fn phys(&self) -> u64 {
        self.phys
    }

    /// Length in bytes (whole pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// First byte.
    pub fn as_ptr(&self) -> *mut u8 {
        self.mapping.as_ptr()
    }

    /// The bytes. A device may write them at any time; read what you own.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: `len` mapped bytes we own for our lifetime.
        unsafe { core::slice::from_raw_parts(self.mapping.as_ptr(), self.len) }
    }

    /// The bytes, mutably.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and `&mut self` makes the borrow unique.
        unsafe { core::slice::from_raw_parts_mut(self.mapping.as_ptr(), self.len) }
    }
}

/// A typed, zeroed, physically contiguous DMA buffer, unmapped on drop.
#[derive(Debug)]
pub struct DmaBuffer<T: Zeroable> {
    region: DmaRegion,
    _t: PhantomData<T>,
}

impl<T: Zeroable> DmaBuffer<T> {
    /// A zeroed `T` in contiguous memory; with `below_4g`, memory whose physical
    /// address a 32-bit device can drive (checked, with bounded retries).
    pub fn new(memory: &PhysMemory, below_4g: bool) -> Result<Self> {
        let region = if below_4g {
            DmaRegion::new_below(memory, size_of::<T>(), LIMIT_32BIT)?
        } else {
            DmaRegion::new(memory, size_of::<T>())?
        };
        Self::from_region(region)
    }

    /// Opens the memory scheme and allocates (convenience for one-off buffers).
    pub fn zeroed() -> Result<Self> {
        Self::new(&PhysMemory::open()?, false)
    }

    /// Puts a type on a region big enough for it.
    pub fn from_region(region: DmaRegion) -> Result<Self> {
        if region.len() < size_of::<T>() || align_of::<T>() > crate::memory::PAGE_SIZE {
            return Err(Error::new(ENOMEM));
        }
        Ok(Self {
            region,
            _t: PhantomData,
        })
    }

    /// Physical address.
    pub fn phys(&self) -> u64 {
        self.region.phys()
    }

    /// The underlying region.
    pub fn region(&self) -> &DmaRegion {
        &self.region
    }
}

impl<T: Zeroable> Deref for DmaBuffer<T> {
    type Target = T;
    fn deref(&self) -> &T {
        // SAFETY: page-aligned, large enough (checked in from_region), and any bytes
        // are a valid T (Zeroable).
        unsafe { &*self.region.as_ptr().cast::<T>() }
    }
}

impl<T: Zeroable> DerefMut for DmaBuffer<T> {
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in deref; `&mut self` is unique.
        unsafe { &mut *self.region.as_ptr().cast::<T>() }
    }
}
