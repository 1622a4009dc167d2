//! The `iommu` scheme wire format, version 1 (Red Bear OS compatible).
//!
//! A client writes one 32-byte [`RawRequest`] to a handle and reads back one
//! 36-byte [`Response`]. Every integer is little-endian. The layouts and the
//! meaning of each argument follow the Red Bear OS `iommu` daemon, the only
//! Redox IOMMU daemon before this one, so its clients work unchanged:
//!
//! | opcode | handle | request | response (`status == 0`) |
//! |---|---|---|---|
//! | `0x00` QUERY | control | — | arg0 units, arg1 domains, arg2 assigned devices, arg3 initialised units |
//! | `0x00` QUERY | domain | — | arg0 domain id, arg1 root table phys, arg2 levels, arg3 mappings |
//! | `0x00` QUERY | device | — | arg0 domain id (0 = none), arg1 unit (`u64::MAX` = none), arg2 requester id |
//! | `0x01` CREATE_DOMAIN | control | arg0 wanted id, 0 = any | arg0 id, arg1 root phys, arg2 levels, arg3 mappings |
//! | `0x02` DESTROY_DOMAIN | control | arg0 id | arg0 id |
//! | `0x03` INIT_UNITS | control | arg0 unit, `u32::MAX` = all | arg0 newly initialised, arg1 attempted, arg2 initialised total, arg3 unit or `u64::MAX` |
//! | `0x10` MAP | domain | arg0 [`MapFlags`], arg1 phys, arg2 size, arg3 wanted IOVA or 0 | arg0 domain id, arg1 IOVA, arg2 size |
//! | `0x11` UNMAP | domain | arg1 IOVA | arg0 domain id, arg1 IOVA, arg2 size |
//! | `0x12` TRANSLATE | domain | arg1 IOVA | arg0 domain id, arg1 IOVA, arg2 phys |
//! | `0x20` ASSIGN_DEVICE | device | arg0 domain id, arg1 unit (`u64::MAX` = the unit that owns the device) | arg0 domain id, arg1 unit, arg2 requester id |
//! | `0x21` UNASSIGN_DEVICE | device | — | arg0 domain id, arg1 requester id, arg2 unit |
//! | `0x30` DRAIN_EVENTS | control | arg0 unit, `u32::MAX` = all; arg1 [`DRAIN_NEUTRAL`](crate::drain::DRAIN_NEUTRAL) or 0 | arg0 events drained, arg1 first event code, arg2 first requester id, arg3 first address (with `DRAIN_NEUTRAL`, also the vendor-neutral fields in bits v1 leaves zero: [`crate::drain`]) |
//! | `0x14` SET_INVALIDATION | domain | arg0 0 = strict, 1 = lazy | arg0 domain id, arg1 mode |
//! | `0x15` FLUSH | domain | — | arg0 domain id, arg1 deferred IOVAs released |
//! | `0x16` SET_QUOTA | domain | arg1 bytes (root only) | arg0 domain id, arg1 quota |
//! | `0x18` ALLOC | domain | arg0 [`MapFlags`], arg2 size, arg3 wanted IOVA or 0 | arg0 domain id, arg1 IOVA, arg2 size |
//! | `0x17` QUERY_SPACE | domain | arg0 window index, `u32::MAX` = summary | summary: arg0 windows, arg1 IOVA bytes free under the DMA mask, arg2 mappings, arg3 largest free range; window: arg0 index, arg1 start, arg2 end, arg3 bytes free |
//! | `0x19` BATCH | domain, `call` only | a scatter list of up to 64 ranges to map or unmap ([`crate::scatter`]) | arg0 domain id, arg1 ranges done, arg2 bytes; per range results in the list |
//!
//! Opcodes `0x14..=0x19` are this daemon's additions (Red Bear clients never
//! send them): per-domain invalidation mode, an explicit lazy flush, the
//! mapped-bytes quota, what is left of the IOVA space, and ALLOC: memory
//! iommud allocates and maps for the domain (any owner, root or not), which
//! the client then maps with `mmap` on the domain handle, offset = the IOVA.
//!
//! Beside the opcodes, a domain handle takes one more operation: **ASSIGN by
//! pcid channel**, which is fd passing, not a request (`SYS_CALL` with
//! `CallFlags::FD` on the domain handle, payload one fd number; use
//! `CallFlags::FD_CLONE` to keep the channel). iommud sends `RequestConfig`
//! on the channel and assigns the function pcid names. See
//! [`crate::client::IommuDomain::assign_channel`]. Who may send what is in
//! [`crate::service`] and the README.
//!
//! An error response carries `status = -errno`, `kind` = the request's opcode
//! (0 when the request was too short to have one) and zero arguments.
//!
//! Where this decoder is stricter than Red Bear's, it is on purpose and only
//! rejects requests a correct client never sends: a request longer than 32
//! bytes (Red Bear ignored the tail), MAP flag bits nobody defines, domain ids
//! above `u16::MAX` (Red Bear silently truncated them), and MAP/UNMAP ranges
//! that are not page aligned or wrap around the address space.

