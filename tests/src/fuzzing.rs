//! What the coverage-guided fuzz targets (`fuzz/`, `cargo fuzz`) run, kept here
//! so `cargo test` replays their committed corpora on stable paths too
//! (`tests/tests/fuzz_corpora.rs`).
//!
//! Each function takes the fuzzer's bytes, drives one decoder or one scheme with
//! them, and panics only when an invariant breaks: a decoder that panics, a
//! value that does not survive encode → decode, a quarantined token written,
//! sessions or per-client books left behind once every handle is closed.

use driver_sys::pci::pcid_wire::{self, PcidClientRequest, PcidClientResponse};
use dsmil::platform::ManualClock;
use dsmil::scheme::DsmilScheme;
use dsmil::wire::{
    ControlRequest, DeviceInfo, EventRecord, ReadChunk, ReadChunkHeader, ScanChunk,
    ScanChunkHeader, SystemStatus, ThermalReply, VersionInfo, decode_device_list,
};
use redox_host::hw::smm::SimulatedDsmil;
use syscall::flag::{EventFlags, O_DIRECTORY, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};

use crate::sqe::SqeHarness;

/// A cursor over the fuzzer's bytes; past the end every read is 0.
pub struct Bytes<'a> {
    data: &'a [u8],
    at: usize,
}

impl<'a> Bytes<'a> {
    /// Over `data`.
    pub fn new(data: &'a [u8]) -> Self {
        Self { data, at: 0 }
    }

    /// Whether bytes remain.
    pub fn more(&self) -> bool {
        self.at < self.data.len()
    }

    /// The next byte.
    pub fn u8(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    /// The next little-endian u32.
    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// The next little-endian u64.
    pub fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | (u64::from(self.u32()) << 32)
    }

    /// The next `n` bytes (fewer at the end).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let start = self.at.min(self.data.len());
        let end = start.saturating_add(n).min(self.data.len());
        self.at = self.at.saturating_add(n);
        self.data.get(start..end).unwrap_or(&[])
    }
}

/// Every decoder of dsmild's wire format, on any bytes: an error or a value
/// that encodes back to the same bytes.
pub fn dsmil_wire(data: &[u8]) {
    if let Ok(req) = ControlRequest::decode(data) {
        assert_eq!(&req.to_bytes()[..], data, "control request round trip");
    }
    let words: Vec<u64> = data
        .chunks(8)
        .take(4)
        .map(|c| {
            let mut w = [0u8; 8];
            if let Some(d) = w.get_mut(..c.len()) {
                d.copy_from_slice(c);
            }
            u64::from_le_bytes(w)
        })
        .collect();
    let _ = ControlRequest::from_metadata(&words);
    if let Ok(r) = EventRecord::decode(data) {
        let mut out = [0u8; EventRecord::SIZE];
        assert_eq!(r.encode(&mut out), Ok(EventRecord::SIZE));
        let again = EventRecord::decode(&out).expect("re-decodes");
        assert_eq!(format!("{r:?}"), format!("{again:?}"));
    }
    if let Ok(d) = DeviceInfo::decode(data) {
        let mut out = [0u8; DeviceInfo::SIZE];
        assert_eq!(d.encode(&mut out), Ok(DeviceInfo::SIZE));
        assert_eq!(
            format!("{d:?}"),
            format!("{:?}", DeviceInfo::decode(&out).expect("re-decodes"))
        );
    }
    let _ = decode_device_list(data);
    let _ = ReadChunkHeader::decode(data);
    let _ = ReadChunk::decode(data);
    let _ = ScanChunkHeader::decode(data);
    let _ = ScanChunk::decode(data);
    let _ = SystemStatus::decode(data);
    let _ = ThermalReply::decode(data);
    let _ = VersionInfo::decode(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = dsmil::scheme::path::Node::parse(text);
    }
}

