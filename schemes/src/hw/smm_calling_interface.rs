//! The simulated firmware's Dell SMBIOS calling interface (Linux
//! `dell-smbios-smm.c`, `dcdbas.c`): raising an SMI with EBX = the physical
//! address of a 36-byte buffer in simulated RAM below 4 GiB and ECX = `"BSI1"`
//! makes the firmware read the command, run it, and write `output` back before
//! the `out` returns — synchronously; the status port is not involved.
//!
//! Tokens are addressed by their DMI 0xDA *location* ([`SmmFirmware::dmi_tokens`]):
//! class 0 / select 0 reads the token at `input[0]` into `output[1]`, class 1 /
//! select 0 writes `input[1]` to it. `output[0]`: 0 done, −1 completed with an
//! error (no token at that location), −2 not supported (another class). A hung or
//! silent token leaves the buffer as it was: the firmware never got to it.

use std::sync::Arc;

use dsmil::platform::{
    CALLING_INTERFACE_SIGNATURE, CLASS_TOKEN_READ, CLASS_TOKEN_WRITE, CallingInterface,
    CallingInterfaceBuffer, CallingInterfaceConfig, PortIo, SELECT_TOKEN_STD, SMI_COMMAND_PORT,
    SmiBuffer, SmiRegisters, SmiTrigger, SmmCall, SmmRegisters,
};
use syscall::error::{Error, Result};

use crate::hw::smm::{SimulatedDsmil, SmmFirmware, SmmPorts};
use crate::mock::phys::PhysArena;

/// Command code of the simulated calling interface (from the DMI 0xDA
/// structure on real machines).
pub const SMI_CALLING_INTERFACE_CODE: u8 = 0x7D;

/// The calling-interface command buffer in simulated RAM below 4 GiB (one
/// page); freed when dropped.
pub struct PhysSmiBuffer {
    phys: Arc<PhysArena>,
    addr: u64,
}

/// Size of [`PhysSmiBuffer`].
pub const SMI_BUFFER_SIZE: usize = 4096;

impl PhysSmiBuffer {
    /// Allocates the buffer below 4 GiB.
    pub fn new(phys: &Arc<PhysArena>) -> Result<PhysSmiBuffer> {
        let addr = phys.alloc(SMI_BUFFER_SIZE, true)?;
        Ok(PhysSmiBuffer {
            phys: phys.clone(),
            addr,
        })
    }
}

impl Drop for PhysSmiBuffer {
    fn drop(&mut self) {
        self.phys.free(self.addr, SMI_BUFFER_SIZE);
    }
}

impl SmiBuffer for PhysSmiBuffer {
    fn phys_addr(&self) -> u64 {
        self.addr
    }
    fn size(&self) -> usize {
        SMI_BUFFER_SIZE
    }
    fn store(&mut self, bytes: &[u8]) {
        let _ = self.phys.write(self.addr, bytes);
    }
    fn load(&self, out: &mut [u8]) {
        let _ = self.phys.read(self.addr, out);
    }
}

/// The SMI trigger of the simulated machine: its ports, plus the registers of a
/// calling-interface SMI handed to the firmware.
pub struct SmmCallingInterface {
    ports: SmmPorts,
    firmware: SmmFirmware,
    phys: Arc<PhysArena>,
}

impl SmmCallingInterface {
    /// The trigger of `firmware`, reading command buffers from `phys`.
    pub fn new(firmware: &SmmFirmware, phys: &Arc<PhysArena>) -> SmmCallingInterface {
        SmmCallingInterface {
            ports: firmware.ports(),
            firmware: firmware.clone(),
            phys: phys.clone(),
        }
    }
}

impl PortIo for SmmCallingInterface {
    fn inb(&mut self, port: u16) -> u8 {
        self.ports.inb(port)
    }
    fn outb(&mut self, port: u16, value: u8) {
        self.ports.outb(port, value)
    }
    fn inw(&mut self, port: u16) -> u16 {
        self.ports.inw(port)
    }
    fn outw(&mut self, port: u16, value: u16) {
        self.ports.outw(port, value)
    }
    fn inl(&mut self, port: u16) -> u32 {
        self.ports.inl(port)
    }
    fn outl(&mut self, port: u16, value: u32) {
        self.ports.outl(port, value)
    }
}

// The same ports answer the i8k temperature call.
impl SmmCall for SmmCallingInterface {
    fn smm_call(&mut self, registers: SmmRegisters) -> SmmRegisters {
        self.ports.smm_call(registers)
    }
}

