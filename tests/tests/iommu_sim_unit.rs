//! The simulated AMD-Vi unit on its own, programmed by hand the way the
//! specification says (no iommud): it must read the device table and page
//! tables from simulated RAM, serve stale IOTLB and device-table-cache
//! entries until the matching invalidation command, decode NextLevel 7 pages
//! and skipped levels, store completion-wait data, and log faults until the
//! event log is full.

use std::sync::Arc;

use dsmil_tests as _;
use iommu::amdvi::{AmdViMmio, control, reg, status};
use redox_host::Kernel;
use redox_host::hw::amdvi::{SimAmdVi, SimAmdViOptions};
use redox_host::hw::pci_function::DmaAccess;

const RID: u16 = 0x28;
const DOMAIN: u64 = 9;
const PR: u64 = 1;
const IR: u64 = 1 << 61;
const IW: u64 = 1 << 62;

struct Rig {
    k: Arc<Kernel>,
    unit: Arc<SimAmdVi>,
    mmio: Box<dyn AmdViMmio>,
    dt: u64,
    cmd: u64,
    evt: u64,
    tail: u64,
    l3: u64,
    l2: u64,
    l1: u64,
}

fn page(k: &Kernel) -> u64 {
    k.phys().alloc(4096, false).expect("ram")
}

fn rig() -> Rig {
    rig_with(SimAmdViOptions::default())
}

fn rig_with(options: SimAmdViOptions) -> Rig {
    let k = Kernel::boot();
    let unit = SimAmdVi::with_options(&k, options);
    let mut mmio = unit.mmio();
    let (dt, cmd, evt) = (page(&k), page(&k), page(&k));
    let (l3, l2, l1) = (page(&k), page(&k), page(&k));
    // A one-page device table (128 entries), 256-entry ring and log.
    mmio.write_u64(reg::DEVICE_TABLE_BASE, dt);
    mmio.write_u64(reg::COMMAND_BUFFER_BASE, cmd | (8 << 56));
    mmio.write_u64(reg::EVENT_LOG_BASE, evt | (8 << 56));
    mmio.write_u64(
        reg::CONTROL,
        control::IOMMU_ENABLE | control::EVENT_LOG_ENABLE | control::COMMAND_BUFFER_ENABLE,
    );
    let p = k.phys();
    p.write_u64(dt + u64::from(RID) * 32, PR | 2 | (3 << 9) | l3 | IR | IW);
    p.write_u64(dt + u64::from(RID) * 32 + 8, DOMAIN);
    p.write_u64(l3, l2 | (2 << 9) | PR | IR | IW);
    p.write_u64(l2, l1 | (1 << 9) | PR | IR | IW);
    Rig {
        k,
        unit,
        mmio,
        dt,
        cmd,
        evt,
        tail: 0,
        l3,
        l2,
        l1,
    }
}

