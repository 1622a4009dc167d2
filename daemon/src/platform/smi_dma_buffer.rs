//! The calling interface's command buffer in DMA memory below 4 GiB.
//!
//! SMM firmware reads the buffer by *physical* address (EBX is 32 bits, and SMM is
//! not behind the IOMMU), so the buffer comes from an [`IommuDmaAllocator`] over
//! passthrough with a 32-bit mask: physically contiguous memory with bus address =
//! physical address. The Redox kernel cannot allocate below 4 GiB, so the allocator
//! checks the translation of what it got and retries a bounded number of times;
//! on a machine that only hands out high memory, allocation fails with `ENOMEM`
//! and the reason in the log.

use driver_sys::dma::{DmaAllocation, IommuDmaAllocator, Passthrough};
use syscall::error::Result;

use super::SmiBuffer;

/// A page of DMA memory below 4 GiB holding the calling-interface buffer.
pub struct DmaSmiBuffer {
    // Kept alive for as long as the buffer is in use; it owns the memory pool.
    _allocator: IommuDmaAllocator,
    page: DmaAllocation,
}

impl DmaSmiBuffer {
    /// Allocates one page below 4 GiB through the memory scheme (`ENOMEM` if the
    /// kernel hands out no low memory within the allocator's retries).
    pub fn allocate() -> Result<DmaSmiBuffer> {
        let allocator = IommuDmaAllocator::new(Box::new(Passthrough), 32)?;
        let page = allocator.allocate(4096)?;
        Ok(DmaSmiBuffer {
            _allocator: allocator,
            page,
        })
    }
}

impl SmiBuffer for DmaSmiBuffer {
    fn phys_addr(&self) -> u64 {
        self.page.phys()
    }
    fn size(&self) -> usize {
        self.page.len()
    }
    fn store(&mut self, bytes: &[u8]) {
        let out = self.page.as_mut_slice();
        let n = bytes.len().min(out.len());
        out[..n].copy_from_slice(&bytes[..n]);
    }
    fn load(&self, out: &mut [u8]) {
        let src = self.page.as_slice();
        let n = out.len().min(src.len());
        out[..n].copy_from_slice(&src[..n]);
    }
}
