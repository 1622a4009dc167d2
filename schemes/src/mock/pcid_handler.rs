//! pcid's answers on a function's channel (upstream `redox-os/base`
//! `drivers/pcid/src/driver_handler.rs`), and what pcid does to a function when its
//! channel is opened (`enable_function` in `drivers/pcid/src/main.rs`), for
//! simulated functions: config space read and written the way pcid reads and
//! writes hardware.

use driver_sys::msi::{MsiCapability, MsixCapability};
use driver_sys::pci::pcid_wire::{
    MsiInfo, MsixInfo, PciFeature, PciFeatureInfo, PcidClientRequest, PcidClientResponse,
    PcidServerResponseError, SetFeatureInfo, SubdriverArguments,
};
use driver_sys::pci::{CAP_ID_MSI, CAP_ID_MSIX, find_capability};

use super::pcid_function::PcidFunction;

/// Command register: I/O space, memory space and bus master enable.
const COMMAND_IO_MEMORY_MASTER: u32 = 0b111;
/// MSI enable: bit 0 of Message Control, bit 16 of the capability's first dword.
const MSI_ENABLE: u32 = 1 << 16;
/// MSI-X enable: bit 15 of Message Control, bit 31 of the capability's first dword.
const MSIX_ENABLE: u32 = 1 << 31;

/// What pcid does when a channel of `f` is opened (base `drivers/pcid/src/main.rs`
/// `enable_function`): bus mastering, memory and I/O decode on; MSI and MSI-X off
/// (a previous driver may have left them on); an INTx line register of 0xFF
/// becomes 9.
pub fn enable_function<F: PcidFunction + ?Sized>(f: &F) {
    let cmd = f.config_read_u32(0x04).unwrap_or(0);
    let _ = f.config_write_u32(0x04, cmd | COMMAND_IO_MEMORY_MASTER);
    for (feature, bit) in [
        (PciFeature::Msi, MSI_ENABLE),
        (PciFeature::MsiX, MSIX_ENABLE),
    ] {
        if let Some(off) = cap_offset(f, feature) {
            let v = f.config_read_u32(u16::from(off)).unwrap_or(0);
            let _ = f.config_write_u32(u16::from(off), v & !bit);
        }
    }
    let intr = f.config_read_u32(0x3C).unwrap_or(0);
    if intr & 0xFF == 0xFF {
        let _ = f.config_write_u32(0x3C, (intr & !0xFF) | 9);
    }
}

/// pcid's answer to one request.
pub fn respond<F: PcidFunction + ?Sized>(f: &F, req: PcidClientRequest) -> PcidClientResponse {
    use PcidClientResponse as R;
    let bad = R::Error(PcidServerResponseError::InvalidBitPattern);
    match req {
        PcidClientRequest::EnableDevice => {
            let cmd = f.config_read_u32(0x04).unwrap_or(0);
            match f.config_write_u32(0x04, cmd | COMMAND_IO_MEMORY_MASTER) {
                Ok(()) => R::EnabledDevice,
                Err(_) => bad,
            }
        }
        PcidClientRequest::RequestConfig => R::Config(SubdriverArguments { func: f.info() }),
        PcidClientRequest::RequestFeatures => {
            let mut v = Vec::new();
            f.with_config_space(|c| {
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
                PciFeature::Msi => MSI_ENABLE,
                PciFeature::MsiX => MSIX_ENABLE,
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

fn cap_offset<F: PcidFunction + ?Sized>(f: &F, feature: PciFeature) -> Option<u8> {
    let id = match feature {
        PciFeature::Msi => CAP_ID_MSI,
        PciFeature::MsiX => CAP_ID_MSIX,
    };
    f.with_config_space(|c| find_capability(c, id).ok().flatten().map(|cap| cap.offset))
}

fn feature_info<F: PcidFunction + ?Sized>(f: &F, feature: PciFeature) -> Option<PciFeatureInfo> {
    let off = cap_offset(f, feature)?;
    f.with_config_space(|c| match feature {
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

fn set_feature_info<F: PcidFunction + ?Sized>(f: &F, info: SetFeatureInfo) -> PcidClientResponse {
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
            let Some(cap) = f.with_config_space(|c| MsiCapability::parse(c, off).ok()) else {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hw::pci_function::{SimFunctionSpec, SimPciFunction};
    use crate::kernel::Kernel;
    use driver_sys::pci::PciAddress;

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
