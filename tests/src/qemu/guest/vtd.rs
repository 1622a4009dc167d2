//! The scenarios on QEMU's `intel-iommu` (with and without caching mode): the
//! unmodified iommud finds the unit in QEMU's own DMAR and drives it, edu DMAs
//! through it. The DMA scenarios are the AMD-Vi model's ([`super::amdvi::Env`]);
//! VT-d adds its own bring-up check and `fault-recorded`: unlike QEMU's AMD-Vi,
//! its VT-d model records DMA faults, so a blocked DMA must show up in
//! DRAIN_EVENTS.

use driver_sys::memory::{MemoryRoot, MemoryType};
use iommu::protocol::MapFlags;

use super::amdvi::{Env, read_all};
use super::domain_move::MoveBy;
use super::pages::pattern;
use super::watchdog::Watchdog;
use super::{Outcome, report};
use crate::qemu::model::Model;

type Result<T> = std::result::Result<T, String>;

/// VT-d registers (VT-d specification chapter 11).
const GSTS: usize = 0x1C;
const RTADDR: usize = 0x20;
const FSTS: usize = 0x34;
const IQH: usize = 0x80;
const IQT: usize = 0x88;
const GSTS_TES: u32 = 1 << 31;
const GSTS_RTPS: u32 = 1 << 30;
const GSTS_QIES: u32 = 1 << 26;
/// VT-d fault reason "write not permitted".
const REASON_WRITE: u8 = 0x5;

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

/// The register base of the first DRHD of QEMU's DMAR (structures from offset
/// 48; a DRHD is type 0 with its base at offset 8), read through the `acpi`
/// scheme.
fn dmar_unit_base() -> Result<u64> {
    let listing =
        driver_sys::irq::listing::list_dir("/scheme/acpi/tables").map_err(e("listing"))?;
    let name = listing
        .iter()
        .find(|l| l.starts_with("DMAR-"))
        .ok_or("no DMAR table in /scheme/acpi/tables")?;
    let dmar = read_all(&format!("/scheme/acpi/tables/{name}"))?;
    let drhd = dmar.get(48..64).ok_or("DMAR has no structure")?;
    if drhd[0..2] != [0, 0] {
        return Err(format!(
            "DMAR: first structure type {} is not a DRHD",
            drhd[0]
        ));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&drhd[8..16]);
    Ok(u64::from_le_bytes(b))
}

fn unit_up(env: &Env) -> Result<Outcome> {
    let regs = MemoryRoot::open()
        .and_then(|root| root.physmap(env.base, 4096, MemoryType::Uncacheable))
        .map_err(e("physmap"))?;
    // 32-bit registers 4 bytes at a time: an 8-byte access aborts QEMU 7.2.
    let reg32 = |off: usize| {
        // SAFETY: inside the 4 KiB register mapping, 4-byte aligned.
        unsafe { regs.as_ptr().add(off).cast::<u32>().read_volatile() }
    };
    let reg64 = |off: usize| {
        // SAFETY: inside the 4 KiB register mapping, 8-byte aligned.
        unsafe { regs.as_ptr().add(off).cast::<u64>().read_volatile() }
    };
    let gsts = reg32(GSTS);
    let root = reg64(RTADDR) & !0xFFF;
    let (iqh, iqt, fsts) = (reg64(IQH), reg64(IQT), reg32(FSTS));
    let mut problems = Vec::new();
    if gsts & (GSTS_TES | GSTS_QIES | GSTS_RTPS) != GSTS_TES | GSTS_QIES | GSTS_RTPS {
        problems.push(format!("GSTS {gsts:#x} lacks TES/QIES/RTPS"));
    }
    if iqh != iqt {
        problems.push(format!("queue head {iqh:#x} != tail {iqt:#x}"));
    }
    // edu's root and context entries, straight from guest RAM.
    let bdf = env.edu.bdf();
    let read = |phys: u64| {
        env.machine.ram.host_ptr(phys, 8).map(|p| {
            // SAFETY: host_ptr checked the 8 bytes lie in guest RAM we mapped.
            unsafe { p.cast::<u64>().read_volatile() }
        })
    };
    let root_entry = read(root + u64::from(bdf.bus()) * 16);
    let ctx = root_entry
        .filter(|r| r & 1 == 1)
        .map(|r| (r & !0xFFF) + u64::from(bdf.requester_id() & 0xFF) * 16);
    let (lo, hi) = match ctx.and_then(|c| Some((read(c)?, read(c + 8)?))) {
        Some(pair) => pair,
        None => {
            problems.push(format!(
                "root table {root:#x} or edu's context table is not present in guest RAM"
            ));
            (0, 0)
        }
    };
    // P, TT = translated, DID = domain 1's id, AW naming 3 or 4 levels.
    let did = (hi >> 8) as u16;
    if lo & 1 != 1 || (lo >> 2) & 3 != 0 || did != env.a.id() || !matches!(hi & 7, 1 | 2) {
        problems.push(format!(
            "edu's context entry {lo:#x}/{hi:#x} is not a present translated entry of domain {}",
            env.a.id()
        ));
    }
    let waits = env.stat_field("completion_waits")?;
    if waits == 0 {
        problems.push("no invalidation wait completed".into());
    }
    let detail = format!(
        "unit at {:#x} (iommud found it in QEMU's DMAR): GSTS={gsts:#x}, root table {root:#x}, \
         edu {bdf} context entry {lo:#x}/{hi:#x}, IQH={iqh:#x} IQT={iqt:#x}, FSTS={fsts:#x}, \
         invalidation waits completed: {waits}",
        env.base
    );
    Ok(if problems.is_empty() {
        Outcome::Pass(detail)
    } else {
        Outcome::Fail(format!("{}; {detail}", problems.join("; ")))
    })
}

