//! Executing one request on a handle: the opcode table of
//! [`crate::protocol`], on top of [`Iommu`].

use syscall::error::{EOPNOTSUPP, Error, Result};

use crate::bdf::Bdf;
use crate::flush_queue::Invalidation;
use crate::protocol::{Request, Response};
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

/// Decodes `bytes` and executes the request for `uid` (the uid recorded when
/// the handle was opened). Never fails: errors become `-errno` responses.
pub fn execute(iommu: &mut Iommu, target: Target, uid: u32, bytes: &[u8]) -> Response {
    let request = match Request::decode(bytes) {
        Ok(r) => r,
        Err(e) => return e.response(),
    };
    let op = request.opcode();
    match run(iommu, target, uid, request) {
        Ok(r) => r,
        Err(e) => Response::error(op.as_u16(), e.errno),
    }
}

fn unit_index(unit: Option<u32>) -> Option<usize> {
    unit.map(|u| u as usize)
}

fn run(iommu: &mut Iommu, target: Target, uid: u32, request: Request) -> Result<Response> {
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
            let d = &iommu.domain(id)?.domain;
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
            let id = iommu.create_domain(id, uid)?;
            let d = &iommu.domain(id)?.domain;
            ok(u32::from(id), d.root(), u64::from(d.levels()), 0)
        }
        (Target::Control, Request::DestroyDomain { id }) => {
            iommu.destroy_domain(id, uid)?;
            ok(u32::from(id), 0, 0, 0)
        }
        (Target::Control, Request::InitUnits { unit }) => {
            let (newly, attempted) = iommu.init_units(unit_index(unit))?;
            ok(
                newly,
                u64::from(attempted),
                iommu.initialised_units() as u64,
                unit.map_or(u64::MAX, u64::from),
            )
        }
        (Target::Control, Request::DrainEvents { unit }) => {
            let drained = iommu.drain_events(unit_index(unit))?;
            let first = drained.first;
            ok(
                u32::try_from(drained.count).unwrap_or(u32::MAX),
                first.map_or(0, |e| u64::from(e.code)),
                first.map_or(0, |e| u64::from(e.requester_id)),
                first.map_or(0, |e| e.address),
            )
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
            let iova = iommu.map(id, uid, phys, size, flags, iova)?;
            ok(u32::from(id), iova, size, 0)
        }
        (Target::Domain(id), Request::Unmap { iova }) => {
            let size = iommu.unmap(id, uid, iova)?;
            ok(u32::from(id), iova, size, 0)
        }
        (Target::Domain(id), Request::Translate { iova }) => {
            let t = iommu.translate(id, iova)?;
            ok(u32::from(id), iova, t.phys, 0)
        }
        (Target::Domain(id), Request::SetInvalidation { lazy }) => {
            let mode = if lazy {
                Invalidation::Lazy
            } else {
                Invalidation::Strict
            };
            iommu.set_invalidation(id, uid, mode)?;
            ok(u32::from(id), u64::from(mode.as_wire()), 0, 0)
        }
        (Target::Domain(id), Request::Flush) => {
            let released = iommu.flush_domain_for(id, uid)?;
            ok(u32::from(id), released as u64, 0, 0)
        }
        (Target::Domain(id), Request::SetQuota { bytes }) => {
            iommu.set_quota(id, uid, bytes)?;
            ok(u32::from(id), bytes, 0, 0)
        }
        (Target::Domain(id), Request::QuerySpace { window }) => {
            let d = &iommu.domain(id)?.domain;
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
            let unit = iommu.assign(bdf, domain, unit, uid)?;
            ok(
                u32::from(domain),
                unit as u64,
                u64::from(bdf.requester_id()),
                0,
            )
        }
        (Target::Device(bdf), Request::UnassignDevice) => {
            let a = iommu.unassign(bdf, uid)?;
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
