//! The simulated VT-d unit on its own, programmed by hand the way the
//! specification says (no iommud): it must walk root, context and
//! second-level tables from simulated RAM, serve stale context-cache and
//! IOTLB entries (and, under caching mode, stale misses) until the matching
//! descriptor, execute the invalidation queue with QEMU's checks, record
//! faults in its fault-recording registers, and abort where QEMU 7.2 aborts.

use std::sync::Arc;

use dsmil_tests as _;
use iommu::vtd::{VtdMmio, fsts, gcmd, reg};
use redox_host::Kernel;
use redox_host::hw::pci_function::DmaAccess;
use redox_host::hw::vtd::{SimVtd, SimVtdConfig};

const SID: u16 = 0x0018; // 00:03.0
const DID: u64 = 5;
const R: u64 = 1;
const W: u64 = 2;
const FRCD: u64 = 0x220;

struct Rig {
    k: Arc<Kernel>,
    unit: Arc<SimVtd>,
    mmio: Box<dyn VtdMmio>,
    context: u64,
    queue: u64,
    status: u64,
    tail: u64,
    l3: u64,
    l2: u64,
    l1: u64,
}

fn page(k: &Kernel) -> u64 {
    k.phys().alloc(4096, false).expect("ram")
}

/// A unit with QI on, a root table whose bus 0 points at a context table,
/// and SID's context entry translating (DID 5, AW 1 = 3 levels) through
/// l3 → l2 → l1; translation on.
fn rig_with(config: SimVtdConfig) -> Rig {
    let k = Kernel::boot();
    let unit = SimVtd::with_config(&k, config);
    let mut mmio = unit.mmio();
    let (root, context, queue, status) = (page(&k), page(&k), page(&k), page(&k));
    let (l3, l2, l1) = (page(&k), page(&k), page(&k));
    let p = k.phys();
    p.write_u64(root, context | 1);
    p.write_u64(context + u64::from(SID & 0xFF) * 16 + 8, (DID << 8) | 1);
    p.write_u64(context + u64::from(SID & 0xFF) * 16, l3 | 1);
    p.write_u64(l3, l2 | R | W);
    p.write_u64(l2, l1 | R | W);
    mmio.write_u64(reg::IQT, 0);
    mmio.write_u64(reg::IQA, queue);
    mmio.write_u32(reg::GCMD, gcmd::QIE);
    mmio.write_u64(reg::RTADDR, root);
    mmio.write_u32(reg::GCMD, gcmd::QIE | gcmd::SRTP);
    mmio.write_u32(reg::GCMD, gcmd::QIE | gcmd::TE);
    assert_eq!(
        mmio.read_u32(reg::GSTS) & (gcmd::QIE | gcmd::TE | gcmd::SRTP),
        gcmd::QIE | gcmd::TE | gcmd::SRTP
    );
    Rig {
        k,
        unit,
        mmio,
        context,
        queue,
        status,
        tail: 0,
        l3,
        l2,
        l1,
    }
}

fn rig() -> Rig {
    rig_with(SimVtdConfig::default())
}

impl Rig {
    /// Queues one descriptor and rings IQT.
    fn descriptor(&mut self, lo: u64, hi: u64) {
        let p = self.k.phys();
        assert!(p.write_u64(self.queue + self.tail * 16, lo));
        assert!(p.write_u64(self.queue + self.tail * 16 + 8, hi));
        self.tail = (self.tail + 1) % 256;
        self.mmio.write_u64(reg::IQT, self.tail << 4);
    }

    fn psi(&mut self, did: u64, addr: u64, am: u64) {
        self.descriptor(0x2 | (3 << 4) | (did << 16), addr | am);
    }

    fn dsi(&mut self, did: u64) {
        self.descriptor(0x2 | (2 << 4) | (did << 16), 0);
    }

    fn cc_device(&mut self, did: u64, sid: u16) {
        self.descriptor(0x1 | (3 << 4) | (did << 16) | (u64::from(sid) << 32), 0);
    }

    fn wait(&mut self, data: u32) -> u32 {
        self.descriptor(0x5 | (1 << 5) | (u64::from(data) << 32), self.status);
        self.k.phys().read_u64(self.status).expect("status") as u32
    }

    fn write(&self, iova: u64) -> Option<u64> {
        self.unit.translate(SID, iova, 8, DmaAccess::Write)
    }

    fn read(&self, sid: u16, iova: u64) -> Option<u64> {
        self.unit.translate(sid, iova, 8, DmaAccess::Read)
    }