use syscall::error::{EINVAL, EOPNOTSUPP, EOVERFLOW, Error};

/// The only protocol version this crate speaks.
pub const PROTOCOL_VERSION: u16 = 1;
/// The size of a request on the wire.
pub const REQUEST_SIZE: usize = 32;
/// The size of a response on the wire.
pub const RESPONSE_SIZE: usize = 36;
/// IOMMU page size: every MAP/UNMAP address and size is a multiple of it.
pub const PAGE_SIZE: u64 = 4096;
/// `arg0`/`arg1` value meaning "every unit" / "the unit that owns the device".
pub const ALL_UNITS: u32 = u32::MAX;

/// Operation codes of protocol version 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum Opcode {
    /// Describe the control endpoint, a domain or a device (by handle).
    Query = 0x00,
    /// Create a domain (an I/O address space).
    CreateDomain = 0x01,
    /// Destroy a domain that has no device assigned.
    DestroyDomain = 0x02,
    /// Initialise one or all IOMMU units.
    InitUnits = 0x03,
    /// Map physical memory into a domain; returns the IOVA.
    Map = 0x10,
    /// Remove the mapping starting at an IOVA; returns its size.
    Unmap = 0x11,
    /// Look an IOVA up in a domain's page tables.
    Translate = 0x12,
    /// Point a device's device table entry at a domain.
    AssignDevice = 0x20,
    /// Detach a device from its domain (DMA blocked afterwards).
    UnassignDevice = 0x21,
    /// Choose strict or lazy invalidation for a domain (iommud addition).
    SetInvalidation = 0x14,
    /// Flush a lazy domain's deferred unmaps now (iommud addition).
    Flush = 0x15,
    /// Set a domain's mapped-bytes quota, root only (iommud addition).
    SetQuota = 0x16,
    /// What is left of a domain's IOVA space (iommud addition).
    QuerySpace = 0x17,
    /// Memory iommud allocates and maps for the domain (iommud addition).
    Alloc = 0x18,
    /// Map or unmap a scatter list in one request, `call` only (iommud
    /// addition; [`crate::scatter`]).
    Batch = 0x19,
    /// Drain the units' event logs (I/O page faults and other events).
    DrainEvents = 0x30,
}

impl Opcode {
    /// Every opcode, in wire order.
    pub const ALL: [Opcode; 16] = [
        Opcode::Query,
        Opcode::CreateDomain,
        Opcode::DestroyDomain,
        Opcode::InitUnits,
        Opcode::Map,
        Opcode::Unmap,
        Opcode::Translate,
        Opcode::SetInvalidation,
        Opcode::Flush,
        Opcode::SetQuota,
        Opcode::QuerySpace,
        Opcode::Alloc,
        Opcode::Batch,
        Opcode::AssignDevice,
        Opcode::UnassignDevice,
        Opcode::DrainEvents,
    ];

