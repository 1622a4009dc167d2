//! Typed clients of scheme `iommu`: [`IommuDomain`] (one domain: map, unmap,
//! translate, assign devices) and [`IommuControl`] (domains, units, events).
//! Both speak the v1 wire format of [`crate::protocol`] over libredox fds:
//! write a 32-byte request, read the 36-byte response.

use libredox::{Fd, flag};
use syscall::error::{EBADMSG, EIO, Error, Result};

use crate::bdf::Bdf;
use crate::drain::DrainedEvents;
use crate::flush_queue::Invalidation;
use crate::protocol::{MapFlags, Opcode, RESPONSE_SIZE, Request, Response};
use crate::scatter::{self, BatchOp, SgEntry, Source};

fn errno(e: libredox::error::Error) -> Error {
    Error::new(e.errno())
}

/// One request channel.
struct Channel(Fd);

impl core::fmt::Debug for Channel {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_tuple("Channel").field(&self.0.raw()).finish()
    }
}

impl Channel {
    fn open(path: &str) -> Result<Self> {
        Fd::open(path, flag::O_RDWR | flag::O_CLOEXEC, 0)
            .map(Channel)
            .map_err(errno)
    }

    /// One exchange; a `-errno` status becomes `Err(errno)`.
    fn exchange(&self, request: &Request) -> Result<Response> {
        let bytes = request.encode();
        if self.0.write(&bytes).map_err(errno)? != bytes.len() {
            return Err(Error::new(EIO));
        }
        let mut buf = [0u8; RESPONSE_SIZE];
        if self.0.read(&mut buf).map_err(errno)? != RESPONSE_SIZE {
            return Err(Error::new(EBADMSG));
        }
        let response = Response::decode(&buf).map_err(|_| Error::new(EBADMSG))?;
        response.result()?;
        if { response.kind } != request.opcode().as_u16() {
            return Err(Error::new(EBADMSG));
        }
        Ok(response)
    }

    /// One BATCH `call` ([`crate::scatter`]): the list goes out and comes
    /// back answered in the same buffer.
    fn batch(&self, op: BatchOp, entries: &[SgEntry]) -> Result<(Response, Vec<SgEntry>)> {
        let mut payload = scatter::encode(op, entries);
        let n =
            libredox::call::call_rw(self.0.raw(), &mut payload, syscall::CallFlags::empty(), &[])
                .map_err(errno)?;
        let head = payload.get(..RESPONSE_SIZE.min(n)).unwrap_or_default();
        let response = Response::decode(head).map_err(|_| Error::new(EBADMSG))?;
        response.result()?;
        if { response.kind } != Opcode::Batch.as_u16() {
            return Err(Error::new(EBADMSG));
        }
        Ok((response, scatter::read_entries(&payload, entries.len())))
    }
}

/// What QUERY says about a domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DomainInfo {
    /// Root table physical address.
    pub root: u64,
    /// Page-table levels.
    pub levels: u8,
    /// Live mappings.
    pub mappings: u64,
}

/// What QUERY_SPACE says is left of a domain's IOVA space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SpaceInfo {
    /// IOVA windows of the domain (query each with [`IommuDomain::window`]).
    pub windows: u32,
    /// IOVA bytes still free under the domain's DMA mask.
    pub free_bytes: u64,
    /// Live mappings.
    pub mappings: u64,
    /// The largest free range.
    pub largest_free_range: u64,
}

/// One IOVA window's free space: `(start, end, free bytes)`.
pub type WindowSpace = (u64, u64, u64);

/// A client of one domain: `/scheme/iommu/domain/new` (iommud picks the id;
/// the domain belongs to this process) or `domain/<id>`.
#[derive(Debug)]
pub struct IommuDomain {
    channel: Channel,
    scheme: String,
    id: u16,
}

impl IommuDomain {
    /// Creates a domain of this process in `/scheme/iommu`; iommud picks its
    /// id, so no other process can have taken it first.
    pub fn open_new() -> Result<Self> {
        Self::open_new_in("iommu")
    }

    /// [`open_new`](Self::open_new) in the scheme called `scheme`.
    pub fn open_new_in(scheme: &str) -> Result<Self> {
        let channel = Channel::open(&format!("/scheme/{scheme}/domain/new"))?;
        let id = u16::try_from(channel.exchange(&Request::Query)?.arg0)
            .map_err(|_| Error::new(EBADMSG))?;
        Ok(Self {
            channel,
            scheme: scheme.into(),
            id,
        })
    }