/// Every decoder of iommud's wire format (Red Bear v1 requests and
/// responses, path forms, the pcid config-address body).
pub fn iommu_wire(data: &[u8]) {
    use iommu::protocol::{RawRequest, Request, Response};
    if let Ok(raw) = RawRequest::decode(data) {
        assert_eq!(&raw.encode()[..], data, "raw request round trip");
        let _ = Request::from_raw(raw);
    }
    let _ = Request::decode(data);
    if let Ok(r) = Response::decode(data) {
        assert_eq!(&r.encode()[..], data, "response round trip");
    }
    let _ = iommu::pcid_channel::decode_config_address(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = iommu::scheme::path::Node::parse(text);
    }
}

/// pcid's wire codec both ways: whatever decodes re-encodes to something that
/// decodes to the same message.
pub fn pcid_wire(data: &[u8]) {
    if let Ok(req) = pcid_wire::decode::<PcidClientRequest>(data) {
        let bytes = pcid_wire::encode(&req).expect("a decoded request encodes");
        let again: PcidClientRequest = pcid_wire::decode(&bytes).expect("and decodes");
        assert_eq!(format!("{req:?}"), format!("{again:?}"));
    }
    if let Ok(resp) = pcid_wire::decode::<PcidClientResponse>(data) {
        let bytes = pcid_wire::encode(&resp).expect("a decoded response encodes");
        let again: PcidClientResponse = pcid_wire::decode(&bytes).expect("and decodes");
        assert_eq!(format!("{resp:?}"), format!("{again:?}"));
        let _ = pcid_wire::frame_response(&resp);
    }
}

/// The IVRS parser (`iommu::ivrs`) and the topology built from it. The bytes
/// are tried as they are, then as the body of a table whose header the fuzzer
/// need not get right (signature, length and checksum fixed up), so the
/// coverage reaches the IVHD/IVMD blocks and their device entries.
pub fn ivrs(data: &[u8]) {
    use iommu::ivrs::{HEADER_LENGTH, Ivrs, SIGNATURE};
    use iommu::topology::Topology;
    let _ = Ivrs::parse(data);
    let mut table = data.to_vec();
    if table.len() < HEADER_LENGTH {
        table.resize(HEADER_LENGTH, 0);
    }
    table[0..4].copy_from_slice(&SIGNATURE);
    let len = u32::try_from(table.len()).unwrap_or(u32::MAX);
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[9] = 0;
    let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    table[9] = 0u8.wrapping_sub(sum);
    if let Ok(parsed) = Ivrs::parse(&table) {
        let topology = Topology::from_ivrs(&parsed);
        for rid in [0u16, 0x0008, 0x00a0, 0xffff] {
            let _ = topology.unit_of(rid);
            let _ = topology.alias_of(rid);
            let _ = topology.unity_for(rid).count();
        }
    }
}

/// A PCI topology for the DMAR target: device 1 of every bus is a bridge to
/// the next two buses, so scopes with paths through bridges resolve.
struct ChainTopology;

impl iommu::dmar::PciTopology for ChainTopology {
    fn bridge_buses(&self, bridge: iommu::Bdf) -> Option<(u8, u8)> {
        (bridge.device() == 1).then(|| {
            let next = bridge.bus().saturating_add(1);
            (next, next.saturating_add(1))
        })
    }
}

/// The DMAR parser (`iommu::dmar`) as given and with its header fixed up
/// (signature, length, checksum), then every query iommud makes of it, on a
/// flat topology and on one with bridges.
pub fn dmar(data: &[u8]) {
    use iommu::Bdf;
    use iommu::dmar::{Dmar, FlatTopology, PciTopology};
    let _ = Dmar::parse(data);
    let mut table = data.to_vec();
    if table.len() < 48 {
        table.resize(48, 0);
    }
    table[0..4].copy_from_slice(b"DMAR");
    let len = u32::try_from(table.len()).unwrap_or(u32::MAX);
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[9] = 0;
    let sum = table.iter().fold(0u8, |s, b| s.wrapping_add(*b));
    table[9] = 0u8.wrapping_sub(sum);
    let Ok(parsed) = Dmar::parse(&table) else {
        return;
    };
    let topologies: [&dyn PciTopology; 2] = [&FlatTopology, &ChainTopology];
    for topology in topologies {
        for (bus, device, function) in [(0, 0, 0), (0, 1, 0), (0, 2, 0), (1, 0, 0), (2, 0x1f, 7)] {
            let Some(bdf) = Bdf::new(bus, device, function) else {
                continue;
            };
            let _ = parsed.unit_for(bdf, topology);
            let _ = parsed.reserved_for(bdf, topology).count();
            for unit in &parsed.units {
                let _ = unit.lists(bdf, topology);
                for scope in &unit.scopes {
                    let _ = scope.resolve(topology);
                    let _ = scope.covers(bdf, topology);
                }
            }
        }
        for rmrr in &parsed.reserved {
            let _ = rmrr.size();
        }
    }
}

