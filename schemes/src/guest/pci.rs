//! The `pci` scheme in guest mode: pcid's side of a function channel, answered from
//! the guest's real (QEMU-emulated) functions through sysfs.
//!
//! Paths and channel rules are those of the simulated scheme ([`crate::mock::pci`],
//! copying upstream pcid): the root lists `ssss--bb--dd.f` per line; `<addr>/channel`
//! (root only, one open at a time: `ENOLCK`) takes one bincode request per write and
//! gives its answer (8-byte LE length, then bincode) to the reads that follow.
//!
//! Config space is `/sys/bus/pci/devices/<ssss:bb:dd.f>/config` (pread/pwrite of whole
//! dwords); BARs come from its `resource` file (Linux's sizing, as pcid sizes them).
//! MSI and MSI-X are reported as the capability list shows them; programming them is
//! not served here (`InvalidBitPattern`): the guest tests poll the device.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use driver_sys::pci::config::check_access;
use driver_sys::pci::pcid_wire::{
    self, FullDeviceId, PciFeature, PcidBar, PcidClientRequest, PcidClientResponse,
    PcidFunctionInfo, PcidServerResponseError, SubdriverArguments,
};
use driver_sys::pci::{
    CAP_ID_MSI, CAP_ID_MSIX, ConfigError, ConfigSpace, PciAddress, find_capability,
};
use syscall::error::{EACCES, EBADF, EINVAL, EIO, EISDIR, ENOENT, ENOLCK, Error, Result};

use crate::kernel::kscheme::{Caller, KernelScheme};
use crate::kernel::wait::lock;

/// Where Linux lists PCI functions.
pub const SYSFS_PCI: &str = "/sys/bus/pci/devices";

/// One function as sysfs shows it.
pub struct SysfsFunction {
    addr: PciAddress,
    config: File,
    bars: [PcidBar; 6],
    claimed: Mutex<bool>,
}

impl ConfigSpace for &SysfsFunction {
    fn read_u32(&mut self, offset: u16) -> std::result::Result<u32, ConfigError> {
        check_access(offset, 4)?;
        let mut b = [0u8; 4];
        self.config
            .read_exact_at(&mut b, u64::from(offset))
            .map_err(|_| ConfigError::Io(Error::new(EIO)))?;
        Ok(u32::from_le_bytes(b))
    }

