//! The `call` fast path: one round trip per control op (`metadata[0]` = op)
//! instead of a write and a read. It needs `libredox` (on Linux, the mocked
//! kernel), so it is a separate type that std-only programs never link.

use std::path::{Path, PathBuf};

use libredox::call;
use libredox::flag::{O_CLOEXEC, O_RDWR};
use syscall::CallFlags;
use syscall::error::EINVAL;

use super::error::{ClientError, Result};
use crate::wire::{
    ControlRequest, DeviceInfo, Op, SystemStatus, ThermalReply, Token, VersionInfo,
    decode_device_list,
};

/// Largest variable-size reply accepted (whole table or one device's data).
const MAX_REPLY: usize = 1 << 20;

/// An open `control` channel used through `call`.
///
/// ```no_run
/// use dsmil::client::fast::ControlChannel;
///
/// let ctl = ControlChannel::open("/scheme/dsmil")?;
/// let devices = ctl.scan_devices()?; // SCAN_DEVICES: the whole table in one call
/// println!("{} devices", devices.len());
/// # Ok::<(), dsmil::client::ClientError>(())
/// ```
pub struct ControlChannel {
    fd: usize,
    path: PathBuf,
}

impl ControlChannel {
    /// Opens `<root>/control`.
    pub fn open(root: impl AsRef<Path>) -> Result<ControlChannel> {
        let path = root.as_ref().join("control");
        let text = path
            .to_str()
            .ok_or_else(|| ClientError::new("open", &path, EINVAL))?;
        let fd = call::open(text, O_RDWR | O_CLOEXEC, 0)
            .map_err(|e| ClientError::new("open", &path, e.errno()))?;
        Ok(ControlChannel { fd, path })
    }

    /// Runs `req` as one `call`; the reply goes into `out`, its length is returned.
    pub fn call_into(&self, req: ControlRequest, out: &mut [u8]) -> Result<usize> {
        let metadata = [u64::from(req.op.raw()), u64::from(req.arg0), req.arg1];
        call::call_ro(self.fd, out, CallFlags::empty(), &metadata)
            .map_err(|e| ClientError::new("call", &self.path, e.errno()))
    }

    /// Runs `req` and returns the reply bytes.
    pub fn call(&self, req: ControlRequest) -> Result<Vec<u8>> {
        let mut out = vec![0u8; req.op.fixed_reply_len().unwrap_or(MAX_REPLY)];
        let n = self.call_into(req, &mut out)?;
        out.truncate(n);
        Ok(out)
    }

    fn decoded<R>(
        &self,
        req: ControlRequest,
        decode: impl FnOnce(&[u8]) -> syscall::error::Result<R>,
    ) -> Result<R> {
        let reply = self.call(req)?;
        decode(&reply).map_err(|e| ClientError::new("decode", &self.path, e.errno))
    }

    /// `GET_VERSION`.
    pub fn version(&self) -> Result<VersionInfo> {
        self.decoded(
            ControlRequest::new(Op::GetVersion, 0, 0),
            VersionInfo::decode,
        )
    }

    /// `GET_STATUS`.
    pub fn status(&self) -> Result<SystemStatus> {
        self.decoded(
            ControlRequest::new(Op::GetStatus, 0, 0),
            SystemStatus::decode,
        )
    }

    /// `GET_THERMAL`.
    pub fn thermal(&self) -> Result<ThermalReply> {
        self.decoded(
            ControlRequest::new(Op::GetThermal, 0, 0),
            ThermalReply::decode,
        )
    }

    /// `SCAN_DEVICES`: the whole table in one call.
    pub fn scan_devices(&self) -> Result<Vec<DeviceInfo>> {
        self.decoded(
            ControlRequest::new(Op::ScanDevices, 0, 0),
            decode_device_list,
        )
    }

    /// `READ_DEVICE`: one device's data in one call.
    pub fn read_device(&self, token: Token) -> Result<Vec<u8>> {
        self.call(ControlRequest::new(
            Op::ReadDevice,
            u32::from(token.raw()),
            0,
        ))
    }
}

impl Drop for ControlChannel {
    fn drop(&mut self) {
        let _ = call::close(self.fd);
    }
}