    /// The first fault record: (FI, SID, FR, read).
    fn record(&self) -> Option<(u64, u16, u8, bool)> {
        let flags = self.mmio.read_u32(FRCD + 12);
        (flags & (1 << 31) != 0).then(|| {
            (
                self.mmio.read_u64(FRCD),
                self.mmio.read_u32(FRCD + 8) as u16,
                flags as u8,
                flags & (1 << 30) != 0,
            )
        })
    }

    fn clear_record(&mut self) {
        self.mmio.write_u32(FRCD + 12, 1 << 31);
        self.mmio.write_u32(reg::FSTS, fsts::PFO);
    }
}

#[test]
fn stale_iotlb_entries_are_served_until_a_covering_descriptor() {
    let mut r = rig();
    let (a, b) = (page(&r.k), page(&r.k));
    r.k.phys().write_u64(r.l1 + 8, a | R | W);
    assert_eq!(r.write(0x1010), Some(a + 0x10), "walked from RAM");
    r.k.phys().write_u64(r.l1 + 8, b | R | W);
    assert_eq!(r.write(0x1010), Some(a + 0x10), "stale entry served");
    // A PSI of another page, or of another domain, changes nothing.
    r.psi(DID, 0x3000, 0);
    r.psi(7, 0x1000, 0);
    assert_eq!(r.write(0x1010), Some(a + 0x10));
    // PSI with AM = 1 over 0x0000..0x2000 covers it.
    r.psi(DID, 0, 1);
    assert_eq!(r.write(0x1010), Some(b + 0x10), "fresh walk after PSI");
    r.k.phys().write_u64(r.l1 + 8, 0);
    assert_eq!(r.write(0x1010), Some(b + 0x10));
    r.dsi(DID);
    assert_eq!(r.write(0x1010), None, "gone after DSI");
    // The write fault is recorded: FI, SID, FR 5, T = 0.
    assert_eq!(r.record(), Some((0x1000, SID, 0x5, false)));
    assert_eq!(r.wait(1), 1);
}

#[test]
fn context_entries_are_cached_until_a_matching_context_descriptor() {
    let mut r = rig();
    let a = page(&r.k);
    r.k.phys().write_u64(r.l1 + 8, a | R | W);
    assert!(r.write(0x1000).is_some());
    // Clear the context entry: the cached copy (DID 5) still translates.
    let entry = r.context + u64::from(SID & 0xFF) * 16;
    r.k.phys().write_u64(entry, 0);
    r.dsi(DID);
    assert!(r.write(0x1000).is_some(), "stale context entry served");
    // A device invalidation with the wrong DID does not match it.
    r.cc_device(0, SID);
    assert!(r.write(0x1000).is_some());
    r.cc_device(DID, SID);
    assert_eq!(r.write(0x1000), None, "context entry re-read after CC");
    assert_eq!(r.record(), Some((0x1000, SID, 0x2, false)));
}

#[test]
fn caching_mode_caches_misses_under_did_0_and_in_the_iotlb() {
    let mut r = rig_with(SimVtdConfig {
        caching_mode: true,
        ..SimVtdConfig::default()
    });
    let other: u16 = 0x0020; // 00:04.0, context not present
    assert_eq!(r.read(other, 0x1000), None);
    // Install its context entry: the cached "not present" still answers.
    let entry = r.context + u64::from(other & 0xFF) * 16;
    r.k.phys().write_u64(entry + 8, (DID << 8) | 1);
    r.k.phys().write_u64(entry, r.l3 | 1);
    assert_eq!(r.read(other, 0x1000), None);
    r.cc_device(DID, other);
    assert_eq!(r.read(other, 0x1000), None, "the miss is tagged DID 0");
    r.cc_device(0, other);
    // Context now valid; the page itself is a cached miss once read.
    let a = page(&r.k);
    assert_eq!(r.read(other, 0x5000), None);
    r.k.phys().write_u64(r.l1 + 5 * 8, a | R);
    assert_eq!(
        r.read(other, 0x5000),
        None,
        "not-present page cached under CM"
    );
    r.psi(DID, 0x5000, 0);
    assert_eq!(r.read(other, 0x5000), Some(a));
}

#[test]
fn without_caching_mode_misses_are_not_cached() {
    let mut r = rig();
    let a = page(&r.k);
    assert_eq!(r.write(0x5000), None);
    r.k.phys().write_u64(r.l1 + 5 * 8, a | R | W);
    assert_eq!(r.write(0x5000), Some(a));
    assert_eq!(r.wait(9), 9);
}

