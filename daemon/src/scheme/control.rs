//! The `control` channel: a request (16 bytes, or a `call`'s metadata) in, a response
//! out. Write-then-read keeps the response in the handle until it is read.

use syscall::error::{EOPNOTSUPP, Error, Result};

use crate::wire::{ControlRequest, Op, VersionInfo};

/// Runs one control request and returns its encoded response.
pub fn execute(req: &ControlRequest) -> Result<Vec<u8>> {
    match req.op {
        Op::GetVersion => {
            let mut out = vec![0u8; VersionInfo::SIZE];
            VersionInfo::default().encode(&mut out)?;
            Ok(out)
        }
        // The remaining MILDEV ops arrive with the device model.
        _ => Err(Error::new(EOPNOTSUPP)),
    }
}
