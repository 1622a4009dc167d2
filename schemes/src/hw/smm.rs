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
//! ([`crate::hw::smm_calling_interface`]).
//!
//! It answers the i8k temperature call too ([`dsmil::platform::SmmCall`] on
//! [`SmmPorts`]), from the platform's [`SimulatedThermal`] sensor.
//!
//! Faults: a hung SMI (status stuck busy), a device that stops responding
//! (status reads 0xFF, as a port with nothing behind it), both per token.

use std::sync::{Arc, Mutex};

use dsmil::platform::{
    DEVICE_BLOCK_LEN, DeviceMemory, DmiToken, LEGACY_CMD_READ, LEGACY_CMD_WRITE, LEGACY_DATA_PORT,
    LEGACY_TOKEN_PORT, PortIo, SMI_COMMAND_PORT, SMI_STATUS_PORT, STATUS_DONE, STATUS_ERROR,
    SmmCall, SmmRegisters, SmmThermal,
};
use dsmil::wire::{DEVICE_COUNT, FIRST_TOKEN, Token};
use syscall::error::{EINVAL, EIO, Error, Result};

use crate::hw::thermal::SimulatedThermal;
use crate::kernel::wait::lock;

/// First DMI location of the simulated token table.
pub const DMI_LOCATION_BASE: u16 = 0x0400;

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
    thermal: SimulatedThermal,
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
    /// Firmware whose token `t` holds `0x5000_0000 | t` until written, with a
    /// sensor at 40 °C.
    pub fn new() -> SmmFirmware {
        Self::with_thermal(SimulatedThermal::new(40))
    }

    /// Firmware answering the i8k temperature call from `thermal`.
    pub fn with_thermal(thermal: SimulatedThermal) -> SmmFirmware {
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
            thermal,
        }
    }

    /// The sensor the i8k call reads.
    pub fn thermal(&self) -> &SimulatedThermal {
        &self.thermal
    }

    /// The firmware's DMI 0xDA token table: token `t` lives at location
    /// `0x0400 + index` (not its id, so a caller that sends the id is caught) and
    /// a calling-interface write sets it to 1.
    pub fn dmi_tokens(&self) -> Vec<DmiToken> {
        Token::all()
            .map(|t| DmiToken {
                token: t.raw(),
                location: DMI_LOCATION_BASE + t.index() as u16,
                value: 1,
            })
            .collect()
    }

    /// The value the last completed command left (a read's answer).
    pub(crate) fn data_out(&self) -> u32 {
        lock(&self.inner).data_out
    }

    /// The token at DMI `location`, if the table has one.
    pub(crate) fn token_at(&self, location: u32) -> Option<u16> {
        let offset = location.checked_sub(u32::from(DMI_LOCATION_BASE))?;
        let token = u32::from(FIRST_TOKEN).checked_add(offset)?;
        u16::try_from(token).ok().filter(|&t| index(t).is_some())
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
    pub(crate) fn execute(&self, token: u16, write: Option<u32>) -> bool {
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

impl SmmCall for SmmPorts {
    fn smm_call(&mut self, registers: SmmRegisters) -> SmmRegisters {
        self.firmware.thermal.answer(registers)
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
    pub thermal: SimulatedThermal,
}

impl SimulatedDsmil {
    /// A platform at `celsius`.
    pub fn new(celsius: i32) -> SimulatedDsmil {
        let thermal = SimulatedThermal::new(celsius);
        SimulatedDsmil {
            firmware: SmmFirmware::with_thermal(thermal.clone()),
            thermal,
        }
    }

    /// The thermal sensor as dsmild finds it: the SMM slots probed at start
    /// through the simulated ports (`None` when the sensor is absent or broken).
    pub fn smm_thermal(&self) -> Option<Box<dyn dsmil::hardware::ThermalSensor>> {
        SmmThermal::probe(self.firmware.ports())
            .map(|t| Box::new(t) as Box<dyn dsmil::hardware::ThermalSensor>)
    }

    /// dsmild's view: the legacy SMI path over the simulated ports (default
    /// policy: 50 ms budget, 10 identical polls = hung, 2 retries), the
    /// register blocks, the sensor, and the system monotonic clock. The SMI
    /// budget is timed by the `time` scheme's clock ([`dsmil::platform::RedoxClock`]),
    /// as dsmild's own startup does (`daemon/src/startup.rs`), so a machine with a
    /// manual clock decides "hung" by polls alone, however slow the host.
    pub fn hardware(&self) -> dsmil::Hardware {
        self.hardware_timed_by(dsmil::platform::RedoxClock)
    }

    /// [`SimulatedDsmil::hardware`] with the SMI budget timed by `clock`: for
    /// tests that drive the scheme without a kernel (and so without a `time`
    /// scheme), which pass a [`dsmil::platform::ManualClock`].
    pub fn hardware_timed_by(
        &self,
        clock: impl dsmil::platform::Clock + Send + 'static,
    ) -> dsmil::Hardware {
        let smi = dsmil::platform::LegacySmi::new(
            self.firmware.ports(),
            clock,
            dsmil::platform::SmiPolicy::default(),
        );
        dsmil::Hardware::with_firmware(self.smm_thermal(), Box::new(smi))
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
        // A clock that stands still: "hung" is decided by polls, never by how
        // long the host took to make them.
        let mut smi = dsmil::platform::LegacySmi::new(
            sim.firmware.ports(),
            dsmil::platform::ManualClock::new(),
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
}
