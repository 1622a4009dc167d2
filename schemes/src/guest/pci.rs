//! The `pci` scheme in guest mode: the simulated scheme itself
//! ([`crate::mock::pci::PciScheme`], copying upstream pcid: paths, getdents
//! listings, channel protocol and rules, `enable_function` when a channel opens,
//! BAR mmaps) over a Linux guest's real (QEMU-emulated) functions.
//!
//! A [`SysfsFunction`] is `/sys/bus/pci/devices/<ssss:bb:dd.f>/`: config space is its
//! `config` file (pread/pwrite of whole dwords, as pcid's config accesses are),
//! BARs come from its `resource` file (Linux's sizing, as pcid sizes them), and a BAR
//! mmap maps its `resource<N>` file.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use driver_sys::pci::pcid_wire::{FullDeviceId, PcidBar, PcidFunctionInfo};
use driver_sys::pci::{ConfigError, ConfigSpace, PciAddress};
use syscall::error::{EINVAL, EIO, Error, Result};

use crate::kernel::wait::lock;
use crate::mock::pci::PciScheme;
use crate::mock::pcid_function::PcidFunction;

/// Where Linux lists PCI functions.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

/// One function as sysfs shows it.
pub struct SysfsFunction {
    addr: PciAddress,
    dir: PathBuf,
    config: File,
    bars: [PcidBar; 6],
    claimed: AtomicBool,
    /// BAR index → this process's address of the whole BAR (mapped on first use).
    mapped: Mutex<BTreeMap<usize, usize>>,
}

/// Config space access through the sysfs `config` file.
struct SysfsConfig<'a>(&'a File);

impl ConfigSpace for SysfsConfig<'_> {
    fn read_u32(&mut self, offset: u16) -> std::result::Result<u32, ConfigError> {
        driver_sys::pci::config::check_access(offset, 4)?;
        let mut b = [0u8; 4];
        self.0
            .read_exact_at(&mut b, u64::from(offset))
            .map_err(|_| ConfigError::Io(Error::new(EIO)))?;
        Ok(u32::from_le_bytes(b))
    }

    fn write_u32(&mut self, offset: u16, value: u32) -> std::result::Result<(), ConfigError> {
        driver_sys::pci::config::check_access(offset, 4)?;
        self.0
            .write_all_at(&value.to_le_bytes(), u64::from(offset))
            .map_err(|_| ConfigError::Io(Error::new(EIO)))
    }
}

/// Parses sysfs `ssss:bb:dd.f`.
pub fn parse_sysfs_name(name: &str) -> Option<PciAddress> {
    let (segment, rest) = name.split_once(':')?;
    let (bus, rest) = rest.split_once(':')?;
    let (dev, func) = rest.split_once('.')?;
    let mut a = PciAddress::new(
        u8::from_str_radix(bus, 16).ok()?,
        u8::from_str_radix(dev, 16).ok()?,
        u8::from_str_radix(func, 16).ok()?,
    );
    a.segment = u16::from_str_radix(segment, 16).ok()?;
    Some(a)
}

/// The six BARs from a sysfs `resource` file (`start end flags` per line, hex).
pub fn parse_resources(text: &str) -> [PcidBar; 6] {
    const IORESOURCE_IO: u64 = 0x100;
    const IORESOURCE_MEM: u64 = 0x200;
    const IORESOURCE_MEM_64: u64 = 0x0010_0000;
    let mut bars = [PcidBar::None; 6];
    for (bar, line) in bars.iter_mut().zip(text.lines()) {
        let f: Vec<u64> = line
            .split_whitespace()
            .filter_map(|w| u64::from_str_radix(w.trim_start_matches("0x"), 16).ok())
            .collect();
        let [start, end, flags] = f[..] else { continue };
        if start == 0 || end < start {
            continue;
        }
        let size = end - start + 1;
        *bar = if flags & IORESOURCE_MEM != 0 {
            match (u32::try_from(start), u32::try_from(size)) {
                (Ok(addr), Ok(size)) if flags & IORESOURCE_MEM_64 == 0 => {
                    PcidBar::Memory32 { addr, size }
                }
                _ => PcidBar::Memory64 { addr: start, size },
            }
        } else if flags & IORESOURCE_IO != 0 {
            u16::try_from(start).map_or(PcidBar::None, PcidBar::Port)
        } else {
            PcidBar::None
        };
    }
    bars
}

impl SysfsFunction {
    /// Opens the function whose sysfs directory is `dir`.
    pub fn open(dir: &Path) -> std::io::Result<Self> {
        let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let addr = parse_sysfs_name(name)
            .ok_or_else(|| std::io::Error::other(format!("not a PCI address: {name}")))?;
        let config = OpenOptions::new()
            .read(true)
            .write(true)
            .open(dir.join("config"))?;
        let resources = std::fs::read_to_string(dir.join("resource"))?;
        Ok(Self {
            addr,
            dir: dir.to_path_buf(),
            config,
            bars: parse_resources(&resources),
            claimed: AtomicBool::new(false),
            mapped: Mutex::new(BTreeMap::new()),
        })
    }

