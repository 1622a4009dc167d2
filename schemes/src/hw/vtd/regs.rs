//! The simulated unit's register file and its MMIO rules, after QEMU 7.2
//! `vtd_mem_read`/`vtd_mem_write`, `vtd_handle_gcmd_write`,
//! `vtd_handle_gcmd_qie`, `vtd_handle_iqt_write` and `vtd_init`.

use iommu::vtd::{fectl, fsts, gcmd, reg};

use super::{SimVtd, SimVtdConfig, queue};
use crate::kernel::wait::lock;

/// IVA register (ECAP.IRO = 0xF, so 0x0F0).
pub const IVA: u64 = 0x0F0;
/// IOTLB invalidation register.
pub const IOTLB: u64 = 0x0F8;
/// First fault-recording register (CAP.FRO = 0x22).
pub const FRCD: u64 = 0x220;
/// IRTA (interrupt-remapping table address), kept but unused.
const IRTA: u64 = 0x0B8;
/// Register-based invalidation busy bit (CCMD.ICC, IOTLB.IVT).
const BUSY: u64 = 1 << 63;

/// Registers of one unit.
#[derive(Debug, Default)]
pub struct RegisterFile {
    /// CAP.
    pub cap: u64,
    /// ECAP.
    pub ecap: u64,
    /// GSTS.
    pub gsts: u32,
    /// RTADDR as written.
    pub rtaddr: u64,
    /// The root table latched by the last SRTP.
    pub root: u64,
    /// CCMD.
    pub ccmd: u64,
    /// FSTS bits stored (PFO, IQE, ICE, ITE); PPF is computed on read.
    pub fsts: u32,
    /// FRI: the record PPF pointed at when it came on.
    pub fri: u32,
    /// FECTL (IM, IP).
    pub fectl: u32,
    /// FEDATA, FEADDR, FEUADDR.
    pub fault_msi: [u32; 3],
    /// IQH as a descriptor index.
    pub iqh: u64,
    /// IQT as a descriptor index.
    pub iqt: u64,
    /// IQA as written.
    pub iqa: u64,
    /// Queue base latched when QIE turned on.
    pub queue_base: u64,
    /// Queue size (descriptors) latched when QIE turned on.
    pub queue_entries: u64,
    /// ICS (IWC).
    pub ics: u32,
    /// IECTL (IM, IP), IEDATA, IEADDR, IEUADDR.
    pub completion_msi: [u32; 4],
    /// IVA.
    pub iva: u64,
    /// IOTLB register.
    pub iotlb: u64,
    /// IRTA.
    pub irta: u64,
    /// Fault-recording registers (lo, hi).
    pub frcd: Vec<[u64; 2]>,
    /// The record the next fault goes to.
    pub next_frcd: usize,
}

impl RegisterFile {
    /// The reset state for `config` (QEMU `vtd_init`: FECTL and IECTL start
    /// masked).
    pub fn new(config: &SimVtdConfig) -> Self {
        Self {
            cap: config.cap(),
            ecap: config.ecap(),
            fectl: fectl::IM,
            completion_msi: [fectl::IM, 0, 0, 0],
            frcd: vec![[0, 0]; config.fault_records.clamp(1, 256) as usize],
            ..Self::default()
        }
    }

    /// Bytes of the register window.
    pub fn window(&self) -> u64 {
        FRCD + 16 * self.frcd.len() as u64
    }

    /// FSTS as software reads it: PPF from the records' F bits, FRI.
    pub fn fsts(&self) -> u32 {
        let pending = self.frcd.iter().any(|r| r[1] & (1 << 63) != 0);
        let mut v = self.fsts & !(fsts::PPF | (0xFF << fsts::FRI_SHIFT));
        if pending {
            v |= fsts::PPF | (self.fri << fsts::FRI_SHIFT);
        }
        v
    }
}

/// How an offset may be accessed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Width {
    /// A 32-bit register: 4-byte accesses only.
    Dword,
    /// The low half of a 64-bit register: 4 or 8 bytes.
    QwordLow,
    /// The high half of a 64-bit register: 4 bytes only.
    QwordHigh,
}