    /// The opcode for a wire value, if it is one.
    pub const fn from_u16(value: u16) -> Option<Self> {
        Some(match value {
            0x00 => Opcode::Query,
            0x01 => Opcode::CreateDomain,
            0x02 => Opcode::DestroyDomain,
            0x03 => Opcode::InitUnits,
            0x10 => Opcode::Map,
            0x11 => Opcode::Unmap,
            0x12 => Opcode::Translate,
            0x14 => Opcode::SetInvalidation,
            0x15 => Opcode::Flush,
            0x16 => Opcode::SetQuota,
            0x17 => Opcode::QuerySpace,
            0x18 => Opcode::Alloc,
            0x19 => Opcode::Batch,
            0x20 => Opcode::AssignDevice,
            0x21 => Opcode::UnassignDevice,
            0x30 => Opcode::DrainEvents,
            _ => return None,
        })
    }

    /// The wire value.
    pub const fn as_u16(self) -> u16 {
        self as u16
    }
}

/// MAP permission and attribute flags (request `arg0`).
///
/// A request with no flag at all means read + write, as in Red Bear.
/// `EXECUTE` and `USER` are accepted and remembered but have no AMD-Vi v1
/// page-table bit; `COHERENT` is accepted, and the leaf's FC bit is set on
/// every mapping anyway (as Linux does: x86 DMA is coherent).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct MapFlags(u32);

impl MapFlags {
    /// The device may read the memory (AMD-Vi IR).
    pub const READ: MapFlags = MapFlags(1);
    /// The device may write the memory (AMD-Vi IW).
    pub const WRITE: MapFlags = MapFlags(2);
    /// Execute permission (no AMD-Vi v1 bit; recorded only).
    pub const EXECUTE: MapFlags = MapFlags(4);
    /// Force coherent snooping (AMD-Vi FC).
    pub const COHERENT: MapFlags = MapFlags(8);
    /// Red Bear's user-accessible flag (no AMD-Vi v1 bit; recorded only).
    pub const USER: MapFlags = MapFlags(0x10);
    /// Read + write: what a request with `arg0 == 0` asks for.
    pub const READ_WRITE: MapFlags = MapFlags(3);
    const KNOWN: u32 = 0x1f;

    /// Decodes `arg0`: 0 means [`MapFlags::READ_WRITE`]; undefined bits are `EINVAL`.
    pub fn from_wire(bits: u32) -> Result<Self, Error> {
        if bits & !Self::KNOWN != 0 {
            return Err(Error::new(EINVAL));
        }
        Ok(if bits == 0 {
            Self::READ_WRITE
        } else {
            MapFlags(bits)
        })
    }

    /// The wire bits.
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// Whether every flag of `other` is set in `self`.
    pub const fn contains(self, other: MapFlags) -> bool {
        self.0 & other.0 == other.0
    }

    /// The union of both flag sets.
    pub const fn union(self, other: MapFlags) -> MapFlags {
        MapFlags(self.0 | other.0)
    }
}

/// The request as it sits on the wire (32 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed)]
pub struct RawRequest {
    /// [`Opcode`] value.
    pub opcode: u16,
    /// Must be [`PROTOCOL_VERSION`].
    pub version: u16,
    /// First argument (flags, ids).
    pub arg0: u32,
    /// Second argument (physical or IO virtual address).
    pub arg1: u64,
    /// Third argument (size).
    pub arg2: u64,
    /// Fourth argument (wanted IOVA).
    pub arg3: u64,
}
const _: () = assert!(size_of::<RawRequest>() == REQUEST_SIZE);

/// The response as it sits on the wire (36 bytes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed)]
pub struct Response {
    /// 0 on success, `-errno` on failure.
    pub status: i32,
    /// The opcode this answers (0 if the request had none).
    pub kind: u16,
    /// [`PROTOCOL_VERSION`].
    pub version: u16,
    /// First result (see the module table).
    pub arg0: u32,
    /// Second result.
    pub arg1: u64,
    /// Third result.
    pub arg2: u64,
    /// Fourth result.
    pub arg3: u64,
}
const _: () = assert!(size_of::<Response>() == RESPONSE_SIZE);

