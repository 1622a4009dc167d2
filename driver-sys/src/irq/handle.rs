//! One interrupt: an open handle of the `irq` scheme, used the way the Redox kernel
//! serves it (redox-real.md §1.5–1.6).
//!
//! * **Subscribe, then read once.** The kernel's `fevent` reports nothing at
//!   subscription time, so an interrupt that fired before the subscription posts no
//!   event: after [`IrqHandle::subscribe`] a driver calls [`IrqHandle::pending`]
//!   once, then again after every event.
//! * **A read never blocks.** It returns the IRQ's count when it differs from what
//!   this handle acknowledged, and 0 bytes at once otherwise (whatever
//!   `O_NONBLOCK` says): [`IrqHandle::pending`] is `None` then.
//! * **Acknowledge by writing back the count read.** The kernel accepts only the
//!   current count; a stale one is ignored (0 bytes) and a legacy line stays masked
//!   until a later, current acknowledgement ([`IrqHandle::ack`] says which).
//! * **Affinity** has no kernel file: [`IrqHandle::move_to_cpu`] takes a vector on
//!   the new CPU and keeps the old one in the process's idle pool; the caller then
//!   writes the new [`IrqHandle::msi_message`] into the device.

use std::sync::Arc;

use event::{EventFlags, EventQueue, UserData};
use libredox::Fd;
use syscall::error::{EINVAL, EIO, Error, Result};

use super::vectors::Inner;
use crate::memory::errno;
use crate::msi::{MsiMessage, X86MsiTarget};
use crate::vector::Vector;

/// What an [`IrqHandle`] holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IrqLine {
    /// A vector on a CPU (MSI / MSI-X).
    Vector {
        /// CPU index.
        cpu: u32,
        /// IDT vector.
        vector: Vector,
    },
    /// A legacy INTx line.
    Legacy(u8),
}

/// One reserved interrupt: read its count, write the count back to acknowledge.
pub struct IrqHandle {
    fd: Option<Fd>,
    line: IrqLine,
    apic_id: u32,
    affinity_broken: bool,
    owner: Option<Arc<Inner>>,
}

impl core::fmt::Debug for IrqHandle {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("IrqHandle")
            .field("line", &self.line)
            .field("apic_id", &self.apic_id)
            .field("affinity_broken", &self.affinity_broken)
            .finish()
    }
}

/// Decodes an IRQ count as the kernel writes it: a native-endian `usize` (8 bytes on
/// 64-bit kernels, 4 on i586). Every Redox target is little-endian.
fn decode_count(bytes: &[u8; 8], n: usize) -> Result<Option<u64>> {
    match n {
        0 => Ok(None),
        4 => Ok(Some(u64::from(u32::from_le_bytes([
            bytes[0], bytes[1], bytes[2], bytes[3],
        ])))),
        8 => Ok(Some(u64::from_le_bytes(*bytes))),
        _ => Err(Error::new(EIO)),
    }
}

impl IrqHandle {
    pub(super) fn new(
        fd: Fd,
        line: IrqLine,
        apic_id: u32,
        affinity_broken: bool,
        owner: Option<Arc<Inner>>,
    ) -> Self {
        Self {
            fd: Some(fd),
            line,
            apic_id,
            affinity_broken,
            owner,
        }
    }

    /// The fd (for an event loop). It changes when the vector moves.
    pub fn fd(&self) -> usize {
        self.fd.as_ref().map(Fd::raw).unwrap_or(usize::MAX)
    }

    fn fd_ref(&self) -> Result<&Fd> {
        self.fd.as_ref().ok_or(Error::new(EINVAL))
    }

    /// What it holds.
    pub fn line(&self) -> IrqLine {
        self.line
    }

    /// The vector (legacy line L is vector L + 32).
    pub fn vector(&self) -> Vector {
        match self.line {
            IrqLine::Vector { vector, .. } => vector,
            IrqLine::Legacy(l) => Vector(l.saturating_add(32)),
        }
    }