#[test]
fn permissions_superpages_and_reserved_bits() {
    let mut r = rig();
    let (a, big) = (page(&r.k), r.k.phys().alloc(2 << 20, false).expect("2M"));
    assert_eq!(big % (2 << 20), 0, "buddy allocations are size-aligned");
    let k = r.k.clone();
    let p = k.phys();
    // Read-only leaf: reads pass, writes fault with reason 5.
    p.write_u64(r.l1 + 8, a | R);
    assert_eq!(r.read(SID, 0x1000), Some(a));
    assert_eq!(r.write(0x1000), None);
    assert_eq!(r.record().map(|f| f.2), Some(0x5));
    r.clear_record();
    // A 2 MiB leaf (PS) at l2[1].
    p.write_u64(r.l2 + 8, big | R | W | (1 << 7));
    assert_eq!(r.write(0x20_1234), Some(big + 0x1234));
    // A misaligned 2 MiB leaf is a reserved-bit fault (0xC).
    p.write_u64(r.l2 + 16, (big + 0x1000) | R | W | (1 << 7));
    assert_eq!(r.read(SID, 0x40_0000), None);
    assert_eq!(r.record().map(|f| f.2), Some(0xC));
    r.clear_record();
    // Beyond the 39-bit width: reason 4.
    assert_eq!(r.read(SID, 1 << 39), None);
    assert_eq!(r.record().map(|f| f.2), Some(0x4));
    r.clear_record();
    // A non-leaf without W refuses writes below it (R/W checked per level).
    p.write_u64(r.l3 + 8, r.l2 | R);
    assert_eq!(r.write(0x4000_1000), None);
    assert_eq!(r.record().map(|f| f.2), Some(0x5));
    r.clear_record();
    // Output in the interrupt window: reason 0xE.
    p.write_u64(r.l1 + 2 * 8, 0xFEE0_0000 | R | W);
    assert_eq!(r.read(SID, 0x2000), None);
    assert_eq!(r.record().map(|f| f.2), Some(0xE));
}

#[test]
fn faults_are_recorded_collapsed_and_overflow() {
    let mut r = rig();
    assert_eq!(r.read(SID, 0x7000), None);
    assert_eq!(r.record(), Some((0x7000, SID, 0x6, true)));
    let status = r.mmio.read_u32(reg::FSTS);
    assert_ne!(status & fsts::PPF, 0);
    assert_eq!((status >> fsts::FRI_SHIFT) & 0xFF, 0);
    // A second fault of the same SID collapses into the pending record.
    assert_eq!(r.read(SID, 0x8000), None);
    assert_eq!(r.record(), Some((0x7000, SID, 0x6, true)));
    assert_eq!(r.mmio.read_u32(reg::FSTS) & fsts::PFO, 0);
    // Another SID finds the one record busy: PFO, fault lost.
    assert_eq!(r.read(0x0100, 0x9000), None);
    assert_ne!(r.mmio.read_u32(reg::FSTS) & fsts::PFO, 0);
    r.clear_record();
    assert_eq!(r.mmio.read_u32(reg::FSTS) & (fsts::PFO | fsts::PPF), 0);
    assert_eq!(r.read(0x0100, 0x9000), None);
    assert_eq!(
        r.record(),
        Some((0x9000, 0x0100, 0x1, true)),
        "root entry not present"
    );
    // FPD in the context entry: faults no longer recorded.
    r.clear_record();
    let entry = r.context + u64::from(SID & 0xFF) * 16;
    r.k.phys().write_u64(entry, r.l3 | 1 | 2);
    r.cc_device(DID, SID);
    assert_eq!(r.read(SID, 0x7000), None);
    assert_eq!(r.record(), None);
}

#[test]
fn pass_through_needs_a_supported_aw() {
    let mut r = rig();
    let entry = r.context + u64::from(SID & 0xFF) * 16;
    // TT = 10 with AW = 2 (48-bit) on a 39-bit unit: invalid context (3).
    r.k.phys().write_u64(entry + 8, (DID << 8) | 2);
    r.k.phys().write_u64(entry, 0b1001);
    r.cc_device(DID, SID);
    assert_eq!(r.read(SID, 0x1234_5000), None);
    assert_eq!(r.record().map(|f| f.2), Some(0x3));
    r.clear_record();
    r.k.phys().write_u64(entry + 8, (DID << 8) | 1);
    r.cc_device(DID, SID);
    assert_eq!(r.read(SID, 0x1234_5000), Some(0x1234_5000));
}