    /// Maps the whole of memory BAR `i` through sysfs `resource<i>`.
    fn map_bar(&self, i: usize, size: u64) -> Option<usize> {
        let mut mapped = lock(&self.mapped);
        if let Some(&host) = mapped.get(&i) {
            return Some(host);
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.dir.join(format!("resource{i}")))
            .ok()?;
        let len = usize::try_from(size).ok()?;
        // SAFETY: a new shared mapping of the BAR; nothing else refers to it. It stays
        // mapped for the process's life (see `bar_host_addr`).
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            log::error!(
                "guest pci: mmap of {}/resource{i} failed: {}",
                self.dir.display(),
                std::io::Error::last_os_error()
            );
            return None;
        }
        mapped.insert(i, p as usize);
        Some(p as usize)
    }
}

impl PcidFunction for SysfsFunction {
    fn address(&self) -> PciAddress {
        self.addr
    }

    fn info(&self) -> PcidFunctionInfo {
        let id = self.config_read_u32(0).unwrap_or(u32::MAX);
        let class = self.config_read_u32(8).unwrap_or(0);
        PcidFunctionInfo {
            addr: self.addr,
            bars: self.bars,
            rom: None,
            // Interrupts are not served in guest mode: the guest tests poll devices.
            legacy_interrupt_line: None,
            full_device_id: FullDeviceId {
                vendor_id: id as u16,
                device_id: (id >> 16) as u16,
                class: (class >> 24) as u8,
                subclass: (class >> 16) as u8,
                interface: (class >> 8) as u8,
                revision: class as u8,
            },
        }
    }

    fn bar(&self, i: usize) -> Option<(u64, u64)> {
        self.bars.get(i).and_then(PcidBar::memory)
    }

    fn config_read_u32(&self, offset: u16) -> Result<u32> {
        SysfsConfig(&self.config)
            .read_u32(offset)
            .map_err(|_| Error::new(EINVAL))
    }

    fn config_write_u32(&self, offset: u16, value: u32) -> Result<()> {
        SysfsConfig(&self.config)
            .write_u32(offset, value)
            .map_err(|_| Error::new(EINVAL))
    }

    fn with_config_space<R>(&self, f: impl FnOnce(&mut dyn ConfigSpace) -> R) -> R {
        f(&mut SysfsConfig(&self.config))
    }

    fn claim(&self) -> bool {
        !self.claimed.swap(true, Ordering::AcqRel)
    }

    fn release(&self) {
        self.claimed.store(false, Ordering::Release);
    }

    /// The BAR's `resource<N>` mapping (made once, kept: the mocked kernel's `munmap`
    /// does not tell the scheme, so reuse keeps the address space bounded).
    fn bar_host_addr(&self, phys: u64, len: usize) -> Option<usize> {
        let (i, (base, size)) =
            (0..6)
                .filter_map(|i| self.bar(i).map(|b| (i, b)))
                .find(|&(_, (base, size))| {
                    phys >= base && phys.saturating_add(len as u64) <= base + size
                })?;
        let host = self.map_bar(i, size)?;
        Some(host + (phys - base) as usize)
    }
}

/// pcid's scheme over every function under `root` (normally [`SYSFS_PCI`]);
/// unreadable ones are skipped with a warning.
pub fn scan(root: &Path) -> std::io::Result<PciScheme<SysfsFunction>> {
    let scheme = PciScheme::new();
    for entry in std::fs::read_dir(root)? {
        let dir = entry?.path();
        match SysfsFunction::open(&dir) {
            Ok(f) => {
                if let Err(e) = scheme.plug(std::sync::Arc::new(f)) {
                    log::warn!("guest pci: {}: {e}", dir.display());
                }
            }
            Err(e) => log::warn!("guest pci: skipping {}: {e}", dir.display()),
        }
    }
    Ok(scheme)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sysfs_names_and_resources_parse() {
        let a = parse_sysfs_name("0000:00:04.0").expect("name");
        assert_eq!(a.scheme_name(), "0000--00--04.0");
        assert!(parse_sysfs_name("0000:00:04").is_none());
        let text = "0x00000000fea00000 0x00000000feafffff 0x0000000000040200\n\
                    0x0000000000000000 0x0000000000000000 0x0000000000000000\n\
                    0x000000000000c000 0x000000000000c01f 0x0000000000040101\n\
                    0x0000000800000000 0x0000000800003fff 0x000000000014220c\n";
        let bars = parse_resources(text);
        assert_eq!(
            bars[0],
            PcidBar::Memory32 {
                addr: 0xfea0_0000,
                size: 1 << 20
            }
        );
        assert_eq!(bars[1], PcidBar::None);
        assert_eq!(bars[2], PcidBar::Port(0xc000));
        assert_eq!(
            bars[3],
            PcidBar::Memory64 {
                addr: 0x8_0000_0000,
                size: 0x4000
            }
        );
    }
}
