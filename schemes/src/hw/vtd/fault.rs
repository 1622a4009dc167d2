//! Primary fault recording, as QEMU 7.2 `vtd_report_dmar_fault` and
//! `vtd_record_frcd` do it.

use iommu::vtd::{fectl, fsts};

use super::regs::RegisterFile;

/// F: the record is valid (bit 127, bit 63 of the high quadword).
const F: u64 = 1 << 63;
/// T: a read request (bit 126).
const T: u64 = 1 << 62;

/// Records a fault of `sid` at `iova` with `reason`:
///
/// * nothing is recorded while PFO is set;
/// * a fault from a source id that already has a pending record is dropped
///   (QEMU `vtd_try_collapse_fault`);
/// * if the next record is still busy, PFO is set and the fault lost;
/// * otherwise the record is written (FI, SID, FR, T, F); if no fault was
///   pending, FRI points at it and PPF comes on, and the fault event is
///   raised (FECTL.IP; the simulated machine delivers no MSI).
pub fn record(regs: &mut RegisterFile, sid: u16, iova: u64, reason: u8, write: bool) {
    if regs.fsts & fsts::PFO != 0 {
        return;
    }
    if regs
        .frcd
        .iter()
        .any(|r| r[1] & F != 0 && r[1] as u16 == sid)
    {
        return;
    }
    let n = regs.frcd.len().max(1);
    let next = regs.next_frcd % n;
    let pending_before = regs.fsts() & fsts::PPF != 0;
    let Some(slot) = regs.frcd.get_mut(next) else {
        return;
    };
    if slot[1] & F != 0 {
        regs.fsts |= fsts::PFO;
        regs.fectl |= fectl::IP;
        return;
    }
    let mut hi = F | u64::from(sid) | (u64::from(reason) << 32);
    if !write {
        hi |= T;
    }
    *slot = [iova & !0xFFF, hi];
    if !pending_before {
        regs.fri = next as u32;
        regs.fectl |= fectl::IP;
    }
    regs.next_frcd = (next + 1) % n;
}
