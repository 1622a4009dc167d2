//! Register access with the two rules QEMU enforces and real units expect
//! (`shared/notes/iommu-hw.md` §A.1, §C.1, Implications 2):
//!
//! * 32-bit registers are read and written 4 bytes at a time (an 8-byte
//!   access aborts QEMU 7.2);
//! * GCMD is a command register, not read-modify-write: every write is the
//!   shadow of the persistent bits (TE, QIE, IRE, CFI, EAFL) plus at most one
//!   one-shot bit, followed by a poll of GSTS. QEMU acts on `GSTS ^ written`,
//!   so a write that omitted TE would turn translation off. Linux keeps the
//!   same shadow in `iommu->gcmd` (`iommu.c:iommu_enable_translation`).

use syscall::error::{ETIMEDOUT, Error, Result};

use super::{Capability, ExtendedCapability, VtdMmio, gcmd, reg};

/// Polls of GSTS before a command counts as failed: a unit that never
/// answers must not hang the daemon.
pub const POLL_LIMIT: u32 = 10_000_000;

/// One unit's registers and the GCMD shadow.
pub struct Registers {
    mmio: Box<dyn VtdMmio>,
    shadow: u32,
}

impl core::fmt::Debug for Registers {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Registers")
            .field("gcmd_shadow", &format_args!("{:#x}", self.shadow))
            .finish_non_exhaustive()
    }
}

impl Registers {
    /// Wraps `mmio` with an empty shadow (see [`adopt_status`](Self::adopt_status)).
    pub fn new(mmio: Box<dyn VtdMmio>) -> Self {
        Self { mmio, shadow: 0 }
    }

    /// The persistent GCMD bits iommud believes are on.
    pub fn shadow(&self) -> u32 {
        self.shadow
    }

    /// Takes the persistent bits already on (firmware or an earlier iommud)
    /// into the shadow, as Linux does before touching a unit.
    pub fn adopt_status(&mut self) -> u32 {
        let status = self.gsts();
        self.shadow = status & gcmd::PERSISTENT;
        status
    }

    /// CAP.
    pub fn cap(&self) -> Capability {
        Capability(self.mmio.read_u64(reg::CAP))
    }

    /// ECAP.
    pub fn ecap(&self) -> ExtendedCapability {
        ExtendedCapability(self.mmio.read_u64(reg::ECAP))
    }

    /// GSTS.
    pub fn gsts(&self) -> u32 {
        self.mmio.read_u32(reg::GSTS)
    }

    /// Turns the persistent bit `bit` on or off and polls GSTS until it
    /// follows.
    pub fn set_persistent(&mut self, bit: u32, on: bool) -> Result<()> {
        if on {
            self.shadow |= bit;
        } else {
            self.shadow &= !bit;
        }
        self.mmio.write_u32(reg::GCMD, self.shadow);
        self.poll_status(bit, on)
    }

    /// Issues the one-shot command `bit` (SRTP, WBF, …) on top of the shadow
    /// and polls its status: RTPS/IRTPS/FLS come on; WBFS clears when done.
    pub fn one_shot(&mut self, bit: u32) -> Result<()> {
        self.mmio.write_u32(reg::GCMD, self.shadow | bit);
        self.poll_status(bit, bit != gcmd::WBF)
    }

    fn poll_status(&self, bit: u32, on: bool) -> Result<()> {
        for _ in 0..POLL_LIMIT {
            if (self.gsts() & bit != 0) == on {
                return Ok(());
            }
            core::hint::spin_loop();
        }
        log::error!("iommud: vt-d GSTS bit {bit:#x} never became {on}");
        Err(Error::new(ETIMEDOUT))
    }

    /// Reads a 32-bit register.
    pub fn read32(&self, offset: u64) -> u32 {
        self.mmio.read_u32(offset)
    }

    /// Writes a 32-bit register.
    pub fn write32(&mut self, offset: u64, value: u32) {
        self.mmio.write_u32(offset, value)
    }

    /// Reads a 64-bit register.
    pub fn read64(&self, offset: u64) -> u64 {
        self.mmio.read_u64(offset)
    }

    /// Writes a 64-bit register.
    pub fn write64(&mut self, offset: u64, value: u64) {
        self.mmio.write_u64(offset, value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Records every access; GSTS follows GCMD the way QEMU computes it.
    /// (offset, width, value) of each write.
    type Writes = Vec<(u64, u8, u64)>;

    #[derive(Clone, Default)]
    struct Recorder(Arc<Mutex<(Writes, u32)>>);

    impl VtdMmio for Recorder {
        fn read_u32(&self, offset: u64) -> u32 {
            let g = self.0.lock().unwrap();
            if offset == reg::GSTS { g.1 } else { 0 }
        }
        fn write_u32(&mut self, offset: u64, value: u32) {
            let mut g = self.0.lock().unwrap();
            g.0.push((offset, 4, u64::from(value)));
            if offset == reg::GCMD {
                // Persistent bits follow the written value; SRTP latches RTPS.
                g.1 = (value & gcmd::PERSISTENT) | (g.1 & gcmd::SRTP) | (value & gcmd::SRTP);
            }
        }
        fn read_u64(&self, _: u64) -> u64 {
            0
        }
        fn write_u64(&mut self, offset: u64, value: u64) {
            self.0.lock().unwrap().0.push((offset, 8, value));
        }
    }

    #[test]
    fn every_gcmd_write_carries_the_persistent_bits() {
        let rec = Recorder::default();
        let mut regs = Registers::new(Box::new(rec.clone()));
        regs.set_persistent(gcmd::QIE, true).unwrap();
        regs.one_shot(gcmd::SRTP).unwrap();
        regs.set_persistent(gcmd::TE, true).unwrap();
        regs.one_shot(gcmd::SRTP).unwrap();
        let writes: Vec<u64> = rec.0.lock().unwrap().0.iter().map(|w| w.2).collect();
        let (qie, te, srtp) = (
            u64::from(gcmd::QIE),
            u64::from(gcmd::TE),
            u64::from(gcmd::SRTP),
        );
        assert_eq!(writes, vec![qie, qie | srtp, qie | te, qie | te | srtp]);
        // The SRTP write with TE in the shadow left translation on.
        assert_ne!(regs.gsts() & gcmd::TE, 0);
        assert!(rec.0.lock().unwrap().0.iter().all(|w| w.1 == 4));
    }
}
