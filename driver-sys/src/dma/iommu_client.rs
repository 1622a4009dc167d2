//! [`IommuMapper`] for iommu's own typed client, so a driver holding an
//! `iommu::IommuDomain` (which can also assign devices, translate and set
//! the invalidation mode) hands it to [`super::IommuDmaAllocator`] directly.

use iommu::client::IommuDomain;
use syscall::error::Result;

use super::{IommuMapper, MapFlags};

impl IommuMapper for IommuDomain {
    fn map(&self, phys: u64, size: u64, flags: MapFlags, iova_hint: Option<u64>) -> Result<u64> {
        IommuDomain::map(self, phys, size, flags, iova_hint)
    }

    fn unmap(&self, iova: u64) -> Result<u64> {
        IommuDomain::unmap(self, iova)
    }

    fn translates(&self) -> bool {
        true
    }

    fn domain(&self) -> Option<u16> {
        Some(self.id())
    }
}
