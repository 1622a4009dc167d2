//! Simulated SMM firmware answering DSMIL's legacy SMI port protocol for the
//! 108 tokens, plus the devices' register blocks.
//!
//! Protocol (as the firmware sees port writes): `outw(0x164E)` latches a token,
//! `outl(0x164F)` latches a value, `outb(0xB2, 1|2)` raises the SMI (1 read,
//! 2 write), status on `inb(0xB3)` (bit 0 done, bit 7 error), a read's value on
//! `inl(0x164F)`. Every command that reaches the firmware is counted per token —
//! including writes to quarantined tokens, which is how tests prove none arrive.
//!
//! The same firmware also answers the Dell calling interface
//! ([`SmmCallingInterface`]): a 36-byte buffer in simulated RAM below 4 GiB,
//! its address in EBX, `"BSI1"` in ECX, class 0 read / class 1 write.
//!
//! Faults: a hung SMI (status stuck busy), a device that stops responding
//! (status reads 0xFF, as a port with nothing behind it), both per token.

use std::sync::{Arc, Mutex};

use dsmil::platform::{
    CALLING_INTERFACE_SIGNATURE, CLASS_TOKEN_READ, CLASS_TOKEN_WRITE, CallingInterfaceBuffer,
    DEVICE_BLOCK_LEN, DeviceMemory, LEGACY_CMD_READ, LEGACY_CMD_WRITE, LEGACY_DATA_PORT,
    LEGACY_TOKEN_PORT, PortIo, SMI_COMMAND_PORT, SMI_STATUS_PORT, STATUS_DONE, STATUS_ERROR,
    SmiBuffer, SmiRegisters, SmiTrigger,
};
use dsmil::wire::{DEVICE_COUNT, FIRST_TOKEN, Token};
use syscall::error::{EINVAL, EIO, Error, Result};

use crate::kernel::wait::lock;
use crate::mock::phys::PhysArena;

/// Command code of the simulated calling interface (from the DMI 0xDA
/// structure on real machines).
pub const SMI_CALLING_INTERFACE_CODE: u8 = 0x7D;

/// Status a hung SMI leaves on 0xB3: busy, never done.
pub const STATUS_HUNG: u8 = 0x02;
/// Status when nothing answers.
pub const STATUS_NO_ANSWER: u8 = 0xFF;

#[derive(Debug)]
struct Firmware {
    values: [u32; DEVICE_COUNT],
    reads: [u64; DEVICE_COUNT],
    writes: [u64; DEVICE_COUNT],
    hung: [bool; DEVICE_COUNT],
    silent: [bool; DEVICE_COUNT],
    latched_token: u16,
    latched_data: u32,
    data_out: u32,
    status: u8,
    status_polls: u64,
}

/// The firmware; clones share it (the host keeps one to poke and inspect,
/// dsmild's port object holds another).
#[derive(Clone, Debug)]
pub struct SmmFirmware {
    inner: Arc<Mutex<Firmware>>,
}

impl Default for SmmFirmware {
    fn default() -> Self {
        Self::new()
    }
}

fn index(token: u16) -> Option<usize> {
    Token::new(token).ok().map(Token::index)
}

impl SmmFirmware {
    /// Firmware whose token `t` holds `0x5000_0000 | t` until written.
    pub fn new() -> SmmFirmware {
        let mut values = [0u32; DEVICE_COUNT];
        for (i, v) in values.iter_mut().enumerate() {
            *v = 0x5000_0000 | (u32::from(FIRST_TOKEN) + i as u32);
        }
        SmmFirmware {
            inner: Arc::new(Mutex::new(Firmware {
                values,
                reads: [0; DEVICE_COUNT],
                writes: [0; DEVICE_COUNT],
                hung: [false; DEVICE_COUNT],
                silent: [false; DEVICE_COUNT],
                latched_token: 0,
                latched_data: 0,
                data_out: 0,
                status: STATUS_DONE,
                status_polls: 0,
            })),
        }
    }

    /// Write commands that reached the firmware for `token`.
    pub fn writes(&self, token: u16) -> u64 {
        index(token).map_or(0, |i| lock(&self.inner).writes[i])
    }

    /// Read commands that reached the firmware for `token`.
    pub fn reads(&self, token: u16) -> u64 {
        index(token).map_or(0, |i| lock(&self.inner).reads[i])
    }

