//! The scenarios on QEMU's `amd-iommu`: the unmodified iommud drives the unit, edu
//! DMAs through it, and every check is on the bytes that did or did not arrive.
//!
//! QEMU 7.2 never writes AMD-Vi event log entries, so a blocked DMA shows only as
//! data that did not land: each fault scenario fills a canary page first and checks
//! it afterwards.

use driver_sys::dma::{DmaDirection, IommuDmaAllocator, MapFlags};
use driver_sys::memory::{MemoryRoot, MemoryType, PhysMemory};
use driver_sys::quirks::QuirkFlags;
use iommu::{Invalidation, IommuDomain};
use redox_host::boot::{RunningDaemon, iommud_physmap};
use redox_host::guest::GuestMachine;
use redox_host::kernel::{Cred, EnterGuard, Process};

use super::domain_move::MoveBy;
use super::pages::{CANARY, Pages, TRANSFER, pattern};
use super::watchdog::Watchdog;
use super::{Outcome, report};
use crate::edu::Edu;
use crate::qemu::model::Model;

/// Guest RAM reserved for the `memory` scheme.
const GUEST_RAM: usize = 40 << 20;
/// Strict MAP/UNMAP cycles of the ring-wrap scenario (2+ commands each).
const RING_WRAP_CYCLES: usize = 200;
/// Bytes of the superpage scenario's mapping.
const SUPERPAGE: usize = 2 << 20;
/// IOVA of the superpage mapping (2 MiB aligned, far from the allocator's picks).
const SUPERPAGE_IOVA: u64 = 0x4_0000_0000;
/// AMD-Vi registers (AMD IOMMU specification, MMIO offsets).
const REG_DEVICE_TABLE: usize = 0x0000;
const REG_COMMAND_BASE: usize = 0x0008;
const REG_CONTROL: usize = 0x0018;
const REG_COMMAND_HEAD: usize = 0x2000;
const REG_COMMAND_TAIL: usize = 0x2008;
const CONTROL_IOMMU_EN: u64 = 1 << 0;
const CONTROL_CMDBUF_EN: u64 = 1 << 12;
const ADDRESS_MASK: u64 = 0x000F_FFFF_FFFF_F000;

type Result<T> = std::result::Result<T, String>;

fn e<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |err| format!("{what}: {err}")
}

/// Everything the scenarios share (the VT-d model's scenarios use it too).
pub(super) struct Env {
    pub(super) machine: GuestMachine,
    pub(super) base: u64,
    memory: PhysMemory,
    pub(super) edu: Edu,
    pub(super) a: IommuDomain,
    _iommud: RunningDaemon,
    _guard: EnterGuard,
    _process: std::sync::Arc<Process>,
}

/// Reads a whole file of the mocked kernel's namespace.
pub(super) fn read_all(path: &str) -> Result<Vec<u8>> {
    let fd = libredox::Fd::open(path, libredox::flag::O_RDONLY, 0).map_err(e("open"))?;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = fd.read(&mut buf).map_err(e("read"))?;
        if n == 0 || out.len() > (1 << 20) {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
    }
}

/// The AMD-Vi register base from the IVRS QEMU built, read through the `acpi`
/// scheme (the first IVHD, at offset 48; base address at IVHD offset 8): where the
/// test looks at the registers iommud programmed.
fn ivrs_unit_base() -> Result<u64> {
    let listing =
        driver_sys::irq::listing::list_dir("/scheme/acpi/tables").map_err(e("listing"))?;
    let name = listing
        .iter()
        .find(|l| l.starts_with("IVRS-"))
        .ok_or("no IVRS table in /scheme/acpi/tables")?;
    let ivrs = read_all(&format!("/scheme/acpi/tables/{name}"))?;
    let ivhd = ivrs.get(48..64).ok_or("IVRS has no IVHD")?;
    if !matches!(ivhd[0], 0x10 | 0x11 | 0x40) {
        return Err(format!(
            "IVRS: first entry type {:#x} is not an IVHD",
            ivhd[0]
        ));
    }
    let mut b = [0u8; 8];
    b.copy_from_slice(&ivhd[8..16]);
    Ok(u64::from_le_bytes(b))
}

