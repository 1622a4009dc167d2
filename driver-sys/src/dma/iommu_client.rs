//! [`IommuMapper`] for iommu's own typed client, so a driver holding an
//! `iommu::IommuDomain` (which can also assign devices, translate and set
//! the invalidation mode) hands it to [`super::IommuDmaAllocator`] directly.

use iommu::client::IommuDomain;
use iommu::scatter::{MAX_RANGES, SgEntry, Source};
use syscall::error::Result;

use super::{IommuMapper, MapFlags};

impl IommuMapper for IommuDomain {
    fn map(&self, phys: u64, size: u64, flags: MapFlags, iova_hint: Option<u64>) -> Result<u64> {
        IommuDomain::map(self, phys, size, flags, iova_hint)
    }

    fn unmap(&self, iova: u64) -> Result<u64> {
        IommuDomain::unmap(self, iova)
    }

    fn map_sg(&self, ranges: &[(u64, u64)], flags: MapFlags) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(ranges.len());
        for chunk in ranges.chunks(MAX_RANGES) {
            let entries: Vec<SgEntry> = chunk
                .iter()
                .map(|&(addr, size)| SgEntry {
                    addr,
                    size,
                    iova: 0,
                })
                .collect();
            match IommuDomain::map_sg(self, &entries, flags, Source::Physical) {
                Ok(done) => out.extend(done.iter().map(|e| e.iova)),
                Err(e) => {
                    for done in out.chunks(MAX_RANGES) {
                        let _ = IommuDomain::unmap_sg(self, done);
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }

    fn unmap_sg(&self, iovas: &[u64]) -> Result<u64> {
        let mut total = 0;
        for chunk in iovas.chunks(MAX_RANGES) {
            total += IommuDomain::unmap_sg(self, chunk)?;
        }
        Ok(total)
    }

    fn translates(&self) -> bool {
        true
    }

    fn domain(&self) -> Option<u16> {
        Some(self.id())
    }
}
