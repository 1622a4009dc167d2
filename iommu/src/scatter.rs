//! BATCH (opcode `0x19`, an iommud addition to protocol v1): one request that
//! maps or unmaps a scatter list of up to [`MAX_RANGES`] ranges, so a driver
//! pays one round trip per I/O instead of one per buffer and direction.
//!
//! BATCH travels only as a `call` on a domain handle: its answer (the IOVAs)
//! is written back into the caller's own list, which a `write` has no room
//! for. Written, it is answered `-EOPNOTSUPP`.
//!
//! Wire layout (little-endian), the `call` payload:
//!
//! | offset | size | field |
//! |---|---|---|
//! | 0 | 32 | a v1 request head: `u16 opcode = 0x19`, `u16 version = 1`, `u32 arg0` = [`MapFlags`] bits 0..=4, plus [`BATCH_UNMAP`] (bit 8) or [`BATCH_FROM_BUFFER`] (bit 9); `u64 arg1` = count; `u64 arg2 = 0`, `u64 arg3 = 0` |
//! | 32 | 8 | reserved, zero (so the 36-byte response fits in front of the list) |
//! | 40 + 24·i | 24 | entry `i`: `u64 addr`, `u64 size`, `u64 iova` |
//!
//! The payload is exactly `40 + 24 × count` bytes. MAP entries: `addr` is
//! the source (a physical address, root only; with [`BATCH_FROM_BUFFER`] an
//! IOVA inside one of the domain's ALLOC buffers), `size` the length, `iova`
//! the wanted IOVA or 0. UNMAP entries: `iova` is a mapping's start, `addr`
//! and `size` are 0. Every address and size is page aligned, sizes of MAP
//! entries are not zero, no range wraps.
//!
//! The answer overwrites the payload: bytes `0..36` are the response
//! (`status`, `kind = 0x19`, arg0 domain id, arg1 ranges done, arg2 bytes),
//! and on success each MAP entry's `iova` holds the IOVA it got, each UNMAP
//! entry's `size` the size it had. On failure the entries are left as sent.
//!
//! Semantics are those of Linux's `dma_map_sg`: a MAP batch maps every range
//! or none (a failing range rolls back those before it); an UNMAP batch is
//! checked whole before anything is unmapped (a range that is not a mapping's
//! start is `ENOENT`, the same IOVA twice `EINVAL`) and unmaps every range.
//! No ranges is `EINVAL`, more than [`MAX_RANGES`] is `E2BIG`.

use syscall::error::{E2BIG, EINVAL, EOVERFLOW};

use crate::protocol::{
    DecodeError, MapFlags, Opcode, PAGE_SIZE, PROTOCOL_VERSION, REQUEST_SIZE, RESPONSE_SIZE,
    RawRequest, Response,
};

/// Most ranges in one BATCH (`E2BIG` past it): one I/O's scatter list, and a
/// bound on the work one request makes iommud do.
pub const MAX_RANGES: usize = 64;
/// Bytes before the first entry: the request head and 8 reserved bytes.
pub const HEAD_SIZE: usize = 40;
/// Bytes per entry.
pub const ENTRY_SIZE: usize = 24;
/// `arg0` bit: the batch unmaps (no [`MapFlags`] bits allowed with it).
pub const BATCH_UNMAP: u32 = 1 << 8;
/// `arg0` bit: MAP sources are IOVAs inside the domain's ALLOC buffers, not
/// physical addresses.
pub const BATCH_FROM_BUFFER: u32 = 1 << 9;
const MAP_FLAG_BITS: u32 = 0x1f;

/// The payload size of a batch of `count` ranges.
pub const fn payload_size(count: usize) -> usize {
    HEAD_SIZE + count * ENTRY_SIZE
}

/// Where a MAP batch's ranges come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Raw physical addresses (root only).
    Physical,
    /// IOVAs inside memory iommud allocated for the domain (ALLOC).
    Buffer,
}

/// What a batch does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchOp {
    /// Map every range, or none.
    Map {
        /// Permissions of every range.
        flags: MapFlags,
        /// Where the sources are.
        source: Source,
    },
    /// Unmap every range.
    Unmap,
}

/// One range of the scatter list.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SgEntry {
    /// MAP: the source address; UNMAP: 0.
    pub addr: u64,
    /// MAP: length in bytes; UNMAP: 0 in, the size unmapped out.
    pub size: u64,
    /// MAP: wanted IOVA or 0 in, the IOVA out; UNMAP: the mapping's start.
    pub iova: u64,
}