/// Why bytes could not be decoded. Each maps to the errno the response carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// Fewer bytes than the fixed size.
    Short,
    /// More bytes than the fixed size.
    Long,
    /// A version other than [`PROTOCOL_VERSION`].
    Version {
        /// The raw opcode, echoed in the error response.
        opcode: u16,
    },
    /// An opcode this version does not define.
    UnknownOpcode(u16),
    /// A defined opcode with arguments it cannot accept (bad flags, id out
    /// of range, unaligned range).
    InvalidArgument(Opcode),
    /// A range whose end wraps past `u64::MAX`.
    Overflow(Opcode),
    /// An opcode that only travels as a `call` (BATCH), written.
    CallOnly(Opcode),
}

impl DecodeError {
    /// The errno to answer with (positive).
    pub const fn errno(self) -> i32 {
        match self {
            DecodeError::Overflow(_) => EOVERFLOW,
            DecodeError::CallOnly(_) => EOPNOTSUPP,
            _ => EINVAL,
        }
    }

    /// The `kind` to put in the error response.
    pub const fn kind(self) -> u16 {
        match self {
            DecodeError::Short | DecodeError::Long => 0,
            DecodeError::Version { opcode } | DecodeError::UnknownOpcode(opcode) => opcode,
            DecodeError::InvalidArgument(op)
            | DecodeError::Overflow(op)
            | DecodeError::CallOnly(op) => op.as_u16(),
        }
    }

    /// The error response for this failure.
    pub const fn response(self) -> Response {
        Response::error(self.kind(), self.errno())
    }
}

impl From<DecodeError> for Error {
    fn from(error: DecodeError) -> Self {
        Error::new(error.errno())
    }
}

fn exact<const N: usize>(bytes: &[u8]) -> Result<&[u8], DecodeError> {
    match bytes.len() {
        n if n < N => Err(DecodeError::Short),
        n if n > N => Err(DecodeError::Long),
        _ => Ok(bytes),
    }
}

/// Reads little-endian fields front to back. The callers check the total
/// length first, so running short cannot happen; if it did, it would read
/// zeros rather than panic.
struct LeReader<'a>(&'a [u8]);

impl LeReader<'_> {
    fn array<const N: usize>(&mut self) -> [u8; N] {
        match self.0.split_first_chunk::<N>() {
            Some((head, tail)) => {
                self.0 = tail;
                *head
            }
            None => [0; N],
        }
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.array())
    }

    fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.array())
    }

    fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.array())
    }
}

/// Writes fields front to back into a fixed buffer.
fn put_fields<const N: usize>(fields: &[&[u8]]) -> [u8; N] {
    let mut out = [0u8; N];
    let mut rest: &mut [u8] = &mut out;
    for field in fields {
        if rest.len() < field.len() {
            break;
        }
        let (head, tail) = rest.split_at_mut(field.len());
        head.copy_from_slice(field);
        rest = tail;
    }
    out
}

impl RawRequest {
    /// A version-1 request.
    pub const fn new(opcode: Opcode, arg0: u32, arg1: u64, arg2: u64, arg3: u64) -> Self {
        Self {
            opcode: opcode as u16,
            version: PROTOCOL_VERSION,
            arg0,
            arg1,
            arg2,
            arg3,
        }
    }

    /// Decodes exactly [`REQUEST_SIZE`] bytes; checks only the length.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = LeReader(exact::<REQUEST_SIZE>(bytes)?);
        Ok(Self {
            opcode: r.u16(),
            version: r.u16(),
            arg0: r.u32(),
            arg1: r.u64(),
            arg2: r.u64(),
            arg3: r.u64(),
        })
    }

    /// Encodes to the wire layout.
    pub fn encode(&self) -> [u8; REQUEST_SIZE] {
        put_fields::<REQUEST_SIZE>(&[
            &{ self.opcode }.to_le_bytes(),
            &{ self.version }.to_le_bytes(),
            &{ self.arg0 }.to_le_bytes(),
            &{ self.arg1 }.to_le_bytes(),
            &{ self.arg2 }.to_le_bytes(),
            &{ self.arg3 }.to_le_bytes(),
        ])
    }
}

