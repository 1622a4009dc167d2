//! Streaming DMA: handing an ordinary buffer to the device for one transfer.
//!
//! A userspace driver's buffers (heap, stack) are neither physically contiguous
//! nor known to the IOMMU, so a streaming map goes through a bounce buffer: DMA
//! memory from the allocator's pool — mapped, and below the device's address
//! limit by construction. The pool grows on demand and keeps a bounded number
//! of idle buffers; [`super::DmaStats`] counts maps, bytes copied each way and
//! the bounce buffers in use (with the high-water mark).
//!
//! Ownership follows the Linux DMA API: after `map_single` the device owns the
//! buffer; `sync_for_cpu` gives it to the CPU (copying device data out),
//! `sync_for_device` gives it back (copying CPU data in); `unmap_single` ends the
//! transfer, copying out only if the device still owned it. Copies happen only
//! where ownership changes in the direction of the data, so a transfer costs one
//! copy of its bytes.

use std::sync::atomic::Ordering;

use syscall::error::{EINVAL, Error, Result};

use super::allocator::{DmaAllocation, IommuDmaAllocator};

/// Which way the data goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DmaDirection {
    /// CPU → device.
    ToDevice,
    /// Device → CPU.
    FromDevice,
    /// Both.
    Bidirectional,
}

impl DmaDirection {
    fn carries_to_device(self) -> bool {
        matches!(self, Self::ToDevice | Self::Bidirectional)
    }
    fn carries_from_device(self) -> bool {
        matches!(self, Self::FromDevice | Self::Bidirectional)
    }
}

/// One streaming mapping.
#[derive(Debug)]
pub struct StreamingMap {
    bounce: DmaAllocation,
    direction: DmaDirection,
    device_owns: bool,
}

impl StreamingMap {
    /// The address the device must use.
    pub fn bus_address(&self) -> u64 {
        self.bounce.iova()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.bounce.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.bounce.is_empty()
    }

    /// Direction.
    pub fn direction(&self) -> DmaDirection {
        self.direction
    }
}

impl IommuDmaAllocator {
    fn copy_in(&self, map: &mut StreamingMap, buf: &[u8]) -> Result<()> {
        let dst = map.bounce.as_mut_slice();
        if dst.len() != buf.len() {
            return Err(Error::new(EINVAL));
        }
        dst.copy_from_slice(buf);
        self.inner
            .stats
            .bounce_to_device_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    fn copy_out(&self, map: &StreamingMap, buf: &mut [u8]) -> Result<()> {
        let src = map.bounce.as_slice();
        if src.len() != buf.len() {
            return Err(Error::new(EINVAL));
        }
        buf.copy_from_slice(src);
        self.inner
            .stats
            .bounce_to_cpu_bytes
            .fetch_add(buf.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Maps `buf` for one transfer; the device now owns it.
    pub fn map_single(&self, buf: &[u8], direction: DmaDirection) -> Result<StreamingMap> {
        if buf.is_empty() {
            return Err(Error::new(EINVAL));
        }
        // Not zeroed: the bytes are either overwritten now or by the device, and
        // stay within this driver.
        let bounce = self.take(buf.len(), false)?;
        let stats = &self.inner.stats;
        stats.bounce_maps.fetch_add(1, Ordering::Relaxed);
        let now = stats.bounce_in_use.fetch_add(1, Ordering::Relaxed) + 1;
        stats.bounce_high_water.fetch_max(now, Ordering::Relaxed);
        let mut map = StreamingMap {
            bounce,
            direction,
            device_owns: true,
        };
        if direction.carries_to_device() {
            self.copy_in(&mut map, buf)?;
        }
        Ok(map)
    }

    /// Gives the buffer to the CPU: device data is copied into `buf`.
    pub fn sync_for_cpu(&self, map: &mut StreamingMap, buf: &mut [u8]) -> Result<()> {
        if map.device_owns && map.direction.carries_from_device() {
            self.copy_out(map, buf)?;
        }
        map.device_owns = false;
        Ok(())
    }

    /// Gives the buffer back to the device: CPU data is copied from `buf`.
    pub fn sync_for_device(&self, map: &mut StreamingMap, buf: &[u8]) -> Result<()> {
        if !map.device_owns && map.direction.carries_to_device() {
            self.copy_in(map, buf)?;
        }
        map.device_owns = true;
        Ok(())
    }

    /// Ends the transfer; device data still owned by the device is copied into
    /// `buf` first. The bounce buffer returns to the pool.
    pub fn unmap_single(&self, map: StreamingMap, buf: &mut [u8]) -> Result<()> {
        let r = if map.device_owns && map.direction.carries_from_device() {
            self.copy_out(&map, buf)
        } else {
            Ok(())
        };
        self.inner
            .stats
            .bounce_in_use
            .fetch_sub(1, Ordering::Relaxed);
        drop(map);
        r
    }
}