/// A decoded, validated batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Map or unmap.
    pub op: BatchOp,
    /// The ranges, `1..=MAX_RANGES` of them.
    pub entries: Vec<SgEntry>,
}

/// Why a batch was refused before anything happened: the errno and the
/// response that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchError(pub i32);

impl BatchError {
    /// The `-errno` response.
    pub const fn response(self) -> Response {
        Response::error(Opcode::Batch.as_u16(), self.0)
    }
}

impl From<DecodeError> for BatchError {
    fn from(e: DecodeError) -> Self {
        BatchError(e.errno())
    }
}

fn aligned(v: u64) -> bool {
    v.is_multiple_of(PAGE_SIZE)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..at + 8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map_or(0, u64::from_le_bytes)
}

impl Batch {
    /// Decodes and validates a whole `call` payload.
    pub fn decode(payload: &[u8]) -> Result<Self, BatchError> {
        let head = payload.get(..REQUEST_SIZE).ok_or(BatchError(EINVAL))?;
        let raw = RawRequest::decode(head)?;
        if { raw.version } != PROTOCOL_VERSION || { raw.opcode } != Opcode::Batch.as_u16() {
            return Err(BatchError(EINVAL));
        }
        let arg0 = raw.arg0;
        let op = match arg0 {
            BATCH_UNMAP => BatchOp::Unmap,
            bits if bits & !(MAP_FLAG_BITS | BATCH_FROM_BUFFER) == 0 => BatchOp::Map {
                flags: MapFlags::from_wire(bits & MAP_FLAG_BITS).map_err(|_| BatchError(EINVAL))?,
                source: if bits & BATCH_FROM_BUFFER != 0 {
                    Source::Buffer
                } else {
                    Source::Physical
                },
            },
            _ => return Err(BatchError(EINVAL)),
        };
        if { raw.arg2 } != 0 || { raw.arg3 } != 0 || u64_at(payload, REQUEST_SIZE) != 0 {
            return Err(BatchError(EINVAL));
        }
        let count = raw.arg1;
        if count == 0 {
            return Err(BatchError(EINVAL));
        }
        if count > MAX_RANGES as u64 {
            return Err(BatchError(E2BIG));
        }
        let count = count as usize;
        if payload.len() != payload_size(count) {
            return Err(BatchError(EINVAL));
        }
        let mut entries = Vec::with_capacity(count);
        for i in 0..count {
            let at = HEAD_SIZE + i * ENTRY_SIZE;
            let e = SgEntry {
                addr: u64_at(payload, at),
                size: u64_at(payload, at + 8),
                iova: u64_at(payload, at + 16),
            };
            check_entry(op, &e)?;
            entries.push(e);
        }
        Ok(Self { op, entries })
    }

    /// The `arg0` of this batch.
    pub fn arg0(&self) -> u32 {
        match self.op {
            BatchOp::Unmap => BATCH_UNMAP,
            BatchOp::Map { flags, source } => {
                flags.bits()
                    | match source {
                        Source::Physical => 0,
                        Source::Buffer => BATCH_FROM_BUFFER,
                    }
            }
        }
    }

    /// The wire payload (what a client passes to `call`).
    pub fn encode(&self) -> Vec<u8> {
        encode(self.op, &self.entries)
    }
}

/// The wire payload of a batch of `entries` (what a client passes to `call`).
pub fn encode(op: BatchOp, entries: &[SgEntry]) -> Vec<u8> {
    let batch = Batch {
        op,
        entries: Vec::new(),
    };
    let head = RawRequest::new(Opcode::Batch, batch.arg0(), entries.len() as u64, 0, 0);
    let mut out = Vec::with_capacity(payload_size(entries.len()));
    out.extend_from_slice(&head.encode());
    out.extend_from_slice(&[0; HEAD_SIZE - REQUEST_SIZE]);
    for e in entries {
        out.extend_from_slice(&e.addr.to_le_bytes());
        out.extend_from_slice(&e.size.to_le_bytes());
        out.extend_from_slice(&e.iova.to_le_bytes());
    }
    out
}