    fn write_u32(&mut self, offset: u16, value: u32) -> std::result::Result<(), ConfigError> {
        check_access(offset, 4)?;
        self.config
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
fn parse_resources(text: &str) -> [PcidBar; 6] {
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
            config,
            bars: parse_resources(&resources),
            claimed: Mutex::new(false),
        })
    }

    /// Its address.
    pub fn address(&self) -> PciAddress {
        self.addr
    }

    fn read(&self, offset: u16) -> Option<u32> {
        let mut me = self;
        me.read_u32(offset).ok()
    }

    fn write(&self, offset: u16, value: u32) -> bool {
        let mut me = self;
        me.write_u32(offset, value).is_ok()
    }

    fn info(&self) -> PcidFunctionInfo {
        let id = self.read(0).unwrap_or(u32::MAX);
        let class = self.read(8).unwrap_or(0);
        PcidFunctionInfo {
            addr: self.addr,
            bars: self.bars,
            // Interrupts are not served in guest mode (see the module docs).
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

    /// pcid's answer to one request.
    pub fn respond(&self, req: PcidClientRequest) -> PcidClientResponse {
        use PcidClientResponse as R;
        let bad = R::Error(PcidServerResponseError::InvalidBitPattern);
        match req {
            PcidClientRequest::EnableDevice => {
                // I/O and memory decoding, bus mastering: pcid's `enable_device`.
                match self.read(0x04) {
                    Some(cmd) if self.write(0x04, cmd | 0b111) => R::EnabledDevice,
                    _ => bad,
                }
            }
            PcidClientRequest::RequestConfig => R::Config(SubdriverArguments { func: self.info() }),
            PcidClientRequest::RequestFeatures => {
                let mut me = self;
                let mut v = Vec::new();
                if matches!(find_capability(&mut me, CAP_ID_MSI), Ok(Some(_))) {
                    v.push(PciFeature::Msi);
                }
                if matches!(find_capability(&mut me, CAP_ID_MSIX), Ok(Some(_))) {
                    v.push(PciFeature::MsiX);
                }
                R::AllFeatures(v)
            }
            PcidClientRequest::RequestVendorCapabilities => R::VendorCapabilities(Vec::new()),
            PcidClientRequest::FeatureInfo(f) | PcidClientRequest::EnableFeature(f) => {
                R::Error(PcidServerResponseError::NonexistentFeature(f))
            }
            PcidClientRequest::SetFeatureInfo(_) => bad,
            PcidClientRequest::ReadConfig(off) => match self.read(off) {
                Some(v) => R::ReadConfig(v),
                None => bad,
            },
            PcidClientRequest::WriteConfig(off, v) => {
                if self.write(off, v) {
                    R::WriteConfig
                } else {
                    bad
                }
            }
        }
    }

    fn claim(&self) -> bool {
        !std::mem::replace(&mut *lock(&self.claimed), true)
    }

    fn release(&self) {
        *lock(&self.claimed) = false;
    }
}

enum Handle {
    Root,
    Device,
    Channel {
        function: Arc<SysfsFunction>,
        answer: Option<VecDeque<u8>>,
    },
}

/// The guest's `pci` scheme.
pub struct SysfsPciScheme {
    functions: BTreeMap<PciAddress, Arc<SysfsFunction>>,
    handles: Mutex<HashMap<usize, Handle>>,
    next: AtomicUsize,
}

impl SysfsPciScheme {
    /// Every function under `root` (normally [`SYSFS_PCI`]); unreadable ones are
    /// skipped with a warning.
    pub fn scan(root: &Path) -> std::io::Result<Self> {
        let mut functions = BTreeMap::new();
        for entry in std::fs::read_dir(root)? {
            let dir: PathBuf = entry?.path();
            match SysfsFunction::open(&dir) {
                Ok(f) => {
                    functions.insert(f.address(), Arc::new(f));
                }
                Err(e) => log::warn!("guest pci: skipping {}: {e}", dir.display()),
            }
        }
        Ok(Self {
            functions,
            handles: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(1),
        })
    }

    /// The functions found, in address order.
    pub fn functions(&self) -> impl Iterator<Item = &Arc<SysfsFunction>> {
        self.functions.values()
    }
}

impl KernelScheme for SysfsPciScheme {
    fn open(&self, path: &str, _flags: usize, caller: &Caller) -> Result<usize> {
        let path = path.trim_matches('/');
        let handle = if path.is_empty() {
            Handle::Root
        } else {
            let (addr, rest) = path.split_once('/').unwrap_or((path, ""));
            let addr = PciAddress::parse_scheme_name(addr).ok_or(Error::new(ENOENT))?;
            let function = self.functions.get(&addr).ok_or(Error::new(ENOENT))?;
            match rest {
                "" => Handle::Device,
                "channel" => {
                    if !caller.is_root() {
                        return Err(Error::new(EACCES));
                    }
                    if !function.claim() {
                        return Err(Error::new(ENOLCK));
                    }
                    Handle::Channel {
                        function: function.clone(),
                        answer: None,
                    }
                }
                _ => return Err(Error::new(ENOENT)),
            }
        };
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        lock(&self.handles).insert(id, handle);
        Ok(id)
    }

    fn read(&self, h: usize, buf: &mut [u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        match handles.get_mut(&h).ok_or(Error::new(EBADF))? {
            Handle::Root => {
                let text: String = self
                    .functions
                    .keys()
                    .map(|a| format!("{}\n", a.scheme_name()))
                    .collect();
                let n = text.len().min(buf.len());
                buf[..n].copy_from_slice(&text.as_bytes()[..n]);
                Ok(n)
            }
            Handle::Device => Err(Error::new(EISDIR)),
            Handle::Channel { answer, .. } => {
                let q = answer.as_mut().ok_or(Error::new(EINVAL))?;
                let n = q.len().min(buf.len());
                for (dst, src) in buf.iter_mut().zip(q.drain(..n)) {
                    *dst = src;
                }
                if q.is_empty() {
                    *answer = None;
                }
                Ok(n)
            }
        }
    }

    fn write(&self, h: usize, buf: &[u8], _flags: usize, _c: &Caller) -> Result<usize> {
        let mut handles = lock(&self.handles);
        let Some(Handle::Channel { function, answer }) = handles.get_mut(&h) else {
            return Err(Error::new(EBADF));
        };
        if answer.is_some() {
            return Err(Error::new(EINVAL));
        }
        let req: PcidClientRequest = pcid_wire::decode(buf).map_err(|_| Error::new(EINVAL))?;
        let resp = function.respond(req);
        let framed = pcid_wire::frame_response(&resp).map_err(|_| Error::new(EIO))?;
        *answer = Some(framed.into());
        Ok(buf.len())
    }

    fn close(&self, h: usize) {
        if let Some(Handle::Channel { function, .. }) = lock(&self.handles).remove(&h) {
            function.release();
        }
    }
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