fn width(offset: u64, window: u64) -> Option<Width> {
    const DWORDS: [u64; 16] = [
        reg::VER,
        reg::GCMD,
        reg::GSTS,
        reg::FSTS,
        reg::FECTL,
        reg::FEDATA,
        reg::FEADDR,
        reg::FEUADDR,
        reg::PMEN,
        0x68, // PLMBASE
        0x6C, // PLMLIMIT
        reg::ICS,
        reg::IECTL,
        0xA4, // IEDATA
        0xA8, // IEADDR
        0xAC, // IEUADDR
    ];
    const QWORDS: [u64; 14] = [
        reg::CAP,
        reg::ECAP,
        reg::RTADDR,
        reg::CCMD,
        0x58, // AFLOG
        0x70, // PHMBASE
        0x78, // PHMLIMIT
        reg::IQH,
        reg::IQT,
        reg::IQA,
        reg::IQER,
        IRTA,
        IVA,
        IOTLB,
    ];
    if DWORDS.contains(&offset) {
        return Some(Width::Dword);
    }
    let fault_record = offset >= FRCD && offset < window;
    if QWORDS.contains(&offset) || (fault_record && offset.is_multiple_of(8)) {
        return Some(Width::QwordLow);
    }
    if QWORDS.contains(&(offset.wrapping_sub(4))) || (fault_record && offset % 8 == 4) {
        return Some(Width::QwordHigh);
    }
    None
}

impl SimVtd {
    /// QEMU 7.2 aborts the whole machine on this access; so does the
    /// simulated one.
    fn abort(&self, size: u8, offset: u64) -> ! {
        panic!(
            "simulated VT-d: {size}-byte access at register offset {offset:#x}: QEMU 7.2 \
             aborts the machine here (assert(size == 4) in vtd_mem_write)"
        );
    }

    fn check_width(&self, offset: u64, size: u8, window: u64) -> Option<Width> {
        let w = width(offset, window);
        // FEADDR is the one 32-bit register QEMU also takes 8 bytes at.
        if size == 8 && matches!(w, Some(Width::Dword | Width::QwordHigh)) && offset != reg::FEADDR
        {
            self.abort(size, offset);
        }
        w
    }

    /// A register read of `size` (4 or 8) bytes.
    pub(super) fn read_reg(&self, offset: u64, size: u8) -> u64 {
        let st = lock(&self.state);
        let r = &st.regs;
        if offset + u64::from(size) > r.window() {
            // QEMU: "MMIO over range" reads as all ones.
            return u64::MAX >> (64 - 8 * u32::from(size));
        }
        let Some(w) = self.check_width(offset, size, r.window()) else {
            return 0;
        };
        let base = if w == Width::QwordHigh {
            offset - 4
        } else {
            offset
        };
        let full = match base {
            reg::VER => 0x10,
            reg::CAP => r.cap,
            reg::ECAP => r.ecap,
            reg::GCMD => 0,
            reg::GSTS => u64::from(r.gsts),
            reg::RTADDR => r.rtaddr,
            reg::CCMD => r.ccmd,
            reg::FSTS => u64::from(r.fsts()),
            reg::FECTL => u64::from(r.fectl),
            reg::FEDATA => u64::from(r.fault_msi[0]),
            reg::FEADDR if size == 8 => {
                u64::from(r.fault_msi[1]) | (u64::from(r.fault_msi[2]) << 32)
            }
            reg::FEADDR => u64::from(r.fault_msi[1]),
            reg::FEUADDR => u64::from(r.fault_msi[2]),
            reg::IQH => r.iqh << 4,
            reg::IQT => r.iqt << 4,
            reg::IQA => r.iqa,
            reg::ICS => u64::from(r.ics),
            reg::IECTL => u64::from(r.completion_msi[0]),
            0xA4 => u64::from(r.completion_msi[1]),
            0xA8 => u64::from(r.completion_msi[2]),
            0xAC => u64::from(r.completion_msi[3]),
            IVA => r.iva,
            IOTLB => r.iotlb,
            IRTA => r.irta,
            o if o >= FRCD => {
                let i = ((o - FRCD) / 16) as usize;
                r.frcd
                    .get(i)
                    .map_or(0, |rec| rec[((o - FRCD) % 16 / 8) as usize])
            }
            _ => 0,
        };
        match (w, size) {
            (Width::QwordHigh, _) => full >> 32,
            (_, 4) => full & 0xFFFF_FFFF,
            _ => full,
        }
    }

