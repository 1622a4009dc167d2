//! Memory iommud allocates for a domain (ALLOC): the way a client that may not
//! map raw physical addresses (anyone but root) gets DMA memory.
//!
//! iommud allocates zeroed, physically contiguous memory from the `memory`
//! scheme, maps it into the domain, and keeps it. The client maps the same
//! pages into its own address space with `mmap` on its domain handle, offset =
//! the IOVA ([`crate::scheme::IommuScheme`]'s `mmap_prep`). So a device in the
//! domain can only reach memory iommud gave this client, never memory the
//! client could not reach itself. The bytes count against the uid's limit like
//! any mapping. UNMAP of the IOVA returns the memory once no device can reach
//! it: after the strict invalidation, or after a flush in lazy mode.

use syscall::error::{EINVAL, ENOENT, Error, Result};

use crate::access::Client;
use crate::flush_queue::Invalidation;
use crate::protocol::MapFlags;
use crate::service::Iommu;

impl Iommu {
    /// ALLOC: `size` bytes of new memory mapped into domain `id` (its owner
    /// only); returns the IOVA.
    pub fn alloc(
        &mut self,
        id: u16,
        client: Client,
        size: u64,
        flags: MapFlags,
        iova: Option<u64>,
    ) -> Result<u64> {
        self.domain_for_change(id, client)?;
        let uid = self.domain(id)?.charged_uid;
        self.accounts.check_bytes(uid, size)?;
        let len = usize::try_from(size).map_err(|_| Error::new(EINVAL))?;
        let region = self.memory.allocator().alloc(len)?;
        let iova = self.map_checked(id, region.phys(), size, flags, iova)?;
        let d = self.domains.get_mut(&id).ok_or(Error::new(ENOENT))?;
        d.buffers.insert(iova, region);
        Ok(iova)
    }

    /// The address, in iommud's own mapping, of byte `iova` of an ALLOC
    /// buffer of domain `id` with `len` bytes from there (its owner only).
    pub fn buffer_address(&self, id: u16, client: Client, iova: u64, len: usize) -> Result<usize> {
        let d = self.owned(id, client)?;
        let (&start, region) = d
            .buffers
            .range(..=iova)
            .next_back()
            .ok_or(Error::new(EINVAL))?;
        let off = usize::try_from(iova - start).map_err(|_| Error::new(EINVAL))?;
        if off.checked_add(len).is_none_or(|end| end > region.len()) {
            return Err(Error::new(EINVAL));
        }
        Ok(region.as_ptr() as usize + off)
    }

    /// After UNMAP of `iova` in domain `id`: its ALLOC buffer, if it was one,
    /// goes back once no device can reach it (a lazy domain is flushed now).
    pub(crate) fn release_buffer(&mut self, id: u16, iova: u64) -> Result<()> {
        let d = self.domains.get(&id).ok_or(Error::new(ENOENT))?;
        if !d.buffers.contains_key(&iova) {
            return Ok(());
        }
        if d.invalidation == Invalidation::Lazy {
            self.flush_domain(id)?;
        }
        if let Some(d) = self.domains.get_mut(&id) {
            d.buffers.remove(&iova);
        }
        Ok(())
    }
}
