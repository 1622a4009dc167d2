//! Linux plumbing of the guest's `/init`: filesystems, hugepages, power-off.

use std::ffi::CString;
use std::io::Write;

/// Hugepages reserved for guest RAM (2 MiB each): iommud's 2 MiB device table, a
/// 2 MiB superpage test buffer, page tables and DMA buffers.
pub const HUGEPAGES: usize = 24;

fn mount(source: &str, target: &str, fstype: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(target)?;
    let c = |s: &str| CString::new(s).map_err(std::io::Error::other);
    let (src, tgt, ty) = (c(source)?, c(target)?, c(fstype)?);
    // SAFETY: valid NUL-terminated strings; no mount data.
    let r = unsafe { libc::mount(src.as_ptr(), tgt.as_ptr(), ty.as_ptr(), 0, std::ptr::null()) };
    if r == 0 {
        Ok(())
    } else {
        let e = std::io::Error::last_os_error();
        Err(std::io::Error::other(format!(
            "mount {fstype} on {target}: {e}"
        )))
    }
}

fn write_sysctl(path: &str, value: &str) -> std::io::Result<()> {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|mut f| f.write_all(value.as_bytes()))
        .map_err(|e| std::io::Error::other(format!("{path}: {e}")))
}

/// Mounts proc, sysfs and devtmpfs; reserves hugepages; keeps locked pages where
/// they are (no compaction of unevictable pages).
pub fn prepare() -> std::io::Result<()> {
    mount("proc", "/proc", "proc")?;
    mount("sysfs", "/sys", "sysfs")?;
    mount("devtmpfs", "/dev", "devtmpfs")?;
    write_sysctl("/proc/sys/vm/compact_unevictable_allowed", "0")?;
    // Best effort: without hugepages guest RAM falls back to checked 4 KiB frames.
    if let Err(e) = write_sysctl("/proc/sys/vm/nr_hugepages", &HUGEPAGES.to_string()) {
        println!("guest: no hugepages ({e})");
    }
    Ok(())
}

/// Flushes output and powers the machine off (QEMU exits).
pub fn power_off() -> ! {
    let _ = std::io::stdout().flush();
    // SAFETY: plain system calls; we are PID 1 and nothing else needs saving.
    unsafe {
        libc::sync();
        libc::reboot(libc::RB_POWER_OFF);
    }
    // reboot(2) only returns on failure; PID 1 exiting panics the kernel, and
    // `panic=-1` with `-no-reboot` ends QEMU too.
    std::process::exit(1)
}