/// A DMA write through a read-only mapping is blocked and recorded: QEMU
/// writes a fault record (reason 5, edu's source id, the page), iommud
/// drains it into DRAIN_EVENTS.
fn fault_recorded(env: &Env) -> Result<Outcome> {
    // Older faults (the blocked-DMA scenarios) would collapse a new one of
    // the same source id in QEMU's single record: drain them first.
    env.a.drain_events().map_err(e("drain"))?;
    let canary = env.canary()?;
    let iova = env
        .a
        .map(canary.phys(), 4096, MapFlags::READ, None)
        .map_err(e("map read-only"))?;
    let r = (|| {
        env.load(&env.a, &pattern(13))?;
        env.write(iova)?;
        env.a.drain_events().map_err(e("drain"))
    })();
    env.a.unmap(iova).map_err(e("unmap"))?;
    let drained = r?;
    let count = drained.count;
    let rid = env.edu.bdf().requester_id();
    Ok(match drained.first {
        Some(f)
            if canary.canary_intact()
                && f.code == u16::from(REASON_WRITE)
                && f.vendor == Some(iommu::Vendor::Vtd)
                && f.write
                && f.device.requester_id() == rid
                && f.address == iova =>
        {
            Outcome::Pass(format!(
                "blocked DMA write to read-only IOVA {iova:#x}: {count} fault record(s) drained, \
                 the first reason {:#x} (write) from {} at {:#x}",
                f.code,
                env.edu.bdf(),
                f.address
            ))
        }
        Some(f) => Outcome::Fail(format!(
            "fault drained but not the expected one: reason {:#x} ({:?}, write {}), device {:#x}, \
             address {:#x} (expected VT-d reason 5, a write, {rid:#x}, {iova:#x}); canary intact: {}",
            f.code,
            f.vendor,
            f.write,
            f.device.requester_id(),
            f.address,
            canary.canary_intact()
        )),
        None => Outcome::Fail(format!(
            "DMA write to read-only IOVA {iova:#x}: no fault recorded (canary intact: {})",
            canary.canary_intact()
        )),
    })
}

/// Runs the VT-d scenarios of `model`.
pub fn run(model: &'static Model) {
    let env = match Env::setup(dmar_unit_base) {
        Ok(env) => env,
        Err(why) => {
            for s in model.scenarios {
                report(
                    model,
                    s.name,
                    &Outcome::Fail(format!("setup failed: {why}")),
                );
            }
            return;
        }
    };
    let mut watchdog = Watchdog::start(model);
    for s in model.scenarios {
        watchdog.begin(s.name);
        let outcome = match s.name {
            "unit-up" => unit_up(&env),
            "fault-recorded" => fault_recorded(&env),
            "dma-lands" => env.dma_lands(),
            "unmapped-blocked" => env.unmapped_blocked(),
            "readonly-blocked" => env.readonly_blocked(),
            "strict-unmap" => env.strict_unmap(),
            "lazy-unmap" => env.lazy_unmap(),
            "remap" => env.remap(),
            "superpage-2m" => env.superpage(),
            "ring-wrap" => env.ring_wrap(),
            "domain-move" => env.domain_move(MoveBy::Bdf),
            "domain-move-channel" => env.domain_move(MoveBy::Channel),
            "detach" => env.detach(),
            "passthrough-unheld" => env.passthrough_unheld(),
            other => Err(format!("no such VT-d scenario: {other}")),
        };
        report(
            model,
            s.name,
            &outcome.unwrap_or_else(|why| Outcome::Fail(format!("error: {why}"))),
        );
    }
    watchdog.finish();
}
