//! DRAIN_EVENTS (opcode `0x30`) answers, vendor-neutral.
//!
//! The v1 answer (Red Bear's) carries the first event as the unit logged it:
//! `arg1` the vendor's code, `arg2` the requester id, `arg3` the address. The
//! code alone cannot be read without knowing which vendor's unit logged it
//! (AMD event code 2 is an I/O page fault, VT-d fault reason 2 a context
//! entry that is not present), and neither code tells a missing page from a
//! missing permission on AMD-Vi (that is a flag of the event-log entry). So a
//! request with [`DRAIN_NEUTRAL`] in `arg1` (an iommud addition; v1 clients
//! send 0 and get the v1 answer, byte for byte) gets the same 36-byte
//! answer with the vendor-neutral facts in bits the v1 answer leaves zero:
//!
//! | field | bits | v1 | with [`DRAIN_NEUTRAL`] |
//! |---|---|---|---|
//! | `arg0` | 31:0 | events drained | the same |
//! | `arg1` | 15:0 | first event's vendor code | the same |
//! | `arg1` | 23:16 | 0 | cause: 1 not present, 2 permission, 3 other |
//! | `arg1` | 24 | 0 | the access was a write |
//! | `arg1` | 39:32 | 0 | vendor: 1 AMD-Vi, 2 VT-d |
//! | `arg1` | 63:48 | 0 | index of the unit that logged it |
//! | `arg2` | 15:0 | first event's requester id | the same |
//! | `arg2` | 31:16 | 0 | domain id the unit used |
//! | `arg3` | 63:0 | first event's address | the same |
//!
//! With no event drained every argument but `arg0` is 0.

use crate::bdf::Bdf;
use crate::protocol::Response;
use crate::unit::{FaultCause, UnitFault, Vendor};

/// DRAIN_EVENTS request `arg1` bit: answer with the vendor-neutral fields.
pub const DRAIN_NEUTRAL: u64 = 1;

const CAUSE_SHIFT: u32 = 16;
const WRITE_BIT: u64 = 1 << 24;
const VENDOR_SHIFT: u32 = 32;
const UNIT_SHIFT: u32 = 48;
const DOMAIN_SHIFT: u32 = 16;

const fn cause_wire(cause: FaultCause) -> u64 {
    match cause {
        FaultCause::NotPresent => 1,
        FaultCause::Permission => 2,
        FaultCause::Other => 3,
    }
}

const fn vendor_wire(vendor: Vendor) -> u64 {
    match vendor {
        Vendor::AmdVi => 1,
        Vendor::Vtd => 2,
    }
}

/// One drained event, whatever unit logged it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainedEvent {
    /// The device that attempted the access.
    pub device: Bdf,
    /// The DMA address (IOVA) it used.
    pub address: u64,
    /// What went wrong ([`FaultCause::Other`] for an event that is not a
    /// translation fault, and for an answer that did not say).
    pub cause: FaultCause,
    /// A write (else a read, or not said).
    pub write: bool,
    /// The domain id the unit used (0 when not said).
    pub domain_id: u16,
    /// The vendor of the unit that logged it (`None`: the answer did not
    /// say, as a v1 daemon's does not).
    pub vendor: Option<Vendor>,
    /// The index of the unit that logged it (`None`: not said).
    pub unit: Option<u16>,
    /// The vendor's own code: the AMD-Vi event code or the VT-d fault
    /// reason (read it with [`vendor`](Self::vendor)).
    pub code: u16,
}

impl DrainedEvent {
    /// The event unit `unit` (a `vendor` unit) logged as `fault`.
    pub fn of(unit: usize, vendor: Vendor, fault: &UnitFault) -> Self {
        Self {
            device: Bdf::from_requester_id(fault.requester_id),
            address: fault.address,
            cause: fault.cause,
            write: fault.write,
            domain_id: fault.domain_id,
            vendor: Some(vendor),
            unit: u16::try_from(unit).ok(),
            code: fault.code,
        }
    }
}

/// A DRAIN_EVENTS answer: how many events, and the first of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainedEvents {
    /// Events drained.
    pub count: u32,
    /// The first of them (`None` when none was).
    pub first: Option<DrainedEvent>,
}