impl Rig {
    fn command(&mut self, d: [u32; 4]) {
        let mut b = [0u8; 16];
        for (i, w) in d.iter().enumerate() {
            b[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
        }
        assert!(self.k.phys().write(self.cmd + self.tail, &b));
        self.tail = (self.tail + 16) % 4096;
        self.mmio.write_u64(reg::COMMAND_TAIL, self.tail);
    }

    fn invalidate_page(&mut self, iova: u64) {
        self.invalidate(iova, false);
    }

    /// `INV_IOMMU_PAGES` of one 4 KiB page, with or without PDE.
    fn invalidate(&mut self, iova: u64, pde: bool) {
        self.command([
            0,
            DOMAIN as u32 | (3 << 28),
            (iova as u32 & !0xFFF) | if pde { 2 } else { 0 },
            (iova >> 32) as u32,
        ]);
    }

    fn write(&self, iova: u64) -> Option<u64> {
        self.unit.translate(RID, iova, 8, DmaAccess::Write)
    }
}

#[test]
fn stale_iotlb_entries_are_served_until_invalidated() {
    let mut r = rig();
    let (a, b) = (page(&r.k), page(&r.k));
    r.k.phys().write_u64(r.l1 + 8, a | PR | IR | IW);
    assert_eq!(r.write(0x1010), Some(a + 0x10), "walked from RAM");
    // The driver repoints the page without telling the unit: the IOTLB wins.
    r.k.phys().write_u64(r.l1 + 8, b | PR | IR | IW);
    assert_eq!(r.write(0x1010), Some(a + 0x10), "stale entry served");
    r.invalidate_page(0x1000);
    assert_eq!(
        r.write(0x1010),
        Some(b + 0x10),
        "fresh walk after INV_IOMMU_PAGES"
    );
    // Removed page: still reachable until a whole-domain invalidation (S = 1).
    r.k.phys().write_u64(r.l1 + 8, 0);
    assert_eq!(r.write(0x1010), Some(b + 0x10));
    r.command([0, DOMAIN as u32 | (3 << 28), 0xFFFF_F001, 0x7FFF_FFFF]);
    assert_eq!(r.write(0x1010), None);
    // The fault is in the event log: device, domain, write, address.
    assert_eq!(r.mmio.read_u64(reg::EVENT_TAIL), 16);
    let p = r.k.phys();
    let d0 = p.read_u64(r.evt).expect("event");
    assert_eq!(d0 as u32, u32::from(RID));
    let d1 = (d0 >> 32) as u32;
    assert_eq!(
        (d1 >> 28, d1 & 0xFFFF, (d1 >> 16) & 0x20),
        (2, DOMAIN as u32, 0x20)
    );
    assert_eq!(p.read_u64(r.evt + 8), Some(0x1010));
    // Another domain's invalidation does not touch this one.
    r.k.phys().write_u64(r.l1 + 8, a | PR | IR);
    assert!(r.unit.translate(RID, 0x1000, 8, DmaAccess::Read).is_some());
    r.command([0, 7 | (3 << 28), 0xFFFF_F001, 0x7FFF_FFFF]);
    r.k.phys().write_u64(r.l1 + 8, 0);
    assert!(r.unit.translate(RID, 0x1000, 8, DmaAccess::Read).is_some());
}

#[test]
fn device_table_entries_are_cached_until_inv_dev_entry() {
    let mut r = rig();
    let a = page(&r.k);
    r.k.phys().write_u64(r.l1 + 8, a | PR | IR | IW);
    assert_eq!(r.write(0x1000), Some(a));
    // Block the device (Mode 0, no permission) without invalidating.
    r.k.phys().write_u64(r.dt + u64::from(RID) * 32, PR | 2);
    assert_eq!(r.write(0x1000), Some(a), "cached entry still used");
    r.command([u32::from(RID), 2 << 28, 0, 0]);
    assert_eq!(r.write(0x1000), None, "blocked after INV_DEV_ENTRY");
    let d1 = (r.k.phys().read_u64(r.evt).expect("event") >> 32) as u32;
    assert_eq!((d1 >> 16) & 0x50, 0x50, "present + permission flags");
    // V = 0: the unit does not translate at all.
    r.k.phys().write_u64(r.dt + u64::from(RID) * 32, 0);
    r.command([u32::from(RID), 2 << 28, 0, 0]);
    assert_eq!(r.write(0x1234_5000), Some(0x1234_5000));
}

#[test]
fn other_page_sizes_skipped_levels_and_superpages_are_decoded() {
    let r = rig();
    let p = r.k.phys();
    // NextLevel 7 at level 1: a 64 KiB page (bits 14:12 set, bit 15 clear).
    let big = p.alloc(64 * 1024, false).expect("64 KiB");
    // The entry is replicated over the 16 level-1 slots the page covers.
    for slot in 16..32 {
        p.write_u64(r.l1 + slot * 8, big | 0x7000 | (7 << 9) | PR | IR | IW);
    }
    assert_eq!(r.write(0x1_2345), Some(big + 0x2345));
    // A 2 MiB leaf at level 2 (NextLevel 0).
    let huge = p.alloc(2 << 20, false).expect("2 MiB");
    p.write_u64(r.l2 + 8, huge | PR | IR | IW);
    assert_eq!(r.write(0x20_1234), Some(huge + 0x1234));
    // Level 3 entry 1 skips level 2: NextLevel 1 straight to a level-1 table.
    let l1b = page(&r.k);
    let d = page(&r.k);
    p.write_u64(r.l3 + 8, l1b | (1 << 9) | PR | IR | IW);
    p.write_u64(l1b + 3 * 8, d | PR | IR | IW);
    assert_eq!(r.write(0x4000_3000), Some(d));
    assert_eq!(
        r.write(0x4020_3000),
        None,
        "skipped index bits must be zero"
    );
    // Beyond the 3-level reach.
    assert_eq!(r.write(1 << 40), None);
}

#[test]
fn completion_wait_stores_and_a_full_event_log_overflows() {
    let mut r = rig();
    let store = page(&r.k);
    r.command([
        (store as u32) | 1,
        ((store >> 32) as u32) | (1 << 28),
        0xAABB_CCDD,
        0x1122_3344,
    ]);
    assert_eq!(r.k.phys().read_u64(store), Some(0x1122_3344_AABB_CCDD));
    assert_eq!(r.mmio.read_u64(reg::COMMAND_HEAD), r.tail);
    // 256 faults into a 256-entry log: one slot always stays empty.
    for i in 0..256u64 {
        assert_eq!(r.write(0x100_0000 + i * 4096), None);
    }
    assert_eq!(r.mmio.read_u64(reg::EVENT_TAIL), 255 * 16);
    assert_ne!(r.mmio.read_u64(reg::STATUS) & status::EVENT_OVERFLOW, 0);
    r.mmio.write_u64(reg::STATUS, status::EVENT_OVERFLOW);
    assert_eq!(
        r.mmio.read_u64(reg::STATUS) & status::EVENT_OVERFLOW,
        0,
        "RW1C"
    );
}

#[test]
fn directory_entries_are_cached_until_an_invalidation_with_pde() {
    let mut r = rig();
    let k = r.k.clone();
    let p = k.phys();
    let (a, b, l1b) = (page(&r.k), page(&r.k), page(&r.k));
    p.write_u64(r.l1 + 8, a | PR | IR | IW);
    p.write_u64(l1b + 8, b | PR | IR | IW);
    assert_eq!(r.write(0x1000), Some(a));
    assert!(r.unit.pde_entries() >= 2);
    // The level-2 entry now points at another level-1 table.
    p.write_u64(r.l2, l1b | (1 << 9) | PR | IR | IW);
    r.invalidate(0x1000, false);
    assert_eq!(
        r.write(0x1000),
        Some(a),
        "PDE=0: the old directory entry is walked"
    );
    // Another page of the same 2 MiB block: never in the IOTLB, still walked
    // through the cached directory entry.
    p.write_u64(r.l1 + 16, a | PR | IR | IW);
    assert_eq!(r.write(0x2000), Some(a));
    r.invalidate(0x1000, true);
    assert_eq!(
        r.write(0x1000),
        Some(b),
        "PDE=1 covering the block drops it"
    );
    // INV_ALL (opcode 8) drops every cache.
    p.write_u64(r.l2, r.l1 | (1 << 9) | PR | IR | IW);
    assert_eq!(r.write(0x1000), Some(b));
    r.command([0, 8 << 28, 0, 0]);
    assert_eq!(r.write(0x1000), Some(a));
}

#[test]
fn np_cache_serves_a_stale_not_present_until_invalidated() {
    for np_cache in [false, true] {
        let mut r = rig_with(SimAmdViOptions {
            np_cache,
            ..SimAmdViOptions::default()
        });
        assert_eq!(
            r.mmio.capability_header().map(|h| h & (1 << 26) != 0),
            Some(np_cache),
            "NpCache is bit 26 of the capability header"
        );
        let a = page(&r.k);
        assert_eq!(r.write(0x3000), None);
        r.k.phys().write_u64(r.l1 + 3 * 8, a | PR | IR | IW);
        if np_cache {
            assert_eq!(r.write(0x3000), None, "cached not-present served");
            r.invalidate(0x3000, false);
        }
        assert_eq!(r.write(0x3000), Some(a));
    }
}
