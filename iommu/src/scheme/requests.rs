//! Executing one request on a handle: the opcode table of
//! [`crate::protocol`], on top of [`Iommu`].

use syscall::error::{EACCES, EOPNOTSUPP, Error, Result};

use crate::access::Client;
use crate::bdf::Bdf;
use crate::drain::{DrainedEvent, DrainedEvents};
use crate::flush_queue::Invalidation;
use crate::protocol::{DecodeError, Opcode, Request, Response};
use crate::scatter::{self, Batch, BatchError, BatchOp, SgEntry};
use crate::service::Iommu;

/// What a request channel is bound to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// `control`.
    Control,
    /// `domain/<id>`.
    Domain(u16),
    /// `device/<bdf>`.
    Device(Bdf),
}

/// What a domain handle may do, decided at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// The owner's handle (or a control/device handle): everything the
    /// service allows its opener.
    Full,
    /// Root's read-only handle on another process's domain: QUERY and
    /// QUERY_SPACE only.
    QueryOnly,
}

/// Decodes `bytes` and executes the request for `client`, the opener the
/// handle recorded at open, with the handle's `access`. The request's own
/// caller context is never consulted. Never fails: errors become `-errno`
/// responses.
pub fn execute(
    iommu: &mut Iommu,
    target: Target,
    access: Access,
    client: Client,
    bytes: &[u8],
) -> Response {
    if is_batch(bytes) {
        // Its answer goes back into the caller's list: `call` only.
        return DecodeError::CallOnly(Opcode::Batch).response();
    }
    let request = match Request::decode(bytes) {
        Ok(r) => r,
        Err(e) => return e.response(),
    };
    let op = request.opcode();
    let read_only = matches!(request, Request::Query | Request::QuerySpace { .. });
    if access == Access::QueryOnly && !read_only {
        return Response::error(op.as_u16(), EACCES);
    }
    match run(iommu, target, client, request) {
        Ok(r) => r,
        Err(e) => Response::error(op.as_u16(), e.errno),
    }
}

/// Whether `bytes` start with the BATCH opcode.
pub fn is_batch(bytes: &[u8]) -> bool {
    bytes.get(..2) == Some(&Opcode::Batch.as_u16().to_le_bytes()[..])
}

/// Executes a BATCH `call` ([`crate::scatter`]) for `client` with the
/// handle's `access`, writing the answer into `payload` (at least
/// [`crate::protocol::RESPONSE_SIZE`] bytes: the caller checks).
pub fn execute_batch(
    iommu: &mut Iommu,
    target: Target,
    access: Access,
    client: Client,
    payload: &mut [u8],
) {
    let (response, entries) = match run_batch(iommu, target, access, client, payload) {
        Ok((response, entries)) => (response, entries),
        Err(e) => (e.response(), Vec::new()),
    };
    scatter::write_answer(payload, &response, &entries);
}

fn run_batch(
    iommu: &mut Iommu,
    target: Target,
    access: Access,
    client: Client,
    payload: &[u8],
) -> core::result::Result<(Response, Vec<SgEntry>), BatchError> {
    let mut batch = Batch::decode(payload)?;
    let Target::Domain(id) = target else {
        return Err(BatchError(EOPNOTSUPP));
    };
    if access == Access::QueryOnly {
        return Err(BatchError(EACCES));
    }
    let done = match batch.op {
        BatchOp::Map { flags, source } => {
            iommu.map_sg(id, client, flags, source, &mut batch.entries)
        }
        BatchOp::Unmap => iommu.unmap_sg(id, client, &mut batch.entries),
    };
    let bytes = done.map_err(|e| BatchError(e.errno))?;
    let count = batch.entries.len() as u64;
    let response = Response::ok(Opcode::Batch, u32::from(id), count, bytes, 0);
    Ok((response, batch.entries))
}

fn unit_index(unit: Option<u32>) -> Option<usize> {
    unit.map(|u| u as usize)
}

/// A domain read by QUERY/QUERY_SPACE: the owner's, or any for root (whose
/// handle on a domain not its own is read-only).
fn readable(iommu: &Iommu, id: u16, client: Client) -> Result<&crate::service::DomainState> {
    let d = iommu.domain(id)?;
    if client.owns(d.owner) || client.is_root() {
        Ok(d)
    } else {
        Err(Error::new(EACCES))
    }
}

fn root_only(client: Client) -> Result<()> {
    if client.is_root() {
        Ok(())
    } else {
        Err(Error::new(EACCES))
    }
}

