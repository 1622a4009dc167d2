//! Mapping memory for a device: the IOMMU domain, or nothing.
//!
//! [`IommuMapper`] is the narrow interface the DMA allocator needs. Two
//! implementations: [`IommuDomainMapper`] speaks the `iommu` scheme's v1 wire
//! protocol (`iommu::protocol`) on an fd of `/scheme/iommu/domain/new` (a
//! domain of this process, id chosen by iommud) — write a 32-byte request, read
//! the 36-byte response — with the function assigned by passing iommud its pcid
//! channel ([`channel_mapper`]); and [`Passthrough`], used when there is no
//! IOMMU (the bus address is the physical address).

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use iommu::protocol::{MapFlags, Opcode, RESPONSE_SIZE, RawRequest, Response};
use iommu::scatter::{self, BatchOp, MAX_RANGES, SgEntry, Source};
use libredox::{Fd, flag};
use syscall::error::{EBADMSG, EIO, ENOENT, Error, Result};

use crate::memory::errno;

/// Maps physical memory into a device's view.
pub trait IommuMapper: Send + Sync {
    /// Maps `size` bytes at `phys` with `flags`; `iova_hint` asks for a specific
    /// IOVA. Returns the address the device must use.
    fn map(&self, phys: u64, size: u64, flags: MapFlags, iova_hint: Option<u64>) -> Result<u64>;
    /// Unmaps the mapping starting at `iova`; returns its size.
    fn unmap(&self, iova: u64) -> Result<u64>;
    /// Maps a scatter list of `(phys, size)` ranges with `flags`, all or
    /// nothing (Linux's `dma_map_sg`); returns the device addresses in order.
    /// The default maps range by range and unmaps what it mapped on failure;
    /// an IOMMU domain sends one BATCH request per [`MAX_RANGES`] ranges.
    fn map_sg(&self, ranges: &[(u64, u64)], flags: MapFlags) -> Result<Vec<u64>> {
        let mut out = Vec::with_capacity(ranges.len());
        for &(phys, size) in ranges {
            match self.map(phys, size, flags, None) {
                Ok(iova) => out.push(iova),
                Err(e) => {
                    for &iova in &out {
                        // Best effort: the error that stopped the map is the answer.
                        let _ = self.unmap(iova);
                    }
                    return Err(e);
                }
            }
        }
        Ok(out)
    }
    /// Unmaps the mappings starting at `iovas` now; returns the bytes unmapped.
    fn unmap_sg(&self, iovas: &[u64]) -> Result<u64> {
        let mut total = 0;
        for &iova in iovas {
            total += self.unmap(iova)?;
        }
        Ok(total)
    }
    /// Queues the unmap of `iova` to be sent with others (an IOMMU domain:
    /// one BATCH when [`MAX_RANGES`] are queued, on
    /// [`flush_unmaps`](Self::flush_unmaps) and on drop). Until then the
    /// range stays mapped: the caller must not hand its memory to anything
    /// the device must not reach before the flush. The default unmaps now.
    fn queue_unmap(&self, iova: u64) -> Result<()> {
        self.unmap(iova).map(|_| ())
    }
    /// Sends the queued unmaps now; returns how many were sent.
    fn flush_unmaps(&self) -> Result<usize> {
        Ok(0)
    }
    /// Whether addresses are translated (false: bus address = physical).
    fn translates(&self) -> bool;
    /// The IOMMU domain the mappings go to, if any.
    fn domain(&self) -> Option<u16> {
        None
    }
}

/// No IOMMU: the device sees physical addresses.
#[derive(Debug, Default)]
pub struct Passthrough;

impl IommuMapper for Passthrough {
    fn map(&self, phys: u64, _size: u64, _flags: MapFlags, _hint: Option<u64>) -> Result<u64> {
        Ok(phys)
    }
    fn unmap(&self, _iova: u64) -> Result<u64> {
        Ok(0)
    }
    fn translates(&self) -> bool {
        false
    }
}

/// A client of one `iommu` domain.
pub struct IommuDomainMapper {
    fd: Fd,
    domain: u16,
    round_trips: AtomicU64,
    /// Unmaps queued by [`IommuMapper::queue_unmap`], at most [`MAX_RANGES`].
    pending: Mutex<Vec<u64>>,
}