    /// Writes that reached the firmware for any quarantined token.
    pub fn quarantined_writes(&self) -> u64 {
        let fw = lock(&self.inner);
        Token::all()
            .filter(|t| t.is_quarantined())
            .map(|t| fw.writes[t.index()])
            .sum()
    }

    /// The token's current value.
    pub fn value(&self, token: u16) -> Option<u32> {
        index(token).map(|i| lock(&self.inner).values[i])
    }

    /// Status-port reads so far (how long callers polled).
    pub fn status_polls(&self) -> u64 {
        lock(&self.inner).status_polls
    }

    /// Makes SMIs for `token` hang (status stuck busy) or work again.
    pub fn set_hung(&self, token: u16, hung: bool) {
        if let Some(i) = index(token) {
            lock(&self.inner).hung[i] = hung;
        }
    }

    /// Makes `token`'s device stop responding (status 0xFF) or answer again.
    pub fn set_unresponsive(&self, token: u16, silent: bool) {
        if let Some(i) = index(token) {
            lock(&self.inner).silent[i] = silent;
        }
    }

    /// A port-I/O object for dsmild wired to this firmware.
    pub fn ports(&self) -> SmmPorts {
        SmmPorts {
            firmware: self.clone(),
        }
    }

    /// The devices' register blocks, served by this firmware.
    pub fn device_memory(&self) -> SmmDeviceMemory {
        SmmDeviceMemory {
            firmware: self.clone(),
        }
    }

    fn raise(&self, command: u8) {
        let (token, data) = {
            let fw = lock(&self.inner);
            (fw.latched_token, fw.latched_data)
        };
        let write = match command {
            LEGACY_CMD_READ => None,
            LEGACY_CMD_WRITE => Some(data),
            _ => {
                lock(&self.inner).status = STATUS_DONE | STATUS_ERROR;
                return;
            }
        };
        self.execute(token, write);
    }

    /// Runs one token command that reached the firmware (counted, faults
    /// applied); leaves the status and, on success, the value in `data_out`.
    /// Returns whether it completed.
    fn execute(&self, token: u16, write: Option<u32>) -> bool {
        let mut fw = lock(&self.inner);
        let Some(i) = index(token) else {
            fw.status = STATUS_DONE | STATUS_ERROR;
            return false;
        };
        match write {
            None => fw.reads[i] += 1,
            Some(_) => fw.writes[i] += 1,
        }
        if fw.silent[i] {
            fw.status = STATUS_NO_ANSWER;
            false
        } else if fw.hung[i] {
            fw.status = STATUS_HUNG;
            false
        } else {
            if let Some(value) = write {
                fw.values[i] = value;
            }
            fw.data_out = fw.values[i];
            fw.status = STATUS_DONE;
            true
        }
    }
}

/// dsmild's port I/O on the simulated machine.
#[derive(Debug)]
pub struct SmmPorts {
    firmware: SmmFirmware,
}

impl PortIo for SmmPorts {
    fn inb(&mut self, port: u16) -> u8 {
        let mut fw = lock(&self.firmware.inner);
        if port == SMI_STATUS_PORT {
            fw.status_polls += 1;
            fw.status
        } else {
            0xFF
        }
    }
    fn outb(&mut self, port: u16, value: u8) {
        if port == SMI_COMMAND_PORT {
            self.firmware.raise(value);
        }
    }
    fn inw(&mut self, _port: u16) -> u16 {
        0xFFFF
    }
    fn outw(&mut self, port: u16, value: u16) {
        if port == LEGACY_TOKEN_PORT {
            lock(&self.firmware.inner).latched_token = value;
        }
    }
    fn inl(&mut self, port: u16) -> u32 {
        if port == LEGACY_DATA_PORT {
            lock(&self.firmware.inner).data_out
        } else {
            0xFFFF_FFFF
        }
    }
    fn outl(&mut self, port: u16, value: u32) {
        if port == LEGACY_DATA_PORT {
            lock(&self.firmware.inner).latched_data = value;
        }
    }
}

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