/// A decoded, validated request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request {
    /// QUERY: no arguments; the handle decides what is described.
    Query,
    /// CREATE_DOMAIN: `id` is the wanted domain id, `None` = any free id.
    CreateDomain {
        /// Wanted id (`arg0`, 0 = any).
        id: Option<u16>,
    },
    /// DESTROY_DOMAIN.
    DestroyDomain {
        /// Domain id (`arg0`).
        id: u16,
    },
    /// INIT_UNITS.
    InitUnits {
        /// Unit index (`arg0`), `None` = every unit.
        unit: Option<u32>,
    },
    /// MAP: `phys`, `size` and `iova` are page aligned, `size > 0`, and
    /// neither range wraps.
    Map {
        /// Permissions (`arg0`).
        flags: MapFlags,
        /// First physical address (`arg1`).
        phys: u64,
        /// Length in bytes (`arg2`).
        size: u64,
        /// Wanted IOVA (`arg3`), `None` = the allocator chooses.
        iova: Option<u64>,
    },
    /// UNMAP of the mapping that starts at `iova` (page aligned).
    Unmap {
        /// IOVA (`arg1`).
        iova: u64,
    },
    /// TRANSLATE of any byte address.
    Translate {
        /// IOVA (`arg1`).
        iova: u64,
    },
    /// SET_INVALIDATION (on a domain handle).
    SetInvalidation {
        /// `arg0`: 0 strict, 1 lazy.
        lazy: bool,
    },
    /// FLUSH (on a domain handle).
    Flush,
    /// SET_QUOTA (on a domain handle).
    SetQuota {
        /// `arg1`: most bytes mapped at once.
        bytes: u64,
    },
    /// QUERY_SPACE (on a domain handle).
    QuerySpace {
        /// `arg0`: a window index, `None` = the summary.
        window: Option<u32>,
    },
    /// ALLOC (on a domain handle): `size` is page aligned and not zero.
    Alloc {
        /// Permissions (`arg0`).
        flags: MapFlags,
        /// Length in bytes (`arg2`).
        size: u64,
        /// Wanted IOVA (`arg3`), `None` = the allocator chooses.
        iova: Option<u64>,
    },
    /// ASSIGN_DEVICE (on a `device/<bdf>` handle).
    AssignDevice {
        /// Domain id (`arg0`).
        domain: u16,
        /// Unit index (`arg1`), `None` = the unit that owns the device.
        unit: Option<u64>,
    },
    /// UNASSIGN_DEVICE (on a `device/<bdf>` handle).
    UnassignDevice,
    /// DRAIN_EVENTS.
    DrainEvents {
        /// Unit index (`arg0`), `None` = every unit.
        unit: Option<u32>,
        /// [`DRAIN_NEUTRAL`](crate::drain::DRAIN_NEUTRAL) in `arg1`: answer
        /// with the vendor-neutral fields too (an iommud addition).
        neutral: bool,
    },
}

fn page_aligned(value: u64) -> bool {
    value.is_multiple_of(PAGE_SIZE)
}

fn domain_id(op: Opcode, arg0: u32) -> Result<u16, DecodeError> {
    u16::try_from(arg0).map_err(|_| DecodeError::InvalidArgument(op))
}