impl core::fmt::Debug for IommuDomainMapper {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IommuDomainMapper")
            .field("domain", &self.domain)
            .finish_non_exhaustive()
    }
}

impl IommuDomainMapper {
    /// Opens `/scheme/iommu/domain/<id>` (the v1 way: creates a free id,
    /// `EACCES` if another process owns it). `ENOENT` when there is no `iommu`
    /// scheme. Prefer [`open_new`](Self::open_new).
    pub fn open(domain: u16) -> Result<Self> {
        Self::open_path(&format!("/scheme/iommu/domain/{domain}"), domain)
    }

    /// Creates a domain of this process (`/scheme/iommu/domain/new`): iommud
    /// picks the id, so no other process can have squatted on it. `ENOENT`
    /// when there is no `iommu` scheme.
    pub fn open_new() -> Result<Self> {
        let mut m = Self::open_path("/scheme/iommu/domain/new", 0)?;
        let r = m.exchange(&RawRequest::new(Opcode::Query, 0, 0, 0, 0))?;
        m.domain = u16::try_from(r.arg0).map_err(|_| Error::new(EBADMSG))?;
        Ok(m)
    }

    /// Assigns the PCI function whose pcid channel is `channel` to this domain:
    /// the channel goes to iommud by fd passing (`SYS_CALL` with
    /// `CallFlags::FD | FD_CLONE`, so the driver keeps it) and iommud assigns
    /// the function pcid says the channel belongs to.
    pub fn assign_channel(&self, channel: usize) -> Result<()> {
        libredox::call::call_wo(
            self.fd.raw(),
            &channel.to_ne_bytes(),
            syscall::CallFlags::FD | syscall::CallFlags::FD_CLONE,
            &[],
        )
        .map_err(errno)?;
        Ok(())
    }

    /// Opens a domain at an explicit path.
    pub fn open_path(path: &str, domain: u16) -> Result<Self> {
        let fd = Fd::open(path, flag::O_RDWR | flag::O_CLOEXEC, 0).map_err(errno)?;
        Ok(Self {
            fd,
            domain,
            round_trips: AtomicU64::new(0),
            pending: Mutex::new(Vec::new()),
        })
    }

    /// Domain id.
    pub fn domain(&self) -> u16 {
        self.domain
    }

    /// Requests sent so far.
    pub fn round_trips(&self) -> u64 {
        self.round_trips.load(Ordering::Relaxed)
    }

    /// One request/response exchange.
    pub fn exchange(&self, req: &RawRequest) -> Result<Response> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let bytes = req.encode();
        if self.fd.write(&bytes).map_err(errno)? != bytes.len() {
            return Err(Error::new(EIO));
        }
        let mut buf = [0u8; RESPONSE_SIZE];
        if self.fd.read(&mut buf).map_err(errno)? != RESPONSE_SIZE {
            return Err(Error::new(EBADMSG));
        }
        let resp = Response::decode(&buf).map_err(|_| Error::new(EBADMSG))?;
        resp.result()?;
        if { resp.kind } != { req.opcode } {
            return Err(Error::new(EBADMSG));
        }
        Ok(resp)
    }

    /// One BATCH `call`: the list goes out and comes back answered.
    fn batch(&self, op: BatchOp, entries: &[SgEntry]) -> Result<(Response, Vec<SgEntry>)> {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
        let mut payload = scatter::encode(op, entries);
        let n = self
            .fd
            .call_rw(&mut payload, syscall::CallFlags::empty(), &[])
            .map_err(errno)?;
        let head = payload.get(..RESPONSE_SIZE.min(n)).unwrap_or_default();
        let resp = Response::decode(head).map_err(|_| Error::new(EBADMSG))?;
        resp.result()?;
        if { resp.kind } != Opcode::Batch.as_u16() {
            return Err(Error::new(EBADMSG));
        }
        Ok((resp, scatter::read_entries(&payload, entries.len())))
    }

    fn unmap_batch(&self, iovas: &[u64]) -> Result<u64> {
        let entries: Vec<SgEntry> = iovas
            .iter()
            .map(|&iova| SgEntry {
                iova,
                ..SgEntry::default()
            })
            .collect();
        Ok(self.batch(BatchOp::Unmap, &entries)?.0.arg2)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        // A panic while holding the lock leaves a plain list behind.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Unmaps queued and not yet sent.
    pub fn queued_unmaps(&self) -> usize {
        self.pending().len()
    }
}

