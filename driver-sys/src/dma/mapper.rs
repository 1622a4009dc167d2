//! Mapping memory for a device: the IOMMU domain, or nothing.
//!
//! [`IommuMapper`] is the narrow interface the DMA allocator needs. Two
//! implementations: [`IommuDomainMapper`] speaks the `iommu` scheme's v1 wire
//! protocol (`iommu::protocol`) on an fd of `/scheme/iommu/domain/new` (a
//! domain of this process, id chosen by iommud) — write a 32-byte request, read
//! the 36-byte response — with the function assigned by passing iommud its pcid
//! channel ([`channel_mapper`]); and [`Passthrough`], used when there is no
//! IOMMU (the bus address is the physical address).

use std::sync::atomic::{AtomicU64, Ordering};

use iommu::protocol::{MapFlags, Opcode, RESPONSE_SIZE, RawRequest, Response};
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