impl Request {
    /// Decodes and validates exactly [`REQUEST_SIZE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        Self::from_raw(RawRequest::decode(bytes)?)
    }

    /// Validates a raw request.
    pub fn from_raw(raw: RawRequest) -> Result<Self, DecodeError> {
        let RawRequest {
            opcode,
            version,
            arg0,
            arg1,
            arg2,
            arg3,
        } = raw;
        if version != PROTOCOL_VERSION {
            return Err(DecodeError::Version { opcode });
        }
        let op = Opcode::from_u16(opcode).ok_or(DecodeError::UnknownOpcode(opcode))?;
        let unit32 = |v: u32| (v != ALL_UNITS).then_some(v);
        Ok(match op {
            Opcode::Query => Request::Query,
            Opcode::CreateDomain => {
                let id = domain_id(op, arg0)?;
                Request::CreateDomain {
                    id: (id != 0).then_some(id),
                }
            }
            Opcode::DestroyDomain => Request::DestroyDomain {
                id: domain_id(op, arg0)?,
            },
            Opcode::InitUnits => Request::InitUnits { unit: unit32(arg0) },
            Opcode::Map => {
                let flags =
                    MapFlags::from_wire(arg0).map_err(|_| DecodeError::InvalidArgument(op))?;
                let (phys, size) = (arg1, arg2);
                if size == 0 || !page_aligned(phys) || !page_aligned(size) || !page_aligned(arg3) {
                    return Err(DecodeError::InvalidArgument(op));
                }
                if phys.checked_add(size).is_none() || arg3.checked_add(size).is_none() {
                    return Err(DecodeError::Overflow(op));
                }
                Request::Map {
                    flags,
                    phys,
                    size,
                    iova: (arg3 != 0).then_some(arg3),
                }
            }
            Opcode::Unmap => {
                if !page_aligned(arg1) {
                    return Err(DecodeError::InvalidArgument(op));
                }
                Request::Unmap { iova: arg1 }
            }
            Opcode::Translate => Request::Translate { iova: arg1 },
            Opcode::SetInvalidation => match arg0 {
                0 | 1 => Request::SetInvalidation { lazy: arg0 == 1 },
                _ => return Err(DecodeError::InvalidArgument(op)),
            },
            Opcode::Flush => Request::Flush,
            Opcode::SetQuota => Request::SetQuota { bytes: arg1 },
            Opcode::QuerySpace => Request::QuerySpace {
                window: unit32(arg0),
            },
            Opcode::Alloc => {
                let flags =
                    MapFlags::from_wire(arg0).map_err(|_| DecodeError::InvalidArgument(op))?;
                if arg2 == 0 || !page_aligned(arg2) || !page_aligned(arg3) {
                    return Err(DecodeError::InvalidArgument(op));
                }
                if arg3.checked_add(arg2).is_none() {
                    return Err(DecodeError::Overflow(op));
                }
                Request::Alloc {
                    flags,
                    size: arg2,
                    iova: (arg3 != 0).then_some(arg3),
                }
            }
            // Its list does not fit a 32-byte request ([`crate::scatter`]).
            Opcode::Batch => return Err(DecodeError::CallOnly(op)),
            Opcode::AssignDevice => Request::AssignDevice {
                domain: domain_id(op, arg0)?,
                unit: (arg1 != u64::MAX).then_some(arg1),
            },
            Opcode::UnassignDevice => Request::UnassignDevice,
            Opcode::DrainEvents => Request::DrainEvents {
                unit: unit32(arg0),
                neutral: arg1 & crate::drain::DRAIN_NEUTRAL != 0,
            },
        })
    }

    /// The opcode of this request.
    pub const fn opcode(&self) -> Opcode {
        match self {
            Request::Query => Opcode::Query,
            Request::CreateDomain { .. } => Opcode::CreateDomain,
            Request::DestroyDomain { .. } => Opcode::DestroyDomain,
            Request::InitUnits { .. } => Opcode::InitUnits,
            Request::Map { .. } => Opcode::Map,
            Request::Unmap { .. } => Opcode::Unmap,
            Request::Translate { .. } => Opcode::Translate,
            Request::SetInvalidation { .. } => Opcode::SetInvalidation,
            Request::Flush => Opcode::Flush,
            Request::SetQuota { .. } => Opcode::SetQuota,
            Request::QuerySpace { .. } => Opcode::QuerySpace,
            Request::Alloc { .. } => Opcode::Alloc,
            Request::AssignDevice { .. } => Opcode::AssignDevice,
            Request::UnassignDevice => Opcode::UnassignDevice,
            Request::DrainEvents { .. } => Opcode::DrainEvents,
        }
    }

    /// The wire form (what a client writes).
    pub fn to_raw(&self) -> RawRequest {
        let op = self.opcode();
        let all = |unit: Option<u32>| unit.unwrap_or(ALL_UNITS);
        match *self {
            Request::Query | Request::UnassignDevice | Request::Flush => {
                RawRequest::new(op, 0, 0, 0, 0)
            }
            Request::SetInvalidation { lazy } => RawRequest::new(op, u32::from(lazy), 0, 0, 0),
            Request::SetQuota { bytes } => RawRequest::new(op, 0, bytes, 0, 0),
            Request::CreateDomain { id } => {
                RawRequest::new(op, u32::from(id.unwrap_or(0)), 0, 0, 0)
            }
            Request::DestroyDomain { id } => RawRequest::new(op, u32::from(id), 0, 0, 0),
            Request::InitUnits { unit } | Request::QuerySpace { window: unit } => {
                RawRequest::new(op, all(unit), 0, 0, 0)
            }
            Request::DrainEvents { unit, neutral } => {
                let arg1 = if neutral {
                    crate::drain::DRAIN_NEUTRAL
                } else {
                    0
                };
                RawRequest::new(op, all(unit), arg1, 0, 0)
            }
            Request::Map {
                flags,
                phys,
                size,
                iova,
            } => RawRequest::new(op, flags.bits(), phys, size, iova.unwrap_or(0)),
            Request::Alloc { flags, size, iova } => {
                RawRequest::new(op, flags.bits(), 0, size, iova.unwrap_or(0))
            }
            Request::Unmap { iova } | Request::Translate { iova } => {
                RawRequest::new(op, 0, iova, 0, 0)
            }
            Request::AssignDevice { domain, unit } => {
                RawRequest::new(op, u32::from(domain), unit.unwrap_or(u64::MAX), 0, 0)
            }
        }
    }

    /// The wire bytes.
    pub fn encode(&self) -> [u8; REQUEST_SIZE] {
        self.to_raw().encode()
    }
}

