//! The mocked `pci` scheme: the pcid side of a function's channel, for simulated
//! functions.
//!
//! Paths (relative to `/scheme/pci/`), as upstream pcid serves them:
//! * `` (root) — lists the functions, one `ssss--bb--dd.f` per line.
//! * `<addr>/channel` (root only) — the channel: write one bincode request, read
//!   the answer as an 8-byte little-endian length followed by bincode
//!   (see `driver_sys::pci::pcid_wire`). One channel per function at a time
//!   (`ENOLCK` while open, as pcid); reading with no answer waiting, or writing
//!   while one is unread, is `EINVAL`.
//!
//! The host registers functions with [`PciScheme::add_function`]. Requests are
//! answered from the simulated function's config space the way pcid answers them
//! from hardware: `EnableDevice` sets memory/I-O decode and bus mastering,
//! features come from the capability list, `SetFeatureInfo` writes MSI registers
//! and the MSI-X function mask.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use driver_sys::msi::{MsiCapability, MsixCapability};
use driver_sys::pci::pcid_wire::{
    self, MsiInfo, MsixInfo, PciFeature, PciFeatureInfo, PcidClientRequest, PcidClientResponse,
    PcidServerResponseError, SetFeatureInfo, SubdriverArguments,
};
use driver_sys::pci::{CAP_ID_MSI, CAP_ID_MSIX, PciAddress, find_capability};
use syscall::error::{EACCES, EBADF, EEXIST, EINVAL, EIO, EISDIR, ENOENT, ENOLCK, Error, Result};

use crate::hw::pci_function::SimPciFunction;
use crate::kernel::kscheme::{Caller, KernelScheme};
use crate::kernel::wait::lock;

enum Handle {
    Root,
    Device,
    Channel {
        function: Arc<SimPciFunction>,
        answer: Option<VecDeque<u8>>,
    },
}

/// The `pci` scheme.
#[derive(Default)]
pub struct PciScheme {
    functions: Mutex<BTreeMap<PciAddress, Arc<SimPciFunction>>>,
    handles: Mutex<HashMap<usize, Handle>>,
    next: AtomicUsize,
}

impl PciScheme {
    /// An empty bus.
    pub fn new() -> Self {
        Self {
            next: AtomicUsize::new(1),
            ..Self::default()
        }
    }

    /// Plugs a simulated function in. `EEXIST` if its address is taken.
    pub fn add_function(&self, function: Arc<SimPciFunction>) -> Result<()> {
        let mut f = lock(&self.functions);
        if f.contains_key(&function.address()) {
            return Err(Error::new(EEXIST));
        }
        f.insert(function.address(), function);
        Ok(())
    }

    /// The function at `addr`.
    pub fn function(&self, addr: &PciAddress) -> Option<Arc<SimPciFunction>> {
        lock(&self.functions).get(addr).cloned()
    }

    fn listing(&self) -> String {
        lock(&self.functions)
            .keys()
            .map(|a| format!("{}\n", a.scheme_name()))
            .collect()
    }
}