const DSMIL_PATHS: &[&str] = &[
    "",
    "control",
    "scan",
    "device",
    "device/0x8000",
    "device/0x8001",
    "device/0x8009",
    "device/0x8019",
    "device/806b",
    "device/0x806c",
    "events",
    "config",
    "config/session_limit",
    "config/thermal_limit",
    "config/handles_per_uid",
    "config/sessions_per_process",
    "config/smi_per_second",
    "status",
    "thermal",
    "health",
    "devices",
    "stats",
    "log",
    "version",
    "nope",
];

/// Most requests one input drives (keeps each run short).
pub const MAX_STEPS: usize = 96;

/// A whole request sequence into scheme `dsmil` through the SQE harness:
/// opens, reads, writes, calls, `fevent`, `getdents`, closes, user and process
/// switches, housekeeping with the virtual clock, heat. Afterwards no
/// quarantined token was ever written, and closing every handle leaves no
/// session, handle or per-client record.
pub fn dsmil_requests(data: &[u8]) {
    let sim = SimulatedDsmil::new(45);
    let clock = ManualClock::new();
    let hw = sim.hardware().clock(Box::new(clock.clone()));
    let mut h = SqeHarness::new(DsmilScheme::new(dsmil::Config::default(), hw));
    let mut b = Bytes::new(data);
    let mut handles: Vec<usize> = Vec::new();
    let pick = |b: &mut Bytes, handles: &[usize]| -> usize {
        let i = usize::from(b.u8());
        // Mostly live handles, sometimes a made-up number.
        handles.get(i % (handles.len() + 1)).copied().unwrap_or(i)
    };
    let mut steps = 0;
    while b.more() && steps < MAX_STEPS {
        steps += 1;
        match b.u8() % 11 {
            0 => {
                let path = DSMIL_PATHS[usize::from(b.u8()) % DSMIL_PATHS.len()];
                let flags = match b.u8() % 5 {
                    0 => O_RDONLY,
                    1 => O_WRONLY,
                    2 => O_RDWR,
                    3 => O_RDONLY | O_NONBLOCK,
                    _ => O_RDONLY | O_DIRECTORY,
                };
                if let Ok(fd) = h.open(path, flags) {
                    handles.push(fd);
                }
            }
            1 => {
                let id = pick(&mut b, &handles);
                let mut buf = vec![0u8; usize::from(b.u8()) * 40];
                let _ = h.read_flags(id, &mut buf, O_NONBLOCK);
            }
            2 => {
                let id = pick(&mut b, &handles);
                let n = usize::from(b.u8() % 40);
                let bytes = b.take(n).to_vec();
                let _ = h.write(id, &bytes);
            }
            3 => {
                let id = pick(&mut b, &handles);
                let n = usize::from(b.u8() % 5);
                let meta: Vec<u64> = (0..n).map(|_| u64::from(b.u32())).collect();
                let mut payload = vec![0u8; usize::from(b.u8()) * 20];
                let _ = h.call(id, &mut payload, &meta);
            }
            4 => {
                let id = pick(&mut b, &handles);
                let flags = usize::from(b.u8() % 2) * EventFlags::EVENT_READ.bits();
                let _ = h.fevent(id, flags);
            }
            5 => {
                let id = pick(&mut b, &handles);
                let mut buf = vec![0u8; usize::from(b.u8()) * 8];
                let _ = h.getdents(id, &mut buf, u64::from(b.u8()));
            }
            6 => {
                if !handles.is_empty() {
                    let i = usize::from(b.u8()) % handles.len();
                    let id = handles.swap_remove(i);
                    h.close(id);
                }
            }
            7 => {
                let uid = match b.u8() % 3 {
                    0 => 0,
                    1 => 1000,
                    _ => 1001,
                };
                h.as_user(uid, uid);
                h.pid = 100 + usize::from(b.u8() % 4);
            }
            8 => {
                clock.advance(std::time::Duration::from_millis(u64::from(b.u8()) * 250));
                h.scheme.housekeeping();
            }
            9 => sim.thermal.set(i32::from(b.u8() % 130)),
            _ => {
                let _ = h.scheme.take_fevent_posts();
            }
        }
    }
    for q in dsmil::wire::QUARANTINED_TOKENS {
        assert_eq!(sim.firmware.writes(q), 0, "quarantined {q:#x} written");
    }
    for id in handles {
        h.close(id);
    }
    assert_eq!(h.scheme.open_handles(), 0, "every handle closed");
    assert_eq!(h.scheme.session_count(), 0, "every session freed");
    assert_eq!(
        h.scheme.clients().tracked(),
        (0, 0),
        "per-client books empty"
    );
}

