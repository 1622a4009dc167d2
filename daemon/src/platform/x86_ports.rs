//! Real x86 port I/O for dsmild on Redox: `in`/`out` instructions, once the kernel
//! has granted the calling *thread* I/O privilege.
//!
//! The kernel's `Iopl` grant is per thread and not inherited (redox-real.md §8;
//! kernel `src/scheme/proc.rs`): a port access from any other thread faults. So
//! [`X86PortIo`] checks a per-thread grant before every access and asks for one on
//! a thread's first access, as upstream pcid does with a thread-local
//! (`drivers/pcid/src/cfg_access/fallback.rs`). A thread the kernel refuses never
//! executes `in`/`out`: its reads return all ones (what a port with nothing behind
//! it reads) and its writes are dropped, and that is logged once for the thread.

use std::cell::Cell;

use libredox::call;
use syscall::CallFlags;
use syscall::error::Result;
use syscall::flag::ProcSchemeVerb;

use super::{PortIo, SmiRegisters, SmiTrigger, SmmCall, SmmRegisters};

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

thread_local! {
    /// This thread's grant: `None` until asked, then whether the kernel gave it.
    static GRANT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the calling thread may execute `in`/`out`, asking the kernel on the
/// thread's first access. A refusal is remembered (and logged once).
fn granted_here() -> bool {
    GRANT.with(|grant| match grant.get() {
        Some(granted) => granted,
        None => {
            let granted = match acquire_port_io_rights() {
                Ok(()) => true,
                Err(e) => {
                    log::error!(
                        "dsmild: no I/O port rights for this thread ({e}); ports read as all ones"
                    );
                    false
                }
            };
            grant.set(Some(granted));
            granted
        }
    })
}

/// Port I/O through the x86 `in`/`out` instructions, with the kernel's grant
/// checked per thread before each access (see the module documentation).
pub struct X86PortIo {
    _private: (),
}

impl X86PortIo {
    /// Acquires I/O privilege for the calling thread (`EPERM` if refused) and
    /// returns the port accessor. Other threads that use it get their own grant.
    pub fn acquire() -> Result<X86PortIo> {
        acquire_port_io_rights()?;
        GRANT.with(|grant| grant.set(Some(true)));
        Ok(X86PortIo { _private: () })
    }
}

// SAFETY (all methods): the instruction runs only when `granted_here()` says the
// calling thread holds I/O privilege; port accesses touch no memory and are
// exactly the DSMIL/SMI protocol's.
impl PortIo for X86PortIo {
    fn inb(&mut self, port: u16) -> u8 {
        if !granted_here() {
            return 0xFF;
        }
        let v: u8;
        unsafe {
            core::arch::asm!("in al, dx", out("al") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outb(&mut self, port: u16, value: u8) {
        if !granted_here() {
            return;
        }
        unsafe {
            core::arch::asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn inw(&mut self, port: u16) -> u16 {
        if !granted_here() {
            return 0xFFFF;
        }
        let v: u16;
        unsafe {
            core::arch::asm!("in ax, dx", out("ax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outw(&mut self, port: u16, value: u16) {
        if !granted_here() {
            return;
        }
        unsafe {
            core::arch::asm!("out dx, ax", in("dx") port, in("ax") value, options(nomem, nostack, preserves_flags))
        };
    }
    fn inl(&mut self, port: u16) -> u32 {
        if !granted_here() {
            return 0xFFFF_FFFF;
        }
        let v: u32;
        unsafe {
            core::arch::asm!("in eax, dx", out("eax") v, in("dx") port, options(nomem, nostack, preserves_flags))
        };
        v
    }
    fn outl(&mut self, port: u16, value: u32) {
        if !granted_here() {
            return;
        }
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
        if !granted_here() {
            return;
        }
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

// Dell SMM (i8k): EAX..EDI loaded, AL to port 0xB2 and then to 0x84 (the POST
// port, a short delay, as Linux `dell-smm-hwmon.c` does), registers read back.
// RBX is swapped in and out as above. A thread without a grant gets EAX all ones,
// which callers read as a failed call.
impl SmmCall for X86PortIo {
    fn smm_call(&mut self, r: SmmRegisters) -> SmmRegisters {
        if !granted_here() {
            return SmmRegisters {
                eax: 0xFFFF_FFFF,
                ..r
            };
        }
        let mut out = r;
        let mut rbx = u64::from(r.ebx);
        unsafe {
            core::arch::asm!(
                "xchg {b}, rbx",
                "out 0xb2, al",
                "out 0x84, al",
                "xchg {b}, rbx",
                b = inout(reg) rbx,
                inout("eax") out.eax,
                inout("ecx") out.ecx,
                inout("edx") out.edx,
                inout("esi") out.esi,
                inout("edi") out.edi,
                options(nostack),
            )
        };
        // The low half of RBX is what SMM left in EBX.
        out.ebx = rbx as u32;
        out
    }
}