    /// Opens domain `id` of `/scheme/iommu`: creates it if the id is free,
    /// `EACCES` if another process owns it.
    pub fn open(id: u16) -> Result<Self> {
        Self::open_in("iommu", id)
    }

    /// Opens domain `id` of the scheme called `scheme`.
    pub fn open_in(scheme: &str, id: u16) -> Result<Self> {
        Ok(Self {
            channel: Channel::open(&format!("/scheme/{scheme}/domain/{id}"))?,
            scheme: scheme.into(),
            id,
        })
    }

    /// The domain id.
    pub fn id(&self) -> u16 {
        self.id
    }

    /// Sends any request on the domain channel.
    pub fn exchange(&self, request: &Request) -> Result<Response> {
        self.channel.exchange(request)
    }

    /// Maps `size` bytes at `phys`; returns the IOVA (`iova` asks for one).
    pub fn map(&self, phys: u64, size: u64, flags: MapFlags, iova: Option<u64>) -> Result<u64> {
        let r = self.exchange(&Request::Map {
            flags,
            phys,
            size,
            iova,
        })?;
        Ok(r.arg1)
    }

    /// ALLOC: `size` bytes of memory iommud allocates and maps into this
    /// domain (no root needed); returns the IOVA. Map the memory into this
    /// process with `mmap` on this domain's fd, offset = the IOVA.
    pub fn alloc(&self, size: u64, flags: MapFlags) -> Result<u64> {
        Ok(self
            .exchange(&Request::Alloc {
                flags,
                size,
                iova: None,
            })?
            .arg1)
    }

    /// BATCH MAP of up to [`scatter::MAX_RANGES`] ranges in one round trip:
    /// every range is mapped or none is. `source` says what each entry's
    /// `addr` is (raw physical: root only; [`Source::Buffer`]: an IOVA inside
    /// one of this domain's ALLOC buffers). Returns the entries with their
    /// IOVAs.
    pub fn map_sg(
        &self,
        entries: &[SgEntry],
        flags: MapFlags,
        source: Source,
    ) -> Result<Vec<SgEntry>> {
        Ok(self
            .channel
            .batch(BatchOp::Map { flags, source }, entries)?
            .1)
    }

    /// BATCH UNMAP of the mappings starting at `iovas`, in one round trip;
    /// nothing is unmapped unless every one is a mapping. Returns the bytes
    /// unmapped.
    pub fn unmap_sg(&self, iovas: &[u64]) -> Result<u64> {
        let entries: Vec<SgEntry> = iovas
            .iter()
            .map(|&iova| SgEntry {
                iova,
                ..SgEntry::default()
            })
            .collect();
        Ok(self.channel.batch(BatchOp::Unmap, &entries)?.0.arg2)
    }

    /// Unmaps the mapping starting at `iova`; returns its size.
    pub fn unmap(&self, iova: u64) -> Result<u64> {
        Ok(self.exchange(&Request::Unmap { iova })?.arg2)
    }

    /// The physical address `iova` translates to (`ENOENT`: unmapped).
    pub fn translate(&self, iova: u64) -> Result<u64> {
        Ok(self.exchange(&Request::Translate { iova })?.arg2)
    }

    /// Root, levels and mapping count.
    pub fn query(&self) -> Result<DomainInfo> {
        let r = self.exchange(&Request::Query)?;
        Ok(DomainInfo {
            root: r.arg1,
            levels: r.arg2 as u8,
            mappings: r.arg3,
        })
    }

    /// What is left of the IOVA space.
    pub fn space(&self) -> Result<SpaceInfo> {
        let r = self.exchange(&Request::QuerySpace { window: None })?;
        Ok(SpaceInfo {
            windows: r.arg0,
            free_bytes: r.arg1,
            mappings: r.arg2,
            largest_free_range: r.arg3,
        })
    }

    /// Window `index`'s free space.
    pub fn window(&self, index: u32) -> Result<WindowSpace> {
        let r = self.exchange(&Request::QuerySpace {
            window: Some(index),
        })?;
        Ok((r.arg1, r.arg2, r.arg3))
    }