fn check_entry(op: BatchOp, e: &SgEntry) -> Result<(), BatchError> {
    match op {
        BatchOp::Map { .. } => {
            if e.size == 0 || !aligned(e.addr) || !aligned(e.size) || !aligned(e.iova) {
                return Err(BatchError(EINVAL));
            }
            if e.addr.checked_add(e.size).is_none() || e.iova.checked_add(e.size).is_none() {
                return Err(BatchError(EOVERFLOW));
            }
        }
        BatchOp::Unmap => {
            if e.addr != 0 || e.size != 0 || !aligned(e.iova) {
                return Err(BatchError(EINVAL));
            }
        }
    }
    Ok(())
}

/// Writes the answer into `payload`: the response in front, and on success
/// each entry's result (MAP: its IOVA; UNMAP: its size).
pub fn write_answer(payload: &mut [u8], response: &Response, done: &[SgEntry]) {
    if let Some(out) = payload.get_mut(..RESPONSE_SIZE) {
        out.copy_from_slice(&response.encode());
    }
    if response.status != 0 {
        return;
    }
    for (i, e) in done.iter().enumerate() {
        let at = HEAD_SIZE + i * ENTRY_SIZE;
        if let Some(out) = payload.get_mut(at + 8..at + 24) {
            out[..8].copy_from_slice(&e.size.to_le_bytes());
            out[8..].copy_from_slice(&e.iova.to_le_bytes());
        }
    }
}