/// pcid's answer to one request.
pub fn respond(f: &SimPciFunction, req: PcidClientRequest) -> PcidClientResponse {
    use PcidClientResponse as R;
    let bad = R::Error(PcidServerResponseError::InvalidBitPattern);
    match req {
        PcidClientRequest::EnableDevice => {
            let cmd = f.config_read_u32(0x04).unwrap_or(0);
            match f.config_write_u32(0x04, cmd | 0b111) {
                Ok(()) => R::EnabledDevice,
                Err(_) => bad,
            }
        }
        PcidClientRequest::RequestConfig => R::Config(SubdriverArguments { func: f.info() }),
        PcidClientRequest::RequestFeatures => {
            let mut v = Vec::new();
            f.with_config(|c| {
                if matches!(find_capability(c, CAP_ID_MSI), Ok(Some(_))) {
                    v.push(PciFeature::Msi);
                }
                if matches!(find_capability(c, CAP_ID_MSIX), Ok(Some(_))) {
                    v.push(PciFeature::MsiX);
                }
            });
            R::AllFeatures(v)
        }
        PcidClientRequest::RequestVendorCapabilities => R::VendorCapabilities(Vec::new()),
        PcidClientRequest::FeatureInfo(feature) => match feature_info(f, feature) {
            Some(info) => R::FeatureInfo(feature, info),
            None => R::Error(PcidServerResponseError::NonexistentFeature(feature)),
        },
        PcidClientRequest::EnableFeature(feature) => {
            let Some(off) = cap_offset(f, feature) else {
                return R::Error(PcidServerResponseError::NonexistentFeature(feature));
            };
            let bit: u32 = match feature {
                PciFeature::Msi => 1 << 16,
                PciFeature::MsiX => 1 << 31,
            };
            let v = f.config_read_u32(u16::from(off)).unwrap_or(0);
            let cmd = f.config_read_u32(0x04).unwrap_or(0);
            match f
                .config_write_u32(u16::from(off), v | bit)
                .and_then(|()| f.config_write_u32(0x04, cmd | (1 << 10)))
            {
                Ok(()) => R::FeatureEnabled(feature),
                Err(_) => bad,
            }
        }
        PcidClientRequest::SetFeatureInfo(info) => set_feature_info(f, info),
        PcidClientRequest::ReadConfig(off) => match f.config_read_u32(off) {
            Ok(v) if off % 4 == 0 => R::ReadConfig(v),
            _ => bad,
        },
        PcidClientRequest::WriteConfig(off, v) => {
            if off % 4 != 0 {
                return bad;
            }
            match f.config_write_u32(off, v) {
                Ok(()) => R::WriteConfig,
                Err(_) => bad,
            }
        }
    }
}

fn cap_offset(f: &SimPciFunction, feature: PciFeature) -> Option<u8> {
    let id = match feature {
        PciFeature::Msi => CAP_ID_MSI,
        PciFeature::MsiX => CAP_ID_MSIX,
    };
    f.with_config(|c| find_capability(c, id).ok().flatten().map(|cap| cap.offset))
}

fn feature_info(f: &SimPciFunction, feature: PciFeature) -> Option<PciFeatureInfo> {
    let off = cap_offset(f, feature)?;
    f.with_config(|c| match feature {
        PciFeature::Msi => {
            let m = MsiCapability::parse(c, off).ok()?;
            Some(PciFeatureInfo::Msi(MsiInfo {
                log2_multiple_message_capable: m.multiple_message_capable_log2(),
                is_64bit: m.is_64bit(),
                has_per_vector_masking: m.has_per_vector_masking(),
            }))
        }
        PciFeature::MsiX => {
            let m = MsixCapability::parse(c, off).ok()?;
            Some(PciFeatureInfo::MsiX(MsixInfo {
                table_bar: m.table.bir,
                table_offset: m.table.offset,
                table_size: m.table_size(),
                pba_bar: m.pba.bir,
                pba_offset: m.pba.offset,
            }))
        }
    })
}