    /// A register write of `size` (4 or 8) bytes.
    pub(super) fn write_reg(&self, offset: u64, size: u8, value: u64) {
        let mut guard = lock(&self.state);
        let st = &mut *guard;
        if offset + u64::from(size) > st.regs.window() {
            return;
        }
        let Some(w) = self.check_width(offset, size, st.regs.window()) else {
            return;
        };
        let base = if w == Width::QwordHigh {
            offset - 4
        } else {
            offset
        };
        // The new value of a 64-bit register written in whole or in half.
        let merge = |old: u64| match (w, size) {
            (Width::QwordHigh, _) => (old & 0xFFFF_FFFF) | (value << 32),
            (_, 4) => (old & !0xFFFF_FFFF) | (value & 0xFFFF_FFFF),
            _ => value,
        };
        // CCMD and IOTLB act on an 8-byte write or on their high dword.
        let fires = size == 8 || w == Width::QwordHigh;
        let r = &mut st.regs;
        match base {
            reg::GCMD => self.gcmd(st, value as u32),
            reg::RTADDR => r.rtaddr = merge(r.rtaddr),
            reg::CCMD => {
                r.ccmd = merge(r.ccmd);
                if fires && r.ccmd & BUSY != 0 {
                    queue::register_context_invalidation(self, st);
                }
            }
            reg::FSTS => {
                let w1c = fsts::PFO | fsts::AFO | fsts::IQE | fsts::ICE | fsts::ITE | fsts::PRO;
                r.fsts &= !(value as u32 & w1c);
                if r.fsts() & (fsts::PFO | fsts::PPF | fsts::IQE) == 0 {
                    r.fectl &= !fectl::IP;
                }
            }
            reg::FECTL => r.fectl = (r.fectl & !fectl::IM) | (value as u32 & fectl::IM),
            reg::FEDATA => r.fault_msi[0] = value as u32 & 0xFFFF,
            reg::FEADDR => {
                r.fault_msi[1] = value as u32 & !3;
                if size == 8 {
                    r.fault_msi[2] = (value >> 32) as u32;
                }
            }
            reg::FEUADDR => r.fault_msi[2] = value as u32,
            reg::IQT if w == Width::QwordLow => {
                r.iqt = (merge(r.iqt << 4) & reg::QUEUE_POINTER_MASK) >> 4;
                if r.gsts & gcmd::QIE != 0 && r.fsts & fsts::IQE == 0 {
                    self.run_queue(st);
                }
            }
            reg::IQA => r.iqa = merge(r.iqa),
            reg::ICS => {
                r.ics &= !(value as u32 & 1);
                if r.ics & 1 == 0 {
                    r.completion_msi[0] &= !fectl::IP;
                }
            }
            reg::IECTL => {
                r.completion_msi[0] =
                    (r.completion_msi[0] & !fectl::IM) | (value as u32 & fectl::IM)
            }
            0xA4 => r.completion_msi[1] = value as u32,
            0xA8 => r.completion_msi[2] = value as u32,
            0xAC => r.completion_msi[3] = value as u32,
            IVA => r.iva = merge(r.iva),
            IOTLB => {
                r.iotlb = merge(r.iotlb);
                if fires && r.iotlb & BUSY != 0 {
                    queue::register_iotlb_invalidation(self, st);
                }
            }
            IRTA => r.irta = merge(r.irta),
            o if o >= FRCD => {
                let i = ((o - FRCD) / 16) as usize;
                // Only F (bit 127) is writable: write 1 to clear.
                if (o - FRCD) % 16 == 8
                    && merge(0) & (1 << 63) != 0
                    && let Some(rec) = r.frcd.get_mut(i)
                {
                    rec[1] &= !(1 << 63);
                }
                if r.fsts() & (fsts::PFO | fsts::PPF | fsts::IQE) == 0 {
                    r.fectl &= !fectl::IP;
                }
            }
            _ => {}
        }
    }

    /// GCMD: act on what differs from GSTS (persistent bits) and on the
    /// one-shot bits set in `value`.
    fn gcmd(&self, st: &mut super::UnitState, value: u32) {
        let r = &mut st.regs;
        let changed = r.gsts ^ value;
        if changed & gcmd::TE != 0 {
            r.gsts = (r.gsts & !gcmd::TE) | (value & gcmd::TE);
        }
        if value & gcmd::SRTP != 0 {
            // QEMU `vtd_handle_gcmd_srtp`: latch the root, drop every cache.
            r.root = r.rtaddr;
            r.gsts |= gcmd::SRTP;
            st.context_cache.clear();
            st.iotlb.clear();
        }
        let r = &mut st.regs;
        if changed & gcmd::QIE != 0 {
            if value & gcmd::QIE != 0 {
                // `vtd_handle_gcmd_qie`: IQA is latched now.
                r.queue_base = r.iqa & !0xFFF;
                r.queue_entries = 1 << ((r.iqa & 7) + 8);
                r.gsts |= gcmd::QIE;
                if r.iqt != r.iqh && r.fsts & fsts::IQE == 0 {
                    self.run_queue(st);
                }
            } else if r.iqh == r.iqt {
                r.gsts &= !gcmd::QIE;
                r.iqh = 0;
            } else {
                log::warn!("sim vt-d: QIE cleared with descriptors pending; ignored (as QEMU)");
            }
        }
        let r = &mut st.regs;
        if value & gcmd::SIRTP != 0 {
            r.gsts |= gcmd::SIRTP;
        }
        if changed & gcmd::IRE != 0 {
            r.gsts = (r.gsts & !gcmd::IRE) | (value & gcmd::IRE);
        }
    }
}