const IOMMU_PATHS: &[&str] = &[
    "",
    "control",
    "domain",
    "domain/new",
    "domain/1",
    "domain/2",
    "domain/0x3",
    "device",
    "device/00:01.0",
    "device/0x0008",
    "stats",
    "faults",
    "nope",
];

/// Opcodes requests are drawn from (the v1 set and ours), plus whatever the
/// fuzzer writes raw.
const IOMMU_OPCODES: &[u16] = &[
    0x00, 0x01, 0x02, 0x03, 0x10, 0x11, 0x12, 0x14, 0x15, 0x16, 0x17, 0x18, 0x19, 0x20, 0x21, 0x30,
];

/// A whole request sequence into scheme `iommu` through the SQE harness, on
/// a fresh mocked kernel with a simulated AMD-Vi unit: opens, 32-byte requests
/// (mostly well-formed, some raw), response reads, calls, closes, user and
/// process switches. Nothing may panic, and every response read is 36 bytes.
pub fn iommu_requests(data: &[u8]) {
    use iommu::protocol::{PROTOCOL_VERSION, RESPONSE_SIZE};
    use iommu::scheme::IommuScheme;
    use redox_host::hw::amdvi::SimAmdVi;
    use redox_host::{Cred, Kernel};

    let k = Kernel::boot();
    let unit = SimAmdVi::new(&k);
    let (_p, _g) = k.enter("iommud", Cred::ROOT);
    let Ok(iommu) = iommu::daemon::build(iommu::Config::default(), vec![unit.mmio()]) else {
        panic!("iommud builds on the simulated unit");
    };
    let mut h = SqeHarness::new(IommuScheme::new(iommu));
    let mut b = Bytes::new(data);
    let mut handles: Vec<usize> = Vec::new();
    let mut steps = 0;
    while b.more() && steps < MAX_STEPS {
        steps += 1;
        let pick = |b: &mut Bytes, handles: &[usize]| -> usize {
            let i = usize::from(b.u8());
            handles.get(i % (handles.len() + 1)).copied().unwrap_or(i)
        };
        match b.u8() % 8 {
            0 => {
                let path = IOMMU_PATHS[usize::from(b.u8()) % IOMMU_PATHS.len()];
                let flags = match b.u8() % 3 {
                    0 => O_RDONLY,
                    1 => O_RDWR,
                    _ => O_RDONLY | O_DIRECTORY,
                };
                if let Ok(fd) = h.open(path, flags) {
                    handles.push(fd);
                }
            }
            1 => {
                let id = pick(&mut b, &handles);
                let mut req = [0u8; 32];
                let opcode = IOMMU_OPCODES[usize::from(b.u8()) % IOMMU_OPCODES.len()];
                req[0..2].copy_from_slice(&opcode.to_le_bytes());
                req[2..4].copy_from_slice(&PROTOCOL_VERSION.to_le_bytes());
                req[4..8].copy_from_slice(&(b.u32() % 64).to_le_bytes());
                // Small, page-aligned-ish arguments reach the deep paths.
                for at in [8usize, 16, 24] {
                    let v = match b.u8() % 4 {
                        0 => 0,
                        1 => u64::from(b.u8()) << 12,
                        2 => u64::from(b.u32()) << 12,
                        _ => b.u64(),
                    };
                    req[at..at + 8].copy_from_slice(&v.to_le_bytes());
                }
                let _ = h.write(id, &req);
            }
            2 => {
                let id = pick(&mut b, &handles);
                let n = usize::from(b.u8() % 40);
                let raw = b.take(n).to_vec();
                let _ = h.write(id, &raw);
            }
            3 => {
                let id = pick(&mut b, &handles);
                let mut buf = vec![0u8; usize::from(b.u8()) % 64];
                if let Ok(n) = h.read(id, &mut buf) {
                    let is_text = n != RESPONSE_SIZE;
                    assert!(is_text || buf.len() >= RESPONSE_SIZE);
                }
            }
            4 => {
                let id = pick(&mut b, &handles);
                let mut payload = vec![0u8; usize::from(b.u8() % 48)];
                let src = b.take(payload.len()).to_vec();
                if let Some(d) = payload.get_mut(..src.len()) {
                    d.copy_from_slice(&src);
                }
                let meta = [u64::from(b.u8())];
                let _ = h.call(id, &mut payload, &meta);
            }
            5 => {
                if !handles.is_empty() {
                    let i = usize::from(b.u8()) % handles.len();
                    let id = handles.swap_remove(i);
                    h.close(id);
                }
            }
            6 => {
                let id = pick(&mut b, &handles);
                iommu_batch(&mut h, id, &mut b);
            }
            _ => {
                let uid = if b.u8().is_multiple_of(2) { 0 } else { 1000 };
                h.as_user(uid, uid);
                h.pid = 100 + usize::from(b.u8() % 3);
            }
        }
    }
    for id in handles {
        h.close(id);
    }
}