/// Reads the entries of an answered payload back (a client's side).
pub fn read_entries(payload: &[u8], count: usize) -> Vec<SgEntry> {
    (0..count)
        .map(|i| {
            let at = HEAD_SIZE + i * ENTRY_SIZE;
            SgEntry {
                addr: u64_at(payload, at),
                size: u64_at(payload, at + 8),
                iova: u64_at(payload, at + 16),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[SgEntry]) -> Vec<u8> {
        encode(
            BatchOp::Map {
                flags: MapFlags::READ_WRITE,
                source: Source::Physical,
            },
            entries,
        )
    }

    fn page(addr: u64) -> SgEntry {
        SgEntry {
            addr,
            size: PAGE_SIZE,
            iova: 0,
        }
    }

    #[test]
    fn round_trips_and_refuses_bad_shapes() {
        let entries = [page(0x1000), page(0x5000)];
        let wire = map(&entries);
        assert_eq!(wire.len(), 40 + 48);
        let b = Batch::decode(&wire).expect("decode");
        assert_eq!(b.entries, entries);
        assert_eq!(b.encode(), wire);
        assert_eq!(Batch::decode(&map(&[])), Err(BatchError(EINVAL)));
        let many = vec![page(0x1000); MAX_RANGES + 1];
        assert_eq!(Batch::decode(&map(&many)), Err(BatchError(E2BIG)));
        let full = vec![page(0x1000); MAX_RANGES];
        assert!(Batch::decode(&map(&full)).is_ok());
        assert_eq!(
            Batch::decode(&wire[..wire.len() - 1]),
            Err(BatchError(EINVAL))
        );
        let mut reserved = wire.clone();
        reserved[33] = 1;
        assert_eq!(Batch::decode(&reserved), Err(BatchError(EINVAL)));
        for bad in [
            SgEntry {
                addr: 0x1001,
                ..page(0)
            },
            SgEntry { size: 0, ..page(0) },
            SgEntry {
                size: 0x800,
                ..page(0)
            },
            SgEntry {
                iova: 0x10,
                ..page(0)
            },
        ] {
            assert_eq!(
                Batch::decode(&map(&[bad])),
                Err(BatchError(EINVAL)),
                "{bad:?}"
            );
        }
        let wraps = SgEntry {
            iova: u64::MAX - 0xFFF,
            size: 0x2000,
            addr: 0,
        };
        assert_eq!(Batch::decode(&map(&[wraps])), Err(BatchError(EOVERFLOW)));
        let unmap = encode(BatchOp::Unmap, &[page(0x1000)]);
        assert_eq!(
            Batch::decode(&unmap),
            Err(BatchError(EINVAL)),
            "UNMAP addr/size are 0"
        );
        let unmap = encode(
            BatchOp::Unmap,
            &[SgEntry {
                iova: 0x3000,
                ..SgEntry::default()
            }],
        );
        assert_eq!(Batch::decode(&unmap).expect("unmap").op, BatchOp::Unmap);
        let mut flags = wire.clone();
        flags[4..8].copy_from_slice(&(BATCH_UNMAP | 1).to_le_bytes());
        assert_eq!(Batch::decode(&flags), Err(BatchError(EINVAL)));
        flags[4..8].copy_from_slice(&(1u32 << 12).to_le_bytes());
        assert_eq!(Batch::decode(&flags), Err(BatchError(EINVAL)));
    }

    /// `wire` with its 32-byte head replaced by `head`.
    fn with_head(wire: &[u8], head: RawRequest) -> Vec<u8> {
        let mut out = wire.to_vec();
        out[..REQUEST_SIZE].copy_from_slice(&head.encode());
        out
    }

    #[test]
    fn every_head_field_is_checked_on_its_own() {
        let wire = map(&[page(0x1000)]);
        let arg0 = MapFlags::READ_WRITE.bits();
        let good = RawRequest::new(Opcode::Batch, arg0, 1, 0, 0);
        assert!(Batch::decode(&with_head(&wire, good)).is_ok());
        let mut version = good;
        version.version = PROTOCOL_VERSION + 1;
        let other_op = RawRequest::new(Opcode::Map, arg0, 1, 0, 0);
        let arg2 = RawRequest::new(Opcode::Batch, arg0, 1, 1, 0);
        let arg3 = RawRequest::new(Opcode::Batch, arg0, 1, 0, 1);
        for (what, head) in [
            ("version", version),
            ("opcode", other_op),
            ("arg2", arg2),
            ("arg3", arg3),
        ] {
            assert_eq!(
                Batch::decode(&with_head(&wire, head)),
                Err(BatchError(EINVAL)),
                "{what} alone"
            );
        }
    }

    #[test]
    fn map_flags_and_source_survive_the_wire() {
        for source in [Source::Physical, Source::Buffer] {
            for flags in [MapFlags::READ, MapFlags::WRITE, MapFlags::READ_WRITE] {
                let op = BatchOp::Map { flags, source };
                let b = Batch::decode(&encode(op, &[page(0x2000)])).expect("decode");
                assert_eq!(b.op, op);
            }
        }
        assert_eq!(
            Batch {
                op: BatchOp::Map {
                    flags: MapFlags::READ,
                    source: Source::Buffer,
                },
                entries: Vec::new(),
            }
            .arg0(),
            MapFlags::READ.bits() | BATCH_FROM_BUFFER
        );
        assert_eq!(BATCH_FROM_BUFFER, 0x200, "bit 9, as the wire table says");
    }

    #[test]
    fn each_unmap_entry_rule_refuses_on_its_own() {
        let unmap = |e: SgEntry| Batch::decode(&encode(BatchOp::Unmap, &[e]));
        let start = SgEntry {
            iova: 0x3000,
            ..SgEntry::default()
        };
        assert!(unmap(start).is_ok());
        for bad in [
            SgEntry {
                addr: 0x1000,
                ..start
            },
            SgEntry {
                size: 0x1000,
                ..start
            },
            SgEntry {
                iova: 0x3008,
                ..start
            },
        ] {
            assert_eq!(unmap(bad), Err(BatchError(EINVAL)), "{bad:?}");
        }
    }

    #[test]
    fn the_answer_lands_in_front_and_in_each_entry() {
        let sent = [page(0x1000), page(0x7000), page(0x9000)];
        let mut payload = map(&sent);
        let done: Vec<SgEntry> = sent
            .iter()
            .enumerate()
            .map(|(i, e)| SgEntry {
                iova: 0x10_0000 + i as u64 * 0x1000,
                ..*e
            })
            .collect();
        let ok = Response::ok(Opcode::Batch, 4, 3, 3 * PAGE_SIZE, 0);
        write_answer(&mut payload, &ok, &done);
        assert_eq!(Response::decode(&payload[..RESPONSE_SIZE]), Ok(ok));
        assert_eq!(read_entries(&payload, 3), done);
        assert_eq!(payload.len(), payload_size(3));
        // A refusal: the response, and the entries left as sent.
        let mut payload = map(&sent);
        let refused = BatchError(EINVAL).response();
        write_answer(&mut payload, &refused, &done);
        assert_eq!(Response::decode(&payload[..RESPONSE_SIZE]), Ok(refused));
        assert_eq!({ refused.status }, -EINVAL);
        assert_eq!({ refused.kind }, Opcode::Batch.as_u16());
        assert_eq!(read_entries(&payload, 3), sent);
    }
}