/// The Dell calling interface of the simulated firmware: raising an SMI with
/// EBX = buffer address and ECX = `"BSI1"` makes the firmware read the command
/// from simulated RAM, run it, and write `output` back (`output[0]`: 0 done,
/// −1 failed, −2 not supported; a read's value in `output[1]`). A hung or
/// silent token leaves the buffer untouched and the status stuck.
pub struct SmmCallingInterface {
    ports: SmmPorts,
    phys: Arc<PhysArena>,
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

impl SmiTrigger for SmmCallingInterface {
    fn raise(&mut self, registers: SmiRegisters) {
        let firmware = &self.ports.firmware;
        let mut raw = [0u8; CallingInterfaceBuffer::SIZE];
        let readable = self.phys.read(u64::from(registers.ebx), &mut raw);
        let command = CallingInterfaceBuffer::decode(&raw).filter(|_| readable);
        let (Some(mut command), true, SMI_COMMAND_PORT) = (
            command,
            registers.ecx == CALLING_INTERFACE_SIGNATURE,
            registers.command_port,
        ) else {
            lock(&firmware.inner).status = STATUS_DONE | STATUS_ERROR;
            return;
        };
        let input = command.input;
        let token = u16::try_from(input[0]).unwrap_or(0);
        let mut output = [0u32; 4];
        let write = match command.cmd_class {
            CLASS_TOKEN_READ => Some(None),
            CLASS_TOKEN_WRITE => Some(Some(input[1])),
            _ => None,
        };
        match write {
            None => output[0] = -2i32 as u32,
            Some(_) if index(token).is_none() => output[0] = -1i32 as u32,
            Some(write) => {
                if !firmware.execute(token, write) {
                    // Hung or silent: firmware never got to write the buffer.
                    return;
                }
                output[1] = lock(&firmware.inner).data_out;
            }
        }
        command.output = output;
        if command.encode(&mut raw).is_some() {
            let _ = self.phys.write(u64::from(registers.ebx), &raw);
        }
        lock(&firmware.inner).status = STATUS_DONE;
    }
}

/// The devices' register blocks: byte `i` of token `t`'s block is
/// `(t as u8) ^ (i as u8)`, after the token's current value (4 bytes LE).
#[derive(Debug)]
pub struct SmmDeviceMemory {
    firmware: SmmFirmware,
}

impl DeviceMemory for SmmDeviceMemory {
    fn read_block(&mut self, token: Token, out: &mut [u8]) -> Result<()> {
        if out.len() > DEVICE_BLOCK_LEN {
            return Err(Error::new(EINVAL));
        }
        let fw = lock(&self.firmware.inner);
        let i = token.index();
        if fw.silent.get(i).copied().unwrap_or(true) {
            return Err(Error::new(EIO));
        }
        let value = fw.values.get(i).copied().unwrap_or(0).to_le_bytes();
        for (n, byte) in out.iter_mut().enumerate() {
            *byte = match value.get(n) {
                Some(v) => *v,
                None => (token.raw() as u8) ^ (n as u8),
            };
        }
        Ok(())
    }
}

/// The simulated DSMIL platform: firmware and thermal sensor, with the
/// handles a test pokes, and the [`dsmil::Hardware`] dsmild runs on.
#[derive(Clone, Debug)]
pub struct SimulatedDsmil {
    /// The SMM firmware.
    pub firmware: SmmFirmware,
    /// The thermal sensor.
    pub thermal: crate::hw::thermal::SimulatedThermal,
}

impl SimulatedDsmil {
    /// A platform at `celsius`.
    pub fn new(celsius: i32) -> SimulatedDsmil {
        SimulatedDsmil {
            firmware: SmmFirmware::new(),
            thermal: crate::hw::thermal::SimulatedThermal::new(celsius),
        }
    }

    /// The SMI trigger of the calling interface alone, for a daemon that brings its
    /// own command buffer (as `dsmild` does with [`dsmil::platform::DmaSmiBuffer`]).
    pub fn calling_interface_trigger(&self, phys: &Arc<PhysArena>) -> SmmCallingInterface {
        SmmCallingInterface {
            ports: self.firmware.ports(),
            phys: phys.clone(),
        }
    }

