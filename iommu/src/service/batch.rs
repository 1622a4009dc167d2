//! BATCH: a scatter list mapped or unmapped in one request
//! ([`crate::scatter`] has the wire format).
//!
//! Who may do it is who may MAP and UNMAP one range: the domain's owner
//! process (`EACCES` for anyone else, root included), with raw physical
//! sources for root alone; everyone else maps parts of the memory iommud
//! allocated for this very domain (ALLOC), so a batch never lets a device
//! reach memory its driver could not reach through its own buffers.
//!
//! MAP is all or nothing, as Linux's `dma_map_sg`: every source is resolved
//! before anything is mapped, and a range that fails unmaps those before it
//! through the ordinary UNMAP path (so their IOVAs are reused only after an
//! invalidation covered them) before the error is answered. UNMAP is checked
//! whole first: a range that is not a mapping's start (`ENOENT`), an IOVA
//! given twice (`EINVAL`), a firmware range (`EACCES`) or an aliased buffer
//! (`EBUSY`) refuse the batch with nothing unmapped.

use std::collections::BTreeSet;

use syscall::error::{E2BIG, EACCES, EFAULT, EINVAL, ENOENT, Error, Result};

use crate::access::Client;
use crate::protocol::MapFlags;
use crate::scatter::{MAX_RANGES, SgEntry, Source};

use super::invalidation::unmappable;
use super::{DomainState, Iommu};

fn bounded(entries: &[SgEntry]) -> Result<()> {
    match entries.len() {
        0 => Err(Error::new(EINVAL)),
        n if n > MAX_RANGES => Err(Error::new(E2BIG)),
        _ => Ok(()),
    }
}

/// The physical address of `[iova, iova + size)` inside one ALLOC buffer of
/// `d`, and that buffer's IOVA (`EFAULT`: not wholly inside one).
fn buffer_phys(d: &DomainState, iova: u64, size: u64) -> Result<(u64, u64)> {
    let (&start, region) = d
        .buffers
        .range(..=iova)
        .next_back()
        .ok_or(Error::new(EFAULT))?;
    let off = iova - start;
    let end = off.checked_add(size).ok_or(Error::new(EFAULT))?;
    if end > region.len() as u64 {
        return Err(Error::new(EFAULT));
    }
    Ok((region.phys() + off, start))
}

impl Iommu {
    /// BATCH MAP into domain `id` (its owner only): every range of `entries`
    /// is mapped, or none is. On success each entry's `iova` is the IOVA it
    /// got; returns the bytes mapped.
    pub fn map_sg(
        &mut self,
        id: u16,
        client: Client,
        flags: MapFlags,
        source: Source,
        entries: &mut [SgEntry],
    ) -> Result<u64> {
        let d = self.domain_for_change(id, client)?;
        bounded(entries)?;
        // Every source is checked before anything is mapped.
        let mut sources = Vec::with_capacity(entries.len());
        for e in entries.iter() {
            sources.push(match source {
                Source::Physical if client.is_root() => (e.addr, None),
                Source::Physical => return Err(Error::new(EACCES)),
                Source::Buffer => {
                    let (phys, buffer) = buffer_phys(d, e.addr, e.size)?;
                    (phys, Some(buffer))
                }
            });
        }
        let mut total = 0u64;
        for i in 0..entries.len() {
            let (Some(e), Some(&(phys, buffer))) = (entries.get(i), sources.get(i)) else {
                break;
            };
            let wanted = (e.iova != 0).then_some(e.iova);
            match self.map_checked(id, phys, e.size, flags, wanted) {
                Ok(iova) => {
                    total += e.size;
                    if let Some(e) = entries.get_mut(i) {
                        e.iova = iova;
                    }
                    if let (Some(buffer), Some(d)) = (buffer, self.domains.get_mut(&id)) {
                        d.aliases.insert(iova, buffer);
                    }
                }
                Err(error) => {
                    self.roll_back(id, entries.get(..i).unwrap_or_default());
                    return Err(error);
                }
            }
        }
        Ok(total)
    }

    /// Unmaps what a failed BATCH MAP had mapped. Nothing was answered yet,
    /// but a device may have been given the IOVA by guess: the ordinary
    /// UNMAP path invalidates (strict) or queues (lazy) as for any unmap.
    fn roll_back(&mut self, id: u16, mapped: &[SgEntry]) {
        for e in mapped {
            if let Err(error) = self.unmap_checked(id, e.iova) {
                log::error!(
                    "iommud: rolling back BATCH MAP {:#x} of domain {id}: {error}",
                    e.iova
                );
            }
        }
    }

    /// BATCH UNMAP in domain `id` (its owner only): checked whole, then every
    /// range is unmapped; each entry's `size` is set to what it had. Returns
    /// the bytes unmapped. An invalidation that does not complete leaves the
    /// rest unmapped too and answers the first error (`EIO`), as UNMAP does.
    pub fn unmap_sg(&mut self, id: u16, client: Client, entries: &mut [SgEntry]) -> Result<u64> {
        let d = self.domain_for_change(id, client)?;
        bounded(entries)?;
        let mut seen = BTreeSet::new();
        for e in entries.iter() {
            if !seen.insert(e.iova) {
                return Err(Error::new(EINVAL));
            }
            unmappable(d, e.iova)?;
            if d.domain.mapping(e.iova).is_none() {
                return Err(Error::new(ENOENT));
            }
        }
        let mut total = 0u64;
        let mut first_error = None;
        for e in entries.iter_mut() {
            match self.unmap_checked(id, e.iova) {
                Ok(size) => {
                    e.size = size;
                    total += size;
                }
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        first_error.map_or(Ok(total), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(n: usize) -> Vec<SgEntry> {
        vec![SgEntry::default(); n]
    }

    fn errno(r: Result<()>) -> Option<i32> {
        r.err().map(|e| e.errno)
    }

    /// The wire decode already refuses these lengths, so only a direct call
    /// reaches `bounded`: the service must not trust its caller.
    #[test]
    fn bounded_refuses_an_empty_list_and_more_than_max_ranges() {
        assert_eq!(errno(bounded(&[])), Some(EINVAL));
        assert_eq!(errno(bounded(&list(MAX_RANGES + 1))), Some(E2BIG));
        assert_eq!(errno(bounded(&list(2 * MAX_RANGES))), Some(E2BIG));
    }

    #[test]
    fn bounded_accepts_one_to_max_ranges() {
        for n in [1, 2, MAX_RANGES - 1, MAX_RANGES] {
            assert_eq!(errno(bounded(&list(n))), None, "{n} ranges");
        }
    }
}