fn set_feature_info(f: &SimPciFunction, info: SetFeatureInfo) -> PcidClientResponse {
    use PcidClientResponse as R;
    let bad = R::Error(PcidServerResponseError::InvalidBitPattern);
    match info {
        SetFeatureInfo::MsiX { function_mask } => {
            let Some(off) = cap_offset(f, PciFeature::MsiX) else {
                return R::Error(PcidServerResponseError::NonexistentFeature(
                    PciFeature::MsiX,
                ));
            };
            if let Some(mask) = function_mask {
                let v = f.config_read_u32(u16::from(off)).unwrap_or(0);
                let bit = 1 << 30;
                let v = if mask { v | bit } else { v & !bit };
                if f.config_write_u32(u16::from(off), v).is_err() {
                    return bad;
                }
            }
            R::SetFeatureInfo(PciFeature::MsiX)
        }
        SetFeatureInfo::Msi(msi) => {
            let Some(off) = cap_offset(f, PciFeature::Msi) else {
                return R::Error(PcidServerResponseError::NonexistentFeature(PciFeature::Msi));
            };
            let Some(cap) = f.with_config(|c| MsiCapability::parse(c, off).ok()) else {
                return bad;
            };
            if let Some(mme) = msi.multi_message_enable {
                if mme > cap.multiple_message_capable_log2() {
                    return bad;
                }
                let v = f.config_read_u32(u16::from(off)).unwrap_or(0);
                let v = (v & !(0x70 << 16)) | (u32::from(mme) << 20);
                if f.config_write_u32(u16::from(off), v).is_err() {
                    return bad;
                }
            }
            if let Some(m) = msi.message_address_and_data {
                if m.addr >> 32 != 0 && !cap.is_64bit() {
                    return bad;
                }
                let data_dword = cap.data_offset() & !3;
                let old = f.config_read_u32(data_dword).unwrap_or(0);
                let shift = u32::from(cap.data_offset() & 2) * 8;
                let data = (old & !(0xFFFF << shift)) | ((m.data & 0xFFFF) << shift);
                let r = f
                    .config_write_u32(cap.address_lo_offset(), m.addr as u32)
                    .and_then(|()| match cap.address_hi_offset() {
                        Some(hi) => f.config_write_u32(hi, (m.addr >> 32) as u32),
                        None => Ok(()),
                    })
                    .and_then(|()| f.config_write_u32(data_dword, data));
                if r.is_err() {
                    return bad;
                }
            }
            if let Some(bits) = msi.mask_bits {
                match cap.mask_offset() {
                    Some(o) if f.config_write_u32(o, bits).is_ok() => {}
                    _ => return bad,
                }
            }
            R::SetFeatureInfo(PciFeature::Msi)
        }
    }
}

impl KernelScheme for PciScheme {
    fn open(&self, path: &str, _flags: usize, caller: &Caller) -> Result<usize> {
        let path = path.trim_matches('/');
        let handle = if path.is_empty() {
            Handle::Root
        } else {
            let (addr, rest) = path.split_once('/').unwrap_or((path, ""));
            let addr = PciAddress::parse_scheme_name(addr).ok_or(Error::new(ENOENT))?;
            let function = self.function(&addr).ok_or(Error::new(ENOENT))?;
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
                        function,
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
                drop(handles);
                let text = self.listing();
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
        let resp = respond(function, req);
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
    use crate::hw::pci_function::SimFunctionSpec;
    use crate::kernel::Kernel;

    #[test]
    fn answers_config_and_features_from_the_function() {
        let k = Kernel::boot();
        let f = SimPciFunction::new(&k, SimFunctionSpec::dsmil_like(PciAddress::new(0, 3, 0), 8))
            .expect("function");
        match respond(&f, PcidClientRequest::ReadConfig(0)) {
            PcidClientResponse::ReadConfig(v) => assert_eq!(v, 0xD511_1028),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            respond(&f, PcidClientRequest::RequestFeatures),
            PcidClientResponse::AllFeatures(vec![PciFeature::Msi, PciFeature::MsiX])
        );
        assert!(matches!(
            respond(&f, PcidClientRequest::ReadConfig(2)),
            PcidClientResponse::Error(_)
        ));
        // The MSI-X table size is read-only.
        let off = u16::from(crate::hw::pci_function::MSIX_CAP_OFFSET);
        let before = f.config_read_u32(off).expect("read");
        let _ = respond(&f, PcidClientRequest::WriteConfig(off, 0xFFFF_FFFF));
        let after = f.config_read_u32(off).expect("read");
        assert_eq!(after & 0x07FF_FFFF, before & 0x07FF_FFFF);
        assert_eq!(after >> 30, 0b11, "enable and function mask are writable");
    }
}