impl Drop for IommuDomainMapper {
    fn drop(&mut self) {
        if let Err(e) = self.flush_unmaps() {
            log::warn!("dma: sending queued unmaps of domain {}: {e}", self.domain);
        }
    }
}

impl IommuMapper for IommuDomainMapper {
    fn map(&self, phys: u64, size: u64, flags: MapFlags, iova_hint: Option<u64>) -> Result<u64> {
        let req = RawRequest::new(
            Opcode::Map,
            flags.bits(),
            phys,
            size,
            iova_hint.unwrap_or(0),
        );
        Ok(self.exchange(&req)?.arg1)
    }

    fn unmap(&self, iova: u64) -> Result<u64> {
        let req = RawRequest::new(Opcode::Unmap, 0, iova, 0, 0);
        Ok(self.exchange(&req)?.arg2)
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
            let op = BatchOp::Map {
                flags,
                source: Source::Physical,
            };
            match self.batch(op, &entries) {
                Ok((_, done)) => out.extend(done.iter().map(|e| e.iova)),
                Err(e) => {
                    // Earlier chunks went through: all or nothing for the caller too.
                    for done in out.chunks(MAX_RANGES) {
                        let _ = self.unmap_batch(done);
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
            total += self.unmap_batch(chunk)?;
        }
        Ok(total)
    }

    fn queue_unmap(&self, iova: u64) -> Result<()> {
        let full = {
            let mut pending = self.pending();
            pending.push(iova);
            (pending.len() >= MAX_RANGES).then(|| std::mem::take(&mut *pending))
        };
        match full {
            Some(batch) => self.unmap_batch(&batch).map(|_| ()),
            None => Ok(()),
        }
    }

    fn flush_unmaps(&self) -> Result<usize> {
        let batch = std::mem::take(&mut *self.pending());
        if batch.is_empty() {
            return Ok(0);
        }
        self.unmap_batch(&batch)?;
        Ok(batch.len())
    }

    fn translates(&self) -> bool {
        true
    }

    fn domain(&self) -> Option<u16> {
        Some(self.domain)
    }
}

/// The mapper for the PCI function whose pcid channel is `channel`: a new
/// domain of this process with the function assigned by its channel — or,
/// when no `iommu` scheme exists (or `no_iommu` is set, the `NO_IOMMU`
/// quirk), passthrough, with a warning.
pub fn channel_mapper(channel: usize, no_iommu: bool) -> Result<Box<dyn IommuMapper>> {
    if no_iommu {
        log::warn!("dma: NO_IOMMU quirk: device DMA is not isolated (passthrough)");
        return Ok(Box::new(Passthrough));
    }
    match IommuDomainMapper::open_new() {
        Ok(m) => {
            m.assign_channel(channel)?;
            Ok(Box::new(m))
        }
        Err(e) if e.errno == ENOENT => {
            log::warn!("dma: no iommu scheme: device DMA is not isolated (passthrough)");
            Ok(Box::new(Passthrough))
        }
        Err(e) => Err(e),
    }
}

/// The mapper for fixed domain `domain` (the v1 way; a driver should use
/// [`channel_mapper`]), or — when no `iommu` scheme exists (or `no_iommu` is
/// set, the `NO_IOMMU` quirk) — passthrough, with a warning.
pub fn domain_mapper(domain: u16, no_iommu: bool) -> Result<Box<dyn IommuMapper>> {
    if no_iommu {
        log::warn!("dma: NO_IOMMU quirk: device DMA is not isolated (passthrough)");
        return Ok(Box::new(Passthrough));
    }
    match IommuDomainMapper::open(domain) {
        Ok(m) => Ok(Box::new(m)),
        Err(e) if e.errno == ENOENT => {
            log::warn!("dma: no iommu scheme: device DMA is not isolated (passthrough)");
            Ok(Box::new(Passthrough))
        }
        Err(e) => Err(e),
    }
}