    /// dsmild's view with the Dell calling interface instead of the legacy
    /// ports: the command buffer is allocated in `phys` below 4 GiB.
    pub fn hardware_calling_interface(&self, phys: &Arc<PhysArena>) -> Result<dsmil::Hardware> {
        let buffer = PhysSmiBuffer::new(phys)?;
        let trigger = SmmCallingInterface {
            ports: self.firmware.ports(),
            phys: phys.clone(),
        };
        let smi = dsmil::platform::CallingInterface::new(
            buffer,
            trigger,
            dsmil::platform::MonotonicClock::new(),
            dsmil::platform::CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE),
        )
        .map_err(Error::from)?;
        Ok(
            dsmil::Hardware::with_firmware(self.thermal.sensor(), Box::new(smi))
                .device_memory(Box::new(self.firmware.device_memory())),
        )
    }

    /// dsmild's view: the legacy SMI path over the simulated ports (default
    /// policy: 50 ms budget, 10 identical polls = hung, 2 retries), the
    /// register blocks, the sensor, and the system monotonic clock.
    pub fn hardware(&self) -> dsmil::Hardware {
        let smi = dsmil::platform::LegacySmi::new(
            self.firmware.ports(),
            dsmil::platform::MonotonicClock::new(),
            dsmil::platform::SmiPolicy::default(),
        );
        dsmil::Hardware::with_firmware(self.thermal.sensor(), Box::new(smi))
            .device_memory(Box::new(self.firmware.device_memory()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil::platform::TokenIo;

    #[test]
    fn answers_the_legacy_protocol_and_counts() {
        let sim = SimulatedDsmil::new(40);
        let mut smi = dsmil::platform::LegacySmi::new(
            sim.firmware.ports(),
            dsmil::platform::MonotonicClock::new(),
            dsmil::platform::SmiPolicy::default(),
        );
        let t = Token::new(0x8001).unwrap();
        assert_eq!(smi.read_token(t), Ok(0x5000_8001));
        assert_eq!(smi.write_token(t, 7), Ok(()));
        assert_eq!(smi.read_token(t), Ok(7));
        assert_eq!(
            (sim.firmware.reads(0x8001), sim.firmware.writes(0x8001)),
            (2, 1)
        );
        sim.firmware.set_hung(0x8001, true);
        assert_eq!(
            smi.read_token(t).map_err(|e| e.errno()),
            Err(syscall::error::ETIMEDOUT)
        );
        assert_eq!(sim.firmware.reads(0x8001), 2 + 3, "one try and two retries");
        sim.firmware.set_hung(0x8001, false);
        sim.firmware.set_unresponsive(0x8002, true);
        let silent = Token::new(0x8002).unwrap();
        assert_eq!(
            smi.read_token(silent).map_err(|e| e.errno()),
            Err(syscall::error::EIO)
        );
        // The driver refuses quarantined tokens, so nothing arrives.
        let q = Token::new(0x8009).unwrap();
        assert!(smi.write_token(q, 1).is_err());
        assert_eq!(sim.firmware.quarantined_writes(), 0);
    }

    #[test]
    fn answers_the_calling_interface_through_simulated_ram() {
        let sim = SimulatedDsmil::new(40);
        let phys = Arc::new(PhysArena::new(16 << 20, 0));
        let buffer = PhysSmiBuffer::new(&phys).unwrap();
        assert!(buffer.phys_addr() + 36 <= 1 << 32);
        let trigger = SmmCallingInterface {
            ports: sim.firmware.ports(),
            phys: phys.clone(),
        };
        let mut ci = dsmil::platform::CallingInterface::new(
            buffer,
            trigger,
            dsmil::platform::MonotonicClock::new(),
            dsmil::platform::CallingInterfaceConfig::new(SMI_CALLING_INTERFACE_CODE),
        )
        .unwrap();
        let t = Token::new(0x8020).unwrap();
        assert_eq!(ci.read_token(t), Ok(0x5000_8020));
        assert_eq!(ci.write_token(t, 0x1234), Ok(()));
        assert_eq!(sim.firmware.value(0x8020), Some(0x1234));
        assert_eq!(ci.read_token(t), Ok(0x1234));
        sim.firmware.set_hung(0x8020, true);
        assert_eq!(
            ci.read_token(t).map_err(|e| e.errno()),
            Err(syscall::error::ETIMEDOUT)
        );
        assert!(ci.write_token(Token::new(0x800A).unwrap(), 1).is_err());
        assert_eq!(sim.firmware.quarantined_writes(), 0);
    }
}