fn run(iommu: &mut Iommu, target: Target, client: Client, request: Request) -> Result<Response> {
    let op = request.opcode();
    let ok = |a0: u32, a1: u64, a2: u64, a3: u64| Ok(Response::ok(op, a0, a1, a2, a3));
    match (target, request) {
        (Target::Control, Request::Query) => ok(
            iommu.units().len() as u32,
            iommu.domains().len() as u64,
            iommu.devices().len() as u64,
            iommu.initialised_units() as u64,
        ),
        (Target::Domain(id), Request::Query) => {
            let d = &readable(iommu, id, client)?.domain;
            ok(
                u32::from(id),
                d.root(),
                u64::from(d.levels()),
                d.mapping_count() as u64,
            )
        }
        (Target::Device(bdf), Request::Query) => {
            let a = iommu.devices().get(&bdf.requester_id()).copied();
            ok(
                a.map_or(0, |a| u32::from(a.domain)),
                a.map_or(u64::MAX, |a| a.unit as u64),
                u64::from(bdf.requester_id()),
                0,
            )
        }
        (Target::Control, Request::CreateDomain { id }) => {
            let id = iommu.create_domain(id, client)?;
            let d = &iommu.domain(id)?.domain;
            ok(u32::from(id), d.root(), u64::from(d.levels()), 0)
        }
        (Target::Control, Request::DestroyDomain { id }) => {
            iommu.destroy_domain(id, client)?;
            ok(u32::from(id), 0, 0, 0)
        }
        (Target::Control, Request::InitUnits { unit }) => {
            root_only(client)?;
            let (newly, attempted) = iommu.init_units(unit_index(unit))?;
            ok(
                newly,
                u64::from(attempted),
                iommu.initialised_units() as u64,
                unit.map_or(u64::MAX, u64::from),
            )
        }
        (Target::Control, Request::DrainEvents { unit, neutral }) => {
            // Draining consumes every client's events and shows their addresses.
            root_only(client)?;
            let drained = iommu.drain_events(unit_index(unit))?;
            let first = drained.first.and_then(|r| {
                let vendor = iommu.units().get(r.unit)?.vendor();
                Some(DrainedEvent::of(r.unit, vendor, &r.fault))
            });
            let answer = DrainedEvents {
                count: u32::try_from(drained.count).unwrap_or(u32::MAX),
                first,
            };
            let (a0, a1, a2, a3) = answer.to_args(neutral);
            ok(a0, a1, a2, a3)
        }
        (
            Target::Domain(id),
            Request::Map {
                flags,
                phys,
                size,
                iova,
            },
        ) => {
            let iova = iommu.map(id, client, phys, size, flags, iova)?;
            ok(u32::from(id), iova, size, 0)
        }
        (Target::Domain(id), Request::Alloc { flags, size, iova }) => {
            let iova = iommu.alloc(id, client, size, flags, iova)?;
            ok(u32::from(id), iova, size, 0)
        }
        (Target::Domain(id), Request::Unmap { iova }) => {
            let size = iommu.unmap(id, client, iova)?;
            ok(u32::from(id), iova, size, 0)
        }
        (Target::Domain(id), Request::Translate { iova }) => {
            let t = iommu.translate(id, client, iova)?;
            ok(u32::from(id), iova, t.phys, 0)
        }
        (Target::Domain(id), Request::SetInvalidation { lazy }) => {
            let mode = if lazy {
                Invalidation::Lazy
            } else {
                Invalidation::Strict
            };
            iommu.set_invalidation(id, client, mode)?;
            ok(u32::from(id), u64::from(mode.as_wire()), 0, 0)
        }
        (Target::Domain(id), Request::Flush) => {
            let released = iommu.flush_domain_for(id, client)?;
            ok(u32::from(id), released as u64, 0, 0)
        }
        (Target::Domain(id), Request::SetQuota { bytes }) => {
            iommu.set_quota(id, client, bytes)?;
            ok(u32::from(id), bytes, 0, 0)
        }
        (Target::Domain(id), Request::QuerySpace { window }) => {
            let d = &readable(iommu, id, client)?.domain;
            let windows = d.iova_usage();
            match window {
                None => {
                    let mask = d.config().dma_mask;
                    ok(
                        windows.len() as u32,
                        d.iova_free_bytes(),
                        d.mapping_count() as u64,
                        d.iova_allocator().largest_free_range(mask),
                    )
                }
                Some(i) => {
                    let w = windows
                        .get(i as usize)
                        .ok_or(Error::new(syscall::error::ENOENT))?;
                    ok(i, w.start, w.end, w.free_bytes)
                }
            }
        }
        (Target::Device(bdf), Request::AssignDevice { domain, unit }) => {
            let unit = unit.map(|u| usize::try_from(u).unwrap_or(usize::MAX));
            let unit = iommu.assign(bdf, domain, unit, client)?;
            ok(
                u32::from(domain),
                unit as u64,
                u64::from(bdf.requester_id()),
                0,
            )
        }
        (Target::Device(bdf), Request::UnassignDevice) => {
            let a = iommu.unassign(bdf, client)?;
            ok(
                u32::from(a.domain),
                u64::from(bdf.requester_id()),
                a.unit as u64,
                0,
            )
        }
        // A valid request on a handle it does not apply to.
        _ => Err(Error::new(EOPNOTSUPP)),
    }
}
