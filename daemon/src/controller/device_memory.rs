//! The controller as dsmild's source of device data blocks.
//!
//! [`DeviceMemory`] is how a read session captures a device's register block;
//! with the PCI function present, the block arrives by DMA from the controller
//! instead of through the memory window. Wire it in with
//! `Hardware::device_memory(Box::new(controller))`.

use syscall::error::{EINVAL, Error, Result};

use super::DsmilController;
use super::registers::DEVICE_DATA_LEN;
use crate::platform::{DEVICE_BLOCK_LEN, DeviceMemory};
use crate::wire::Token;

// A controller data block is exactly what a read session captures.
const _: () = assert!(DEVICE_DATA_LEN == DEVICE_BLOCK_LEN);

impl DeviceMemory for DsmilController {
    fn read_block(&mut self, token: Token, out: &mut [u8]) -> Result<()> {
        if out.len() > DEVICE_BLOCK_LEN {
            return Err(Error::new(EINVAL));
        }
        let block = self.read_device_data(token)?;
        let src = block.get(..out.len()).ok_or(Error::new(EINVAL))?;
        out.copy_from_slice(src);
        Ok(())
    }
}

// dsmild's hardware is moved onto the daemon's thread.
const _: fn() = || {
    fn send<T: Send>() {}
    send::<DsmilController>();
};