    /// CPU index (`None` for a legacy line, which the kernel routes to the BSP).
    pub fn cpu(&self) -> Option<u32> {
        match self.line {
            IrqLine::Vector { cpu, .. } => Some(cpu),
            IrqLine::Legacy(_) => None,
        }
    }

    /// Local APIC id of the target CPU.
    pub fn apic_id(&self) -> u32 {
        self.apic_id
    }

    /// The CPU is outside the affinity asked for (every CPU in it was full).
    pub fn affinity_broken(&self) -> bool {
        self.affinity_broken
    }

    /// The MSI message that targets this vector (fixed, edge, physical).
    pub fn msi_message(&self) -> Result<MsiMessage> {
        X86MsiTarget::fixed(self.apic_id, self.vector().0)
            .compose()
            .map_err(|_| Error::new(EINVAL))
    }

    /// One read: the count to acknowledge if the interrupt fired since this
    /// handle's last acknowledgement, `None` if nothing is pending. Never blocks.
    pub fn pending(&self) -> Result<Option<u64>> {
        let mut b = [0u8; 8];
        let n = self.fd_ref()?.read(&mut b).map_err(errno)?;
        decode_count(&b, n)
    }

    /// Acknowledges by writing back `count` (from [`IrqHandle::pending`]). `false`
    /// when the kernel ignored it because the count moved on meanwhile (another
    /// interrupt arrived): read again and acknowledge that count.
    pub fn ack(&self, count: u64) -> Result<bool> {
        let n = self.fd_ref()?.write(&count.to_le_bytes()).map_err(errno)?;
        Ok(n != 0)
    }

    /// Subscribes the handle to `queue` for readability. Read it once afterwards:
    /// an interrupt from before the subscription posts no event.
    pub fn subscribe<U: UserData>(&self, queue: &EventQueue<U>, data: U) -> Result<()> {
        queue
            .subscribe(self.fd(), data, EventFlags::READ)
            .map_err(errno)
    }

    /// Moves the vector to CPU `cpu`: a vector there (an idle one of this process,
    /// else a new reservation of `cpu-XX/NN`) replaces this one, and the old one goes
    /// to the process's idle pool — the kernel never takes a vector back. The caller
    /// then programs [`IrqHandle::msi_message`] into the device (see
    /// [`crate::irq::InterruptSetup::set_affinity`]) and, since [`IrqHandle::fd`]
    /// changed, subscribes the handle again and reads it once. `EINVAL` for a legacy
    /// line; `ENOSPC` when `cpu` has no free vector.
    pub fn move_to_cpu(&mut self, cpu: u32) -> Result<()> {
        let IrqLine::Vector { cpu: old, vector } = self.line else {
            return Err(Error::new(EINVAL));
        };
        let owner = self.owner.clone().ok_or(Error::new(EINVAL))?;
        if cpu == old {
            return Ok(());
        }
        let apic = owner.apic_id(cpu).ok_or(Error::new(EINVAL))?;
        let (new_vector, new_fd) = owner.reserve_on(cpu)?;
        if let Some(old_fd) = self.fd.replace(new_fd) {
            owner.park(old, vector, old_fd);
        }
        self.line = IrqLine::Vector {
            cpu,
            vector: new_vector,
        };
        self.apic_id = apic;
        self.affinity_broken = false;
        Ok(())
    }
}

impl Drop for IrqHandle {
    /// A vector goes to its owner's idle pool (closing it would only leak it in the
    /// kernel); a legacy line is simply closed.
    fn drop(&mut self) {
        let (Some(owner), IrqLine::Vector { cpu, vector }) = (self.owner.take(), self.line) else {
            return;
        };
        if let Some(fd) = self.fd.take() {
            owner.park(cpu, vector, fd);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_decode_from_64_and_32_bit_kernels() {
        let b = 0x1_0000_0002u64.to_le_bytes();
        assert_eq!(decode_count(&b, 8).ok(), Some(Some(0x1_0000_0002)));
        assert_eq!(decode_count(&b, 4).ok(), Some(Some(2)));
        assert_eq!(decode_count(&b, 0).ok(), Some(None));
        assert_eq!(decode_count(&b, 3).map_err(|e| e.errno), Err(EIO));
    }
}
