//! Real x86 port I/O for dsmild on Redox: `in`/`out` instructions, once the kernel
//! has granted this process I/O privilege.

use libredox::call;
use syscall::CallFlags;
use syscall::error::Result;
use syscall::flag::ProcSchemeVerb;

use super::{PortIo, SmiRegisters, SmiTrigger};

unsafe extern "C" {
    // relibc: the calling thread's kernel handle. libredox has no wrapper for it yet;
    // upstream drivers (`common::acquire_port_io_rights`) use it the same way.
    fn redox_cur_thrfd_v0() -> usize;
}

/// Asks the kernel for I/O port rights: the `Iopl` verb on a handle to the calling
/// thread. Root only; `EPERM` otherwise.
pub fn acquire_port_io_rights() -> Result<()> {
    // SAFETY: relibc returns the calling thread's handle; no arguments.
    let thread = unsafe { redox_cur_thrfd_v0() };
    let handle = call::dup(thread, b"open_via_dup")?;
    let granted = call::call_wo(
        handle,
        &[],
        CallFlags::empty(),
        &[ProcSchemeVerb::Iopl as u64],
    );
    let _ = call::close(handle);
    granted?;
    Ok(())
}

/// Port I/O through the x86 `in`/`out` instructions.
///
/// It exists only after [`acquire_port_io_rights`] succeeded, so an access cannot
/// fault for lack of privilege.
pub struct X86PortIo {
    _granted: (),
}

impl X86PortIo {
    /// Acquires I/O privilege and returns the port accessor.
    pub fn acquire() -> Result<X86PortIo> {
        acquire_port_io_rights()?;
        Ok(X86PortIo { _granted: () })
    }
}

// SAFETY (all methods): the process holds I/O privilege (see `acquire`); port
// accesses touch no memory and are exactly the DSMIL/SMI protocol's.
impl PortIo for X86PortIo {
    fn inb(&mut self, port: u16) -> u8 {
        let v: u8;
        unsafe {
            core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outb(&mut self, port: u16, value: u8) {
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn inw(&mut self, port: u16) -> u16 {
        let v: u16;
        unsafe {
            core::arch::asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outw(&mut self, port: u16, value: u16) {
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn inl(&mut self, port: u16) -> u32 {
        let v: u32;
        unsafe {
            core::arch::asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outl(&mut self, port: u16, value: u32) {
        unsafe {
            core::arch::asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack, preserves_flags))
        };
    }
}

// The Dell calling interface: EBX = buffer, ECX = "BSI1", then the command byte to
// the SMI port. LLVM reserves RBX, so it is swapped in and out around the `out`.
// No `nomem`: SMM firmware writes the command buffer's output words.
impl SmiTrigger for X86PortIo {
    fn raise(&mut self, r: SmiRegisters) {
        unsafe {
            core::arch::asm!(
                "xchg {b}, rbx",
                "out dx, al",
                "xchg {b}, rbx",
                b = inout(reg) u64::from(r.ebx) => _,
                in("ecx") r.ecx,
                in("dx") r.command_port,
                in("al") r.command_code,
                options(nostack),
            )
        };
    }
}
