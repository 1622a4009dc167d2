//! `dsmild`: the startup script for Redox. Everything but the machine access is
//! [`dsmil::startup::start`], which the simulated machine runs too.
//!
//! `dsmild [--config <path>] [--smi-command-code <code>]`; started by
//! pcid-spawner (`/usr/lib/pcid.d/dsmild.toml`) for the DSMIL PCI function, or by
//! init (`/usr/lib/init.d/20_dsmild.service`) on machines without one.

use std::process::ExitCode;

use driver_sys::daemon::Startup;
use dsmil::platform::{DmaSmiBuffer, MmioAccess, MmioWindow, PhysmapMapper, X86PortIo};
use dsmil::startup::Platform;

/// The real machine: x86 port I/O after the kernel's per-thread grant, the
/// calling interface's buffer from DMA memory below 4 GiB, and the MMIO window's
/// chunks as uncached physmaps.
struct Redox;

impl Platform for Redox {
    type Ports = X86PortIo;
    type Buffer = DmaSmiBuffer;
    fn ports(&self) -> syscall::Result<X86PortIo> {
        X86PortIo::acquire()
    }
    fn smi_buffer(&self) -> syscall::Result<DmaSmiBuffer> {
        DmaSmiBuffer::allocate()
    }
    fn mmio(&self, base: u64, resident: usize) -> syscall::Result<Box<dyn MmioAccess + Send>> {
        Ok(Box::new(MmioWindow::new(
            PhysmapMapper::open()?,
            base,
            resident,
        )?))
    }
}

fn main() -> ExitCode {
    match dsmil::startup::start(&Startup::from_process(), &Redox) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("dsmild: {e}");
            ExitCode::FAILURE
        }
    }
}