/// One BATCH `call` (opcode 0x19): a scatter list of 0..=70 ranges (past
/// the 64 limit too), mapped from physical memory or ALLOC buffers or
/// unmapped, with small page-aligned values that reach the deep paths and,
/// now and then, one byte of the payload overwritten. The answer must be a
/// BATCH response in place, `-errno` or success, never a panic.
fn iommu_batch(h: &mut SqeHarness<iommu::scheme::IommuScheme>, id: usize, b: &mut Bytes<'_>) {
    use iommu::protocol::{MapFlags, Response};
    use iommu::scatter::{self, BatchOp, SgEntry, Source};

    let op = match b.u8() % 3 {
        0 => BatchOp::Unmap,
        kind => BatchOp::Map {
            flags: MapFlags::from_wire(u32::from(b.u8() % 4)).unwrap_or_default(),
            source: if kind == 1 {
                Source::Physical
            } else {
                Source::Buffer
            },
        },
    };
    let count = usize::from(b.u8() % 71);
    let small = |b: &mut Bytes<'_>| match b.u8() % 4 {
        0 => 0,
        1 => u64::from(b.u8()) << 12,
        2 => u64::from(b.u32()) << 12,
        _ => b.u64(),
    };
    let entries: Vec<SgEntry> = (0..count)
        .map(|_| SgEntry {
            addr: small(b),
            size: small(b),
            iova: small(b),
        })
        .collect();
    let mut payload = scatter::encode(op, &entries);
    if b.u8().is_multiple_of(8) {
        let at = usize::from(b.u8()) % payload.len();
        if let Some(byte) = payload.get_mut(at) {
            *byte = b.u8();
        }
    }
    // A corrupted opcode makes it an ordinary (36-byte) call.
    let batch = iommu::scheme::requests::is_batch(&payload);
    if let Ok(n) = h.call(id, &mut payload, &[])
        && batch
    {
        assert_eq!(n, payload.len(), "a batch answers in place");
        let r = Response::decode(&payload[..iommu::protocol::RESPONSE_SIZE]);
        let r = r.unwrap_or_else(|e| panic!("batch response: {e:?}"));
        assert!({ r.status } <= 0);
    }
}