impl Response {
    /// A success response.
    pub const fn ok(kind: Opcode, arg0: u32, arg1: u64, arg2: u64, arg3: u64) -> Self {
        Self {
            status: 0,
            kind: kind as u16,
            version: PROTOCOL_VERSION,
            arg0,
            arg1,
            arg2,
            arg3,
        }
    }

    /// An error response: `status = -errno`, arguments zero.
    pub const fn error(kind: u16, errno: i32) -> Self {
        Self {
            status: -errno,
            kind,
            version: PROTOCOL_VERSION,
            arg0: 0,
            arg1: 0,
            arg2: 0,
            arg3: 0,
        }
    }

    /// `Ok(())` for status 0, else the errno it carries (positive
    /// status values, which no server sends, become `EINVAL`).
    pub fn result(&self) -> Result<(), Error> {
        let status = self.status;
        match status {
            0 => Ok(()),
            s if s < 0 => Err(Error::new(s.saturating_neg())),
            _ => Err(Error::new(EINVAL)),
        }
    }

    /// Decodes exactly [`RESPONSE_SIZE`] bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = LeReader(exact::<RESPONSE_SIZE>(bytes)?);
        Ok(Self {
            status: i32::from_le_bytes(r.array()),
            kind: r.u16(),
            version: r.u16(),
            arg0: r.u32(),
            arg1: r.u64(),
            arg2: r.u64(),
            arg3: r.u64(),
        })
    }

    /// Encodes to the wire layout.
    pub fn encode(&self) -> [u8; RESPONSE_SIZE] {
        put_fields::<RESPONSE_SIZE>(&[
            &{ self.status }.to_le_bytes(),
            &{ self.kind }.to_le_bytes(),
            &{ self.version }.to_le_bytes(),
            &{ self.arg0 }.to_le_bytes(),
            &{ self.arg1 }.to_le_bytes(),
            &{ self.arg2 }.to_le_bytes(),
            &{ self.arg3 }.to_le_bytes(),
        ])
    }
}