impl Env {
    /// Boots the guest machine and iommud (which finds its unit in the
    /// firmware's tables itself); `unit_base` says where the test looks at
    /// the unit's registers.
    pub(super) fn setup(unit_base: fn() -> Result<u64>) -> Result<Self> {
        let machine = redox_host::guest::boot(GUEST_RAM).map_err(e("guest boot"))?;
        let (process, guard) = machine.kernel.enter("qemu-guest", Cred::ROOT);
        let base = unit_base()?;
        let config = iommu::Config {
            // Lazy flushes happen only when asked: edu's transfers take 100 ms, longer
            // than the default 10 ms flush deadline.
            flush_timeout_ms: 600_000,
            ..iommu::Config::default()
        };
        // No register base given: iommud finds the unit in QEMU's IVRS, as on Redox.
        let iommud = iommud_physmap(&machine.kernel, config, Vec::new());
        let memory = PhysMemory::open().map_err(e("memory scheme"))?;
        let edu = Edu::find().map_err(e("finding edu on /scheme/pci"))?;
        if !edu.alive().map_err(e("edu liveness"))? {
            return Err("edu's liveness register does not answer".into());
        }
        let a = IommuDomain::open(1).map_err(e("domain 1"))?;
        a.assign(edu.bdf())
            .map_err(e("assigning edu to domain 1"))?;
        Ok(Self {
            machine,
            base,
            memory,
            edu,
            a,
            _iommud: iommud,
            _guard: guard,
            _process: process,
        })
    }

    pub(super) fn pages(&self, len: usize) -> Result<Pages> {
        Pages::alloc(&self.memory, len).map_err(e("allocating guest pages"))
    }

    pub(super) fn canary(&self) -> Result<Pages> {
        let p = self.pages(4096)?;
        p.fill(CANARY);
        Ok(p)
    }

    /// Puts `data` into edu's buffer by DMA from a read-only mapping in `dom`.
    pub(super) fn load(&self, dom: &IommuDomain, data: &[u8]) -> Result<()> {
        let src = self.pages(4096)?;
        src.write(0, data);
        let iova = dom
            .map(src.phys(), 4096, MapFlags::READ, None)
            .map_err(e("map source"))?;
        let r = self.edu.read_from_bus(iova, data.len());
        dom.unmap(iova).map_err(e("unmap source"))?;
        r.map_err(e("edu read DMA"))
    }

    pub(super) fn write(&self, bus: u64) -> Result<()> {
        self.edu
            .write_to_bus(bus, TRANSFER)
            .map_err(e("edu write DMA"))
    }