impl SmiTrigger for SmmCallingInterface {
    fn raise(&mut self, registers: SmiRegisters) {
        let mut raw = [0u8; CallingInterfaceBuffer::SIZE];
        let readable = self.phys.read(u64::from(registers.ebx), &mut raw);
        let command = CallingInterfaceBuffer::decode(&raw).filter(|_| readable);
        let (Some(mut command), true, SMI_COMMAND_PORT) = (
            command,
            registers.ecx == CALLING_INTERFACE_SIGNATURE,
            registers.command_port,
        ) else {
            // Not a calling-interface SMI: nothing handles it.
            return;
        };
        let input = command.input;
        let mut output = [0u32; 4];
        let write = match (command.cmd_class, command.cmd_select) {
            (CLASS_TOKEN_READ, SELECT_TOKEN_STD) => Some(None),
            (CLASS_TOKEN_WRITE, SELECT_TOKEN_STD) => Some(Some(input[1])),
            _ => None,
        };
        match (write, self.firmware.token_at(input[0])) {
            (None, _) => output[0] = -2i32 as u32,
            (Some(_), None) => output[0] = -1i32 as u32,
            (Some(write), Some(token)) => {
                if !self.firmware.execute(token, write) {
                    // Hung or silent: the firmware never got to the buffer.
                    return;
                }
                output[1] = self.firmware.data_out();
            }
        }
        command.output = output;
        if command.encode(&mut raw).is_some() {
            let _ = self.phys.write(u64::from(registers.ebx), &raw);
        }
    }
}

impl SimulatedDsmil {
    /// The SMI trigger of the calling interface alone, for a daemon that brings its
    /// own command buffer (as `dsmild` does with [`dsmil::platform::DmaSmiBuffer`]).
    pub fn calling_interface_trigger(&self, phys: &Arc<PhysArena>) -> SmmCallingInterface {
        SmmCallingInterface::new(&self.firmware, phys)
    }

    /// dsmild's view with the Dell calling interface instead of the legacy
    /// ports: the command buffer is allocated in `phys` below 4 GiB, and the
    /// token table is the firmware's.
    pub fn hardware_calling_interface(&self, phys: &Arc<PhysArena>) -> Result<dsmil::Hardware> {
        let smi = CallingInterface::new(
            PhysSmiBuffer::new(phys)?,
            self.calling_interface_trigger(phys),
            CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE),
            self.firmware.dmi_tokens(),
        )
        .map_err(Error::from)?;
        Ok(
            dsmil::Hardware::with_firmware(self.smm_thermal(), Box::new(smi))
                .device_memory(Box::new(self.firmware.device_memory())),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil::platform::TokenIo;
    use dsmil::wire::Token;

    #[test]
    fn answers_token_calls_by_dmi_location_synchronously() {
        let sim = SimulatedDsmil::new(40);
        let phys = Arc::new(PhysArena::new(16 << 20, 0));
        let buffer = PhysSmiBuffer::new(&phys).unwrap();
        assert!(buffer.phys_addr() + 36 <= 1 << 32);
        let mut ci = CallingInterface::new(
            buffer,
            sim.calling_interface_trigger(&phys),
            CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE),
            sim.firmware.dmi_tokens(),
        )
        .unwrap();
        let t = Token::new(0x8020).unwrap();
        assert_eq!(ci.read_token(t), Ok(0x5000_8020));
        assert_eq!(ci.write_token(t, 1), Ok(()));
        assert_eq!(sim.firmware.value(0x8020), Some(1));
        assert_eq!(ci.read_token(t), Ok(1));
        assert_eq!(sim.firmware.status_polls(), 0, "no status polling");
        sim.firmware.set_hung(0x8020, true);
        assert_eq!(
            ci.read_token(t).map_err(|e| e.errno()),
            Err(syscall::error::EIO),
            "firmware that never ran is an error, not a zero"
        );
        assert!(ci.write_token(Token::new(0x800A).unwrap(), 1).is_err());
        assert_eq!(sim.firmware.quarantined_writes(), 0);
    }

    #[test]
    fn a_token_id_sent_as_location_is_an_error() {
        let sim = SimulatedDsmil::new(40);
        let phys = Arc::new(PhysArena::new(16 << 20, 0));
        let identity = Token::all()
            .map(|t| dsmil::platform::DmiToken {
                token: t.raw(),
                location: t.raw(),
                value: 1,
            })
            .collect();
        let mut ci = CallingInterface::new(
            PhysSmiBuffer::new(&phys).unwrap(),
            sim.calling_interface_trigger(&phys),
            CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE),
            identity,
        )
        .unwrap();
        let t = Token::new(0x8001).unwrap();
        assert_eq!(
            ci.write_token(t, 1).map_err(|e| e.errno()),
            Err(syscall::error::EIO)
        );
        assert_eq!(sim.firmware.writes(0x8001), 0);
    }
}
