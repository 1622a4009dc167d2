//! Writes that change the machine: token values (root only, through
//! firmware) and tunables (root only, validated).

use syscall::error::{EACCES, EBADF, EINVAL, Error, Result};

use super::DsmilScheme;
use super::handle::Handle;
use super::tunables::Tunable;

impl DsmilScheme {
    pub(super) fn write_config(&mut self, id: usize, buf: &[u8], uid: u32) -> Result<usize> {
        let Some(Handle::Config {
            tunable, writable, ..
        }) = self.handles.get(&id)
        else {
            return Err(Error::new(EBADF));
        };
        let (tunable, writable) = (*tunable, *writable);
        if !writable {
            return Err(Error::new(EBADF));
        }
        if uid != 0 {
            return Err(self.refuse(None, EACCES, uid));
        }
        let value = tunable.parse_value(buf)?;
        if tunable == Tunable::ThermalLimit {
            self.machine
                .set_thermal_limit(i32::try_from(value).map_err(|_| Error::new(EINVAL))?)?;
        }
        tunable.set(&mut self.config, value)?;
        if let Some(handle) = self.handles.get_mut(&id) {
            handle.set_pos(0);
        }
        Ok(buf.len())
    }

    pub(super) fn write_device(&mut self, id: usize, buf: &[u8], uid: u32) -> Result<usize> {
        let Some(Handle::Device {
            token, writable, ..
        }) = self.handles.get(&id)
        else {
            return Err(Error::new(EBADF));
        };
        let (token, writable) = (*token, *writable);
        if !writable {
            return Err(Error::new(EBADF));
        }
        if uid != 0 {
            return Err(self.refuse(Some(token), EACCES, uid));
        }
        let value: [u8; 4] = buf.try_into().map_err(|_| Error::new(EINVAL))?;
        let outcome = self
            .machine
            .write_token(token, u32::from_le_bytes(value), uid);
        if let Err(e) = &outcome {
            self.stats.refusal(e.errno, token.is_quarantined());
        }
        outcome.map(|()| buf.len())
    }
}