    pub(super) fn stat_field(&self, field: &str) -> Result<u64> {
        let text = String::from_utf8_lossy(&read_all("/scheme/iommu/stats")?).into_owned();
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(field)?.strip_prefix('=')?.parse().ok())
            .ok_or(format!("no {field} in iommud's stats"))
    }

    fn unit_up(&self) -> Result<Outcome> {
        let regs = MemoryRoot::open()
            .and_then(|root| root.physmap(self.base, 0x4000, MemoryType::Uncacheable))
            .map_err(e("physmap"))?;
        let reg = |off: usize| {
            // SAFETY: inside the 16 KiB register mapping, 8-byte aligned.
            unsafe { regs.as_ptr().add(off).cast::<u64>().read_volatile() }
        };
        let control = reg(REG_CONTROL);
        let devtab = reg(REG_DEVICE_TABLE);
        let cmd_base = reg(REG_COMMAND_BASE);
        let ring = 4096u64;
        let (head, tail) = (reg(REG_COMMAND_HEAD), reg(REG_COMMAND_TAIL));
        let mut problems = Vec::new();
        if control & (CONTROL_IOMMU_EN | CONTROL_CMDBUF_EN) != CONTROL_IOMMU_EN | CONTROL_CMDBUF_EN
        {
            problems.push(format!("control {control:#x} lacks IommuEn/CmdBufEn"));
        }
        let dt = devtab & ADDRESS_MASK;
        if devtab & 0x1FF != 0x1FF {
            problems.push(format!(
                "device table size field {:#x}, not 2 MiB",
                devtab & 0x1FF
            ));
        }
        // The entry the unit reads for edu, straight from guest RAM.
        let rid = u64::from(self.edu.bdf().requester_id());
        let dte = self.machine.ram.host_ptr(dt + rid * 32, 32);
        let (qw0, qw1) = match dte {
            // SAFETY: host_ptr checked the 32 bytes lie in guest RAM we mapped.
            Some(p) => unsafe {
                (
                    p.cast::<u64>().read_volatile(),
                    p.cast::<u64>().add(1).read_volatile(),
                )
            },
            None => {
                problems.push(format!(
                    "device table {dt:#x} is not in the reserved guest RAM"
                ));
                (0, 0)
            }
        };
        if qw0 & 0b11 != 0b11 || (qw0 >> 9) & 7 == 0 || qw1 & 0xFFFF != u64::from(self.a.id()) {
            problems.push(format!(
                "edu's DTE {qw0:#x}/{qw1:#x} is not V|TV with a page table in domain {}",
                self.a.id()
            ));
        }
        // QEMU 7.2 may leave head at the ring size after the last slot: compare modulo.
        if head % ring != tail % ring {
            problems.push(format!("command head {head:#x} != tail {tail:#x}"));
        }
        let waits = self.stat_field("completion_waits")?;
        if waits == 0 {
            problems.push("no completion-wait store seen".into());
        }
        let detail = format!(
            "unit at {:#x} (iommud found it in QEMU's IVRS): control={control:#x}, device table at {dt:#x} (2 MiB, in locked guest RAM), \
             edu {} DTE={qw0:#x}/{qw1:#x}, command ring at {:#x} head={head:#x} tail={tail:#x}, \
             completion-wait stores seen: {waits}",
            self.base,
            self.edu.bdf(),
            cmd_base & ADDRESS_MASK
        );
        Ok(if problems.is_empty() {
            Outcome::Pass(detail)
        } else {
            Outcome::Fail(format!("{}; {detail}", problems.join("; ")))
        })
    }

    pub(super) fn dma_lands(&self) -> Result<Outcome> {
        let alloc = IommuDmaAllocator::for_domain(self.a.id(), QuirkFlags::empty(), 64)
            .map_err(e("IommuDmaAllocator"))?;
        let data = pattern(1);
        let mut scratch = data.clone();
        let out = alloc
            .map_single(&data, DmaDirection::ToDevice)
            .map_err(e("map_single to device"))?;
        let out_iova = out.bus_address();
        let r = self.edu.read_from_bus(out_iova, TRANSFER);
        alloc
            .unmap_single(out, &mut scratch)
            .map_err(e("unmap_single"))?;
        r.map_err(e("edu read DMA"))?;
        let mut back = vec![0u8; TRANSFER];
        let mut inb = alloc
            .map_single(&back, DmaDirection::FromDevice)
            .map_err(e("map_single from device"))?;
        let in_iova = inb.bus_address();
        let r = self.edu.write_to_bus(in_iova, TRANSFER);
        alloc
            .sync_for_cpu(&mut inb, &mut back)
            .map_err(e("sync_for_cpu"))?;
        alloc
            .unmap_single(inb, &mut back)
            .map_err(e("unmap_single"))?;
        r.map_err(e("edu write DMA"))?;
        let detail = format!(
            "{TRANSFER} bytes RAM->edu from IOVA {out_iova:#x} and edu->RAM to IOVA {in_iova:#x} (driver-sys streaming maps)"
        );
        Ok(if back == data {
            Outcome::Pass(format!("{detail}: bytes match"))
        } else {
            Outcome::Fail(format!("{detail}: bytes differ"))
        })
    }

    pub(super) fn unmapped_blocked(&self) -> Result<Outcome> {
        let canary = self.canary()?;
        // The canary's physical address as the IOVA: unmapped in the domain, and the
        // very page a device without translation would hit.
        let iova = canary.phys();
        if self.a.translate(iova).is_ok() {
            return Ok(Outcome::Fail(format!(
                "IOVA {iova:#x} is unexpectedly mapped"
            )));
        }
        self.load(&self.a, &pattern(2))?;
        self.write(iova)?;
        Ok(if canary.canary_intact() {
            Outcome::Pass(format!(
                "DMA write to unmapped IOVA {iova:#x} (= the canary's physical address) left the canary intact; \
                 no event log entry to check on QEMU 7.2"
            ))
        } else {
            Outcome::Fail(format!(
                "DMA to unmapped IOVA {iova:#x} reached the canary page"
            ))
        })
    }

    pub(super) fn readonly_blocked(&self) -> Result<Outcome> {
        let canary = self.canary()?;
        let iova = self
            .a
            .map(canary.phys(), 4096, MapFlags::READ, None)
            .map_err(e("map read-only"))?;
        let r = (|| {
            self.load(&self.a, &pattern(3))?;
            self.write(iova)?;
            let intact = canary.canary_intact();
            // The mapping itself works for reads: edu fetches the canary bytes.
            self.edu
                .read_from_bus(iova, TRANSFER)
                .map_err(e("edu read DMA"))?;
            let sink = self.pages(4096)?;
            let sink_iova = self
                .a
                .map(sink.phys(), 4096, MapFlags::READ_WRITE, None)
                .map_err(e("map sink"))?;
            let w = self.write(sink_iova);
            self.a.unmap(sink_iova).map_err(e("unmap sink"))?;
            w?;
            let readable = sink.holds(0, &[CANARY; TRANSFER]);
            Ok::<_, String>((intact, readable))
        })();
        self.a.unmap(iova).map_err(e("unmap"))?;
        let (intact, readable) = r?;
        Ok(match (intact, readable) {
            (true, true) => Outcome::Pass(format!(
                "DMA write through read-only IOVA {iova:#x} left the canary intact, a DMA read through it worked"
            )),
            (false, _) => Outcome::Fail(format!(
                "DMA write through read-only IOVA {iova:#x} changed the page"
            )),
            (true, false) => Outcome::Fail(format!(
                "read-only IOVA {iova:#x} was not readable either: the block proves nothing"
            )),
        })
    }

    /// Maps `page` at a fresh IOVA, DMAs `data` into it (so the unit caches the
    /// translation) and checks it landed.
    pub(super) fn map_and_reach(&self, page: &Pages, data: &[u8]) -> Result<u64> {
        let iova = self
            .a
            .map(page.phys(), 4096, MapFlags::READ_WRITE, None)
            .map_err(e("map"))?;
        self.load(&self.a, data)?;
        self.write(iova)?;
        if !page.holds(0, data) {
            return Err(format!("DMA to freshly mapped IOVA {iova:#x} did not land"));
        }
        Ok(iova)
    }

    pub(super) fn strict_unmap(&self) -> Result<Outcome> {
        self.a
            .set_invalidation(Invalidation::Strict)
            .map_err(e("strict"))?;
        let page = self.pages(4096)?;
        let data = pattern(4);
        let iova = self.map_and_reach(&page, &data)?;
        self.a.unmap(iova).map_err(e("unmap"))?;
        page.fill(CANARY);
        self.write(iova)?;
        Ok(if page.canary_intact() {
            Outcome::Pass(format!(
                "after strict UNMAP of {iova:#x} (cached by a DMA just before) the device no longer reached the page"
            ))
        } else {
            Outcome::Fail(format!(
                "after strict UNMAP of {iova:#x} the device still wrote the page: stale IOTLB, invalidation missing"
            ))
        })
    }

    pub(super) fn lazy_unmap(&self) -> Result<Outcome> {
        self.a
            .set_invalidation(Invalidation::Lazy)
            .map_err(e("lazy"))?;
        let r = (|| {
            let page = self.pages(4096)?;
            let data = pattern(5);
            let iova = self.map_and_reach(&page, &data)?;
            self.a.unmap(iova).map_err(e("unmap"))?;
            page.fill(CANARY);
            self.write(iova)?;
            let before_flush = page.holds(0, &data);
            let released = self.a.flush().map_err(e("flush"))?;
            page.fill(CANARY);
            self.write(iova)?;
            let after_flush = page.canary_intact();
            Ok::<_, String>((iova, before_flush, after_flush, released))
        })();
        self.a
            .set_invalidation(Invalidation::Strict)
            .map_err(e("strict"))?;
        let (iova, before, after, released) = r?;
        Ok(match (before, after) {
            (true, true) => Outcome::Pass(format!(
                "after lazy UNMAP of {iova:#x} the device still reached the page (QEMU's IOTLB held it); \
                 after the flush ({released} IOVAs released) it did not"
            )),
            (false, _) => Outcome::Fail(format!(
                "after lazy UNMAP of {iova:#x} the page was unreachable before any flush: the unmap was not deferred"
            )),
            (true, false) => Outcome::Fail(format!(
                "after the lazy flush the device still reached {iova:#x}: the flush did not invalidate"
            )),
        })
    }

    pub(super) fn remap(&self) -> Result<Outcome> {
        let old = self.pages(4096)?;
        let new = self.pages(4096)?;
        let data = pattern(6);
        let iova = self.map_and_reach(&old, &data)?;
        self.a.unmap(iova).map_err(e("unmap"))?;
        let again = self
            .a
            .map(new.phys(), 4096, MapFlags::READ_WRITE, Some(iova))
            .map_err(e("map again at the same IOVA"))?;
        old.fill(CANARY);
        new.fill(CANARY);
        self.write(iova)?;
        let r = match (new.holds(0, &data), old.canary_intact()) {
            (true, true) => Outcome::Pass(format!(
                "IOVA {iova:#x} remapped from {:#x} to {:#x}: the DMA reached only the new page",
                old.phys(),
                new.phys()
            )),
            (_, false) => Outcome::Fail(format!(
                "IOVA {iova:#x} remapped: the DMA still reached the old page {:#x} (stale IOTLB)",
                old.phys()
            )),
            (false, true) => Outcome::Fail(format!(
                "IOVA {iova:#x} remapped to {:#x}: the DMA reached neither page",
                new.phys()
            )),
        };
        self.a.unmap(again).map_err(e("unmap"))?;
        Ok(r)
    }

    pub(super) fn superpage(&self) -> Result<Outcome> {
        let big = self.pages(SUPERPAGE)?;
        if big.phys() % SUPERPAGE as u64 != 0 {
            return Ok(Outcome::Fail(format!(
                "guest RAM gave {:#x}, not 2 MiB aligned",
                big.phys()
            )));
        }
        big.fill(CANARY);
        let iova = self
            .a
            .map(
                big.phys(),
                SUPERPAGE as u64,
                MapFlags::READ_WRITE,
                Some(SUPERPAGE_IOVA),
            )
            .map_err(e("map 2 MiB"))?;
        let data = pattern(7);
        let offsets = [0usize, 0x10_0800, SUPERPAGE - TRANSFER];
        let r = (|| {
            self.load(&self.a, &data)?;
            for off in offsets {
                self.write(iova + off as u64)?;
            }
            Ok::<_, String>(())
        })();
        self.a.unmap(iova).map_err(e("unmap"))?;
        r?;
        let missing: Vec<String> = offsets
            .iter()
            .filter(|&&off| !big.holds(off, &data))
            .map(|off| format!("{off:#x}"))
            .collect();
        let untouched = big.read(0x8_0000, 4096).iter().all(|&b| b == CANARY);
        Ok(if missing.is_empty() && untouched {
            Outcome::Pass(format!(
                "2 MiB at IOVA {iova:#x} -> {:#x}: DMA landed at offsets 0, 0x100800 and 0x1ffe00, nowhere else",
                big.phys()
            ))
        } else {
            Outcome::Fail(format!(
                "2 MiB mapping at {iova:#x}: missing at offsets [{}], stray bytes: {}",
                missing.join(", "),
                !untouched
            ))
        })
    }

    /// Enough strict map/unmap cycles (each UNMAP queues INV_IOMMU_PAGES and
    /// COMPLETION_WAIT) to wrap the 256-entry command ring more than once; QEMU 7.2
    /// may report the head as the ring size after the last slot.
    pub(super) fn ring_wrap(&self) -> Result<Outcome> {
        let before = self.stat_field("commands")?;
        let page = self.pages(4096)?;
        for _ in 0..RING_WRAP_CYCLES {
            let iova = self
                .a
                .map(page.phys(), 4096, MapFlags::READ_WRITE, None)
                .map_err(e("map"))?;
            self.a.unmap(iova).map_err(e("unmap"))?;
        }
        let commands = self.stat_field("commands")? - before;
        let data = pattern(12);
        let iova = self.map_and_reach(&page, &data)?;
        self.a.unmap(iova).map_err(e("unmap"))?;
        Ok(if commands > 256 {
            Outcome::Pass(format!(
                "{commands} commands through the 256-entry ring (wrapped), every completion wait answered, DMA still lands"
            ))
        } else {
            Outcome::Fail(format!("only {commands} commands: the ring did not wrap"))
        })
    }

    pub(super) fn detach(&self) -> Result<Outcome> {
        let page = self.pages(4096)?;
        let iova = self.map_and_reach(&page, &pattern(11))?;
        page.fill(CANARY);
        self.a
            .unassign(self.edu.bdf())
            .map_err(e("unassigning edu"))?;
        let w = self.write(iova);
        let intact = page.canary_intact();
        self.a
            .assign(self.edu.bdf())
            .map_err(e("assigning edu again"))?;
        self.a.unmap(iova).map_err(e("unmap"))?;
        w?;
        Ok(if intact {
            Outcome::Pass(format!(
                "after UNASSIGN the device no longer reached {iova:#x}, which it had just used (cached)"
            ))
        } else {
            Outcome::Fail(format!(
                "after UNASSIGN the device still reached {iova:#x} through the unit's cached translation"
            ))
        })
    }

    pub(super) fn passthrough_unheld(&self) -> Result<Outcome> {
        let data = pattern(10);
        self.load(&self.a, &data)?;
        let target = self.canary()?;
        self.a
            .unassign(self.edu.bdf())
            .map_err(e("unassigning edu"))?;
        self.write(target.phys())?;
        Ok(if target.holds(0, &data) {
            Outcome::Pass(format!(
                "edu held by no domain: DMA to physical {:#x} landed (passthrough)",
                target.phys()
            ))
        } else if target.canary_intact() {
            Outcome::Fail(format!(
                "edu held by no domain was blocked: DMA to physical {:#x} did not land, \
                 but passthrough is iommud's default",
                target.phys()
            ))
        } else {
            Outcome::Fail(format!(
                "the DMA to physical {:#x} wrote something else: {:02x?} (expected {:02x?})",
                target.phys(),
                target.read(0, 8),
                &data[..8]
            ))
        })
    }
}

/// Runs the AMD-Vi scenarios of `model`.
pub fn run(model: &'static Model) {
    let env = match Env::setup(ivrs_unit_base) {
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
            "unit-up" => env.unit_up(),
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
            other => Err(format!("no such AMD-Vi scenario: {other}")),
        };
        report(
            model,
            s.name,
            &outcome.unwrap_or_else(|why| Outcome::Fail(format!("error: {why}"))),
        );
    }
    watchdog.finish();
}
