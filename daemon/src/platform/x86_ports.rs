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
//!
//! Port I/O exists only on x86 (`x86_64`, and 32-bit `x86` for `i586-unknown-redox`).
//! On every other architecture [`X86PortIo::acquire`] is `ENODEV` and the type
//! cannot exist, so dsmild reports that it has no port I/O instead of failing to
//! build. On 32-bit x86 the Dell SMM call (all six GPRs loaded, EBX among them, which
//! LLVM reserves) leaves no register for the swap: it answers like a refused call.

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use std::cell::Cell;

use libredox::call;
use syscall::CallFlags;
use syscall::error::Result;
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
use syscall::error::{ENODEV, Error};
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

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
thread_local! {
    /// This thread's grant: `None` until asked, then whether the kernel gave it.
    static GRANT: Cell<Option<bool>> = const { Cell::new(None) };
}

/// Whether the calling thread may execute `in`/`out`, asking the kernel on the
/// thread's first access. A refusal is remembered (and logged once).
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
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
    _private: OnX86,
}

/// A unit on x86; uninhabited elsewhere, where no [`X86PortIo`] can exist.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
struct OnX86;

/// A unit on x86; uninhabited elsewhere, where no [`X86PortIo`] can exist.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
enum OnX86 {}

impl X86PortIo {
    /// Acquires I/O privilege for the calling thread (`EPERM` if refused) and
    /// returns the port accessor. Other threads that use it get their own grant.
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    pub fn acquire() -> Result<X86PortIo> {
        acquire_port_io_rights()?;
        GRANT.with(|grant| grant.set(Some(true)));
        Ok(X86PortIo { _private: OnX86 })
    }

    /// There are no I/O ports on this architecture: `ENODEV`.
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    pub fn acquire() -> Result<X86PortIo> {
        Err(Error::new(ENODEV))
    }
}

// SAFETY (all methods): the instruction runs only when `granted_here()` says the
// calling thread holds I/O privilege; port accesses touch no memory and are
// exactly the DSMIL/SMI protocol's.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
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
// the SMI port. LLVM reserves RBX (EBX on 32-bit x86), so it is swapped in and out
// around the `out`. No `nomem`: SMM firmware writes the command buffer's output words.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
impl SmiTrigger for X86PortIo {
    fn raise(&mut self, r: SmiRegisters) {
        if !granted_here() {
            return;
        }
        #[cfg(target_arch = "x86_64")]
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
        #[cfg(target_arch = "x86")]
        unsafe {
            core::arch::asm!(
                "xchg {b}, ebx",
                "out dx, al",
                "xchg {b}, ebx",
                b = inout(reg) r.ebx => _,
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
#[cfg(target_arch = "x86_64")]
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

// 32-bit x86: see the module documentation.
#[cfg(target_arch = "x86")]
impl SmmCall for X86PortIo {
    fn smm_call(&mut self, r: SmmRegisters) -> SmmRegisters {
        log::error!("dsmild: the Dell SMM call is not implemented on 32-bit x86");
        SmmRegisters {
            eax: 0xFFFF_FFFF,
            ..r
        }
    }
}

// No `X86PortIo` exists off x86 (`OnX86` is uninhabited): these are never called.
#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
mod elsewhere {
    use super::{PortIo, SmiRegisters, SmiTrigger, SmmCall, SmmRegisters, X86PortIo};

    impl PortIo for X86PortIo {
        fn inb(&mut self, _port: u16) -> u8 {
            match self._private {}
        }
        fn outb(&mut self, _port: u16, _value: u8) {
            match self._private {}
        }
        fn inw(&mut self, _port: u16) -> u16 {
            match self._private {}
        }
        fn outw(&mut self, _port: u16, _value: u16) {
            match self._private {}
        }
        fn inl(&mut self, _port: u16) -> u32 {
            match self._private {}
        }
        fn outl(&mut self, _port: u16, _value: u32) {
            match self._private {}
        }
    }

    impl SmiTrigger for X86PortIo {
        fn raise(&mut self, _r: SmiRegisters) {
            match self._private {}
        }
    }

    impl SmmCall for X86PortIo {
        fn smm_call(&mut self, _r: SmmRegisters) -> SmmRegisters {
            match self._private {}
        }
    }
}