impl DrainedEvents {
    /// The answer's `arg0..=arg3`: the v1 fields, plus the vendor-neutral
    /// ones when `neutral` (the request had [`DRAIN_NEUTRAL`]).
    pub fn to_args(&self, neutral: bool) -> (u32, u64, u64, u64) {
        let Some(e) = self.first else {
            return (self.count, 0, 0, 0);
        };
        let mut arg1 = u64::from(e.code);
        let mut arg2 = u64::from(e.device.requester_id());
        if neutral {
            arg1 |= cause_wire(e.cause) << CAUSE_SHIFT;
            if e.write {
                arg1 |= WRITE_BIT;
            }
            arg1 |= e.vendor.map_or(0, vendor_wire) << VENDOR_SHIFT;
            arg1 |= e.unit.map_or(0, u64::from) << UNIT_SHIFT;
            arg2 |= u64::from(e.domain_id) << DOMAIN_SHIFT;
        }
        (self.count, arg1, arg2, e.address)
    }

    /// Reads a successful DRAIN_EVENTS answer. Fields a v1 answer leaves
    /// zero read as "not said": no vendor or unit, cause
    /// [`FaultCause::Other`], a read.
    pub fn from_response(r: &Response) -> Self {
        let (count, arg1, arg2, address) = (r.arg0, r.arg1, r.arg2, r.arg3);
        let first = (count > 0).then(|| {
            let vendor = match (arg1 >> VENDOR_SHIFT) as u8 {
                1 => Some(Vendor::AmdVi),
                2 => Some(Vendor::Vtd),
                _ => None,
            };
            let cause = match (arg1 >> CAUSE_SHIFT) as u8 {
                1 => FaultCause::NotPresent,
                2 => FaultCause::Permission,
                _ => FaultCause::Other,
            };
            DrainedEvent {
                device: Bdf::from_requester_id(arg2 as u16),
                address,
                cause,
                write: arg1 & WRITE_BIT != 0,
                domain_id: (arg2 >> DOMAIN_SHIFT) as u16,
                unit: vendor.map(|_| (arg1 >> UNIT_SHIFT) as u16),
                vendor,
                code: arg1 as u16,
            }
        });
        Self { count, first }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Opcode;

    fn fault(cause: FaultCause, write: bool, code: u16) -> UnitFault {
        UnitFault {
            requester_id: 0x28,
            domain_id: 7,
            address: 0x1234_5000,
            write,
            cause,
            code,
        }
    }

    fn answer(d: &DrainedEvents, neutral: bool) -> Response {
        let (a0, a1, a2, a3) = d.to_args(neutral);
        Response::ok(Opcode::DrainEvents, a0, a1, a2, a3)
    }

    #[test]
    fn the_v1_answer_is_code_requester_id_address_and_nothing_else() {
        let d = DrainedEvents {
            count: 3,
            first: Some(DrainedEvent::of(
                1,
                Vendor::AmdVi,
                &fault(FaultCause::Permission, true, 2),
            )),
        };
        assert_eq!(d.to_args(false), (3, 2, 0x28, 0x1234_5000));
        let read = DrainedEvents::from_response(&answer(&d, false));
        let e = read.first.expect("an event");
        assert_eq!((read.count, e.code, e.address), (3, 2, 0x1234_5000));
        assert_eq!(e.device, Bdf::from_requester_id(0x28));
        assert_eq!((e.vendor, e.unit, e.cause), (None, None, FaultCause::Other));
        assert!(!e.write);
    }

    #[test]
    fn the_neutral_answer_round_trips_for_both_vendors_and_every_cause() {
        for vendor in [Vendor::AmdVi, Vendor::Vtd] {
            for cause in [
                FaultCause::NotPresent,
                FaultCause::Permission,
                FaultCause::Other,
            ] {
                for write in [false, true] {
                    let d = DrainedEvents {
                        count: u32::MAX,
                        first: Some(DrainedEvent::of(3, vendor, &fault(cause, write, 0x1f))),
                    };
                    let (_, arg1, arg2, _) = d.to_args(true);
                    assert_eq!(arg1 as u16, 0x1f, "the v1 code bits are unchanged");
                    assert_eq!(arg2 as u16, 0x28, "the v1 requester id bits are unchanged");
                    assert_eq!(DrainedEvents::from_response(&answer(&d, true)), d);
                }
            }
        }
    }

    #[test]
    fn no_event_is_all_zero_but_the_count() {
        let none = DrainedEvents::default();
        assert_eq!(none.to_args(true), (0, 0, 0, 0));
        assert_eq!(DrainedEvents::from_response(&answer(&none, true)), none);
    }
}