#[test]
fn a_gcmd_write_without_te_turns_translation_off() {
    let r = rig();
    let mut mmio = r.unit.mmio();
    // SRTP alone (the shadow forgotten): QEMU acts on GSTS ^ value.
    mmio.write_u32(reg::GCMD, gcmd::SRTP);
    assert_eq!(mmio.read_u32(reg::GSTS) & gcmd::TE, 0);
    assert_eq!(r.read(SID, 0x7000), Some(0x7000), "untranslated");
    // QIE was dropped too, with an empty queue: QI is off.
    assert_eq!(mmio.read_u32(reg::GSTS) & gcmd::QIE, 0);
}

#[test]
fn bad_descriptors_stop_the_queue_with_iqe() {
    let mut r = rig();
    // A wait with PD (bit 7) set: QEMU 7.2 rejects it.
    r.descriptor(0x5 | (1 << 5) | (1 << 7) | (3 << 32), r.status);
    assert_ne!(r.mmio.read_u32(reg::FSTS) & fsts::IQE, 0);
    assert_eq!(
        r.mmio.read_u64(reg::IQH),
        0,
        "IQH stays at the bad descriptor"
    );
    // While IQE is set nothing runs.
    r.descriptor(0x5 | (1 << 5) | (4 << 32), r.status);
    assert_eq!(r.k.phys().read_u64(r.status), Some(0));
    // Repair the bad one, clear IQE, ring again: both waits run.
    let k = r.k.clone();
    let p = k.phys();
    p.write_u64(r.queue, 0x5 | (1 << 5) | (3 << 32));
    r.mmio.write_u32(reg::FSTS, fsts::IQE);
    r.mmio.write_u64(reg::IQT, r.tail << 4);
    assert_eq!(r.k.phys().read_u64(r.status).map(|v| v as u32), Some(4));
    // A wait with neither SW nor IF, an unknown type, AM > 18: all IQE.
    for (lo, hi) in [(0x5u64, 0u64), (0x8, 0), (0x2 | (3 << 4) | (DID << 16), 19)] {
        r.mmio.write_u32(reg::FSTS, fsts::IQE);
        r.descriptor(lo, hi);
        assert_ne!(r.mmio.read_u32(reg::FSTS) & fsts::IQE, 0, "{lo:#x}:{hi:#x}");
        p.write_u64(r.queue + ((r.tail + 255) % 256) * 16, 0x5 | (1 << 5));
        p.write_u64(r.queue + ((r.tail + 255) % 256) * 16 + 8, r.status);
        r.mmio.write_u32(reg::FSTS, fsts::IQE);
        r.mmio.write_u64(reg::IQT, r.tail << 4);
    }
}

#[test]
#[should_panic(expected = "both SW and IF")]
fn a_wait_with_sw_and_if_aborts_like_qemu() {
    let mut r = rig();
    r.descriptor(0x5 | (1 << 5) | (1 << 4), r.status);
}

#[test]
#[should_panic(expected = "8-byte access at register offset 0x34")]
fn an_eight_byte_access_to_a_32_bit_register_aborts_like_qemu() {
    let r = rig();
    let mut mmio = r.unit.mmio();
    mmio.write_u64(reg::FSTS, 0);
}

#[test]
fn qemu_register_values_and_windows() {
    let r = rig();
    assert_eq!(r.mmio.read_u64(reg::CAP), 0x00d2_008c_2226_0206);
    assert_eq!(r.mmio.read_u64(reg::ECAP), 0x0000_0000_00f0_0f4a);
    assert_eq!(r.mmio.read_u32(reg::VER), 0x10);
    assert_eq!(r.mmio.read_u32(reg::GCMD), 0, "GCMD reads as 0");
    assert_eq!(
        r.mmio.read_u32(0x230),
        u32::MAX,
        "beyond the 0x230-byte window"
    );
    let cm48 = SimVtdConfig {
        caching_mode: true,
        aw_bits: 48,
        ..SimVtdConfig::default()
    };
    assert_eq!(
        cm48.cap() & !0xF_0000,
        0x00d2_008c_2226_0686 & !0xF_0000 | (0x6 << 8)
    );
    assert_eq!((cm48.cap() >> 16) & 0x3F, 47);
    // 64-bit registers take 4-byte halves.
    let mut mmio = r.unit.mmio();
    mmio.write_u32(reg::IQA, 0x5000);
    mmio.write_u32(reg::IQA + 4, 0x1);
    assert_eq!(mmio.read_u64(reg::IQA), 0x1_0000_5000);
    assert_eq!(mmio.read_u32(reg::IQA + 4), 1);
}