    /// Chooses strict or lazy invalidation.
    pub fn set_invalidation(&self, mode: Invalidation) -> Result<()> {
        self.exchange(&Request::SetInvalidation {
            lazy: mode == Invalidation::Lazy,
        })?;
        Ok(())
    }

    /// Flushes deferred unmaps now; returns how many IOVAs were released.
    pub fn flush(&self) -> Result<u64> {
        Ok(self.exchange(&Request::Flush)?.arg1)
    }

    /// Sets the mapped-bytes quota (root only).
    pub fn set_quota(&self, bytes: u64) -> Result<()> {
        self.exchange(&Request::SetQuota { bytes })?;
        Ok(())
    }

    fn device(&self, bdf: Bdf) -> Result<Channel> {
        Channel::open(&format!("/scheme/{}/device/{bdf}", self.scheme))
    }

    /// Assigns the PCI function whose pcid channel is `channel` (an fd of
    /// `/scheme/pci/<addr>/channel`, e.g. the one pcid-spawner hands a driver
    /// in `PCID_CLIENT_CHANNEL`) to this domain. The channel is passed to
    /// iommud by fd passing (`SYS_CALL` with `CallFlags::FD | FD_CLONE`: the
    /// caller keeps its channel); iommud asks it which function it is and
    /// assigns exactly that one. Needs no uid: holding the channel is the proof.
    pub fn assign_channel(&self, channel: usize) -> Result<()> {
        libredox::call::call_wo(
            self.channel.0.raw(),
            &channel.to_ne_bytes(),
            syscall::CallFlags::FD | syscall::CallFlags::FD_CLONE,
            &[],
        )
        .map_err(errno)?;
        Ok(())
    }

    /// Assigns device `bdf` to this domain by BDF (the v1 opcode: root only,
    /// and only for a device no domain holds; prefer
    /// [`assign_channel`](Self::assign_channel)).
    pub fn assign(&self, bdf: Bdf) -> Result<()> {
        self.device(bdf)?.exchange(&Request::AssignDevice {
            domain: self.id,
            unit: None,
        })?;
        Ok(())
    }

    /// Detaches device `bdf` (its DMA is blocked afterwards).
    pub fn unassign(&self, bdf: Bdf) -> Result<()> {
        self.device(bdf)?.exchange(&Request::UnassignDevice)?;
        Ok(())
    }

    /// Drains every unit's events: how many, and the first one, vendor-neutral.
    pub fn drain_events(&self) -> Result<DrainedEvents> {
        IommuControl::open_in(&self.scheme)?.drain_events(None)
    }
}

/// A client of `/scheme/iommu/control`.
#[derive(Debug)]
pub struct IommuControl {
    channel: Channel,
}

impl IommuControl {
    /// Opens `/scheme/iommu/control`.
    pub fn open() -> Result<Self> {
        Self::open_in("iommu")
    }

    /// Opens the control channel of the scheme called `scheme`.
    pub fn open_in(scheme: &str) -> Result<Self> {
        Ok(Self {
            channel: Channel::open(&format!("/scheme/{scheme}/control"))?,
        })
    }

    /// Sends any request on the control channel.
    pub fn exchange(&self, request: &Request) -> Result<Response> {
        self.channel.exchange(request)
    }

    /// Creates a domain (`None`: any free id); returns its id.
    pub fn create_domain(&self, id: Option<u16>) -> Result<u16> {
        Ok(self.exchange(&Request::CreateDomain { id })?.arg0 as u16)
    }

    /// Destroys a domain (`EBUSY` while devices are assigned).
    pub fn destroy_domain(&self, id: u16) -> Result<()> {
        self.exchange(&Request::DestroyDomain { id })?;
        Ok(())
    }

    /// Drains the events of `unit` (`None`: all units): how many, and the
    /// first one as a vendor-neutral [`DrainedEvent`](crate::drain::DrainedEvent)
    /// (device, address, cause, direction, and the vendor's own code with its
    /// vendor). Asks with [`DRAIN_NEUTRAL`](crate::drain::DRAIN_NEUTRAL); a
    /// daemon that ignores it (v1) leaves vendor, unit and cause unsaid.
    pub fn drain_events(&self, unit: Option<u32>) -> Result<DrainedEvents> {
        let r = self.exchange(&Request::DrainEvents {
            unit,
            neutral: true,
        })?;
        Ok(DrainedEvents::from_response(&r))
    }
}
