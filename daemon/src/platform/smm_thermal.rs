//! Temperature from Dell SMM, the i8k interface (Linux
//! `drivers/hwmon/dell-smm-hwmon.c`): with no ACPI thermal zone driver and no MSR
//! access on Redox, this is the sensor dsmild can read there.
//!
//! A call loads EAX with the function and EBX with its argument, writes AL to the
//! SMI command port 0xB2 (then 0x84, as Linux does), and SMM answers in EAX. The
//! temperature function is 0x10A3 with the sensor index in EBX; the low byte of
//! EAX is the reading in °C, and above 127 means "no sensor there". An EAX whose
//! low 16 bits are all ones, or that still holds the function number, means the
//! call itself failed.

use syscall::error::{EIO, ENODATA, Error, Result};

use crate::hardware::ThermalSensor;

/// i8k function: read temperature sensor EBX.
pub const I8K_GET_TEMPERATURE: u32 = 0x10A3;
/// Highest valid reading, °C; above it the sensor does not exist.
pub const I8K_MAX_TEMPERATURE: u32 = 127;
/// Sensor indices probed at start (Linux probes the same ten).
pub const I8K_SENSOR_SLOTS: u32 = 10;

/// The general-purpose registers an SMM call takes and returns.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SmmRegisters {
    /// Function in, result out.
    pub eax: u32,
    /// Argument.
    pub ebx: u32,
    /// Argument.
    pub ecx: u32,
    /// Argument.
    pub edx: u32,
    /// Argument.
    pub esi: u32,
    /// Argument.
    pub edi: u32,
}

/// Raises a Dell SMM call: registers loaded, AL written to port 0xB2, registers
/// read back. The x86 implementation is inline assembly (the registers must be
/// loaded in the same instruction sequence as the `out`); the simulated firmware
/// answers it in `redox-host`.
pub trait SmmCall {
    /// Runs one call and returns the registers SMM left.
    fn smm_call(&mut self, registers: SmmRegisters) -> SmmRegisters;
}

impl<T: SmmCall + ?Sized> SmmCall for &mut T {
    fn smm_call(&mut self, registers: SmmRegisters) -> SmmRegisters {
        (**self).smm_call(registers)
    }
}

/// One i8k temperature read: `Ok(°C)`, `ENODATA` for a slot without a sensor,
/// `EIO` when the call failed.
pub fn read_sensor<S: SmmCall + ?Sized>(smm: &mut S, index: u32) -> Result<i32> {
    let out = smm.smm_call(SmmRegisters {
        eax: I8K_GET_TEMPERATURE,
        ebx: index & 0xFF,
        ..SmmRegisters::default()
    });
    if out.eax & 0xFFFF == 0xFFFF || out.eax == I8K_GET_TEMPERATURE {
        return Err(Error::new(EIO));
    }
    let celsius = out.eax & 0xFF;
    if celsius > I8K_MAX_TEMPERATURE {
        return Err(Error::new(ENODATA));
    }
    // ≤ 127: fits.
    Ok(celsius as i32)
}

/// The platform's SMM temperature sensors, probed once at start; a reading is
/// the hottest of them (the guard protects against the worst one).
pub struct SmmThermal<S> {
    smm: S,
    sensors: Vec<u32>,
}

impl<S: SmmCall> SmmThermal<S> {
    /// Probes the ten i8k slots and keeps those that answer with a reading;
    /// `None` when none does (the machine has no usable sensor).
    pub fn probe(mut smm: S) -> Option<SmmThermal<S>> {
        let sensors: Vec<u32> = (0..I8K_SENSOR_SLOTS)
            .filter(|&i| read_sensor(&mut smm, i).is_ok())
            .collect();
        if sensors.is_empty() {
            None
        } else {
            Some(SmmThermal { smm, sensors })
        }
    }

    /// The sensor slots found at start.
    pub fn sensors(&self) -> &[u32] {
        &self.sensors
    }
}

impl<S: SmmCall + Send> ThermalSensor for SmmThermal<S> {
    /// The hottest working sensor; an error only when none answers now.
    fn read_celsius(&mut self) -> Result<i32> {
        let mut hottest = None;
        let mut error = Error::new(EIO);
        for &i in &self.sensors {
            match read_sensor(&mut self.smm, i) {
                Ok(c) => hottest = Some(hottest.map_or(c, |h: i32| h.max(c))),
                Err(e) => error = e,
            }
        }
        hottest.ok_or(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Slot 1 reads `celsius`, slot 4 `celsius - 10`, the rest 0x99 (absent).
    struct Firmware {
        celsius: u32,
        broken: bool,
    }

    impl SmmCall for Firmware {
        fn smm_call(&mut self, r: SmmRegisters) -> SmmRegisters {
            let eax = match (self.broken, r.eax, r.ebx) {
                (true, _, _) => r.eax,
                (false, I8K_GET_TEMPERATURE, 1) => self.celsius,
                (false, I8K_GET_TEMPERATURE, 4) => self.celsius - 10,
                (false, I8K_GET_TEMPERATURE, _) => 0x99,
                _ => 0xFFFF_FFFF,
            };
            SmmRegisters { eax, ..r }
        }
    }

    #[test]
    fn probes_working_slots_and_reads_the_hottest() {
        let mut t = SmmThermal::probe(Firmware {
            celsius: 61,
            broken: false,
        })
        .expect("sensors");
        assert_eq!(t.sensors(), [1, 4]);
        assert_eq!(t.read_celsius(), Ok(61));
        t.smm.celsius = 97;
        assert_eq!(t.read_celsius(), Ok(97));
        t.smm.broken = true;
        assert_eq!(t.read_celsius(), Err(Error::new(EIO)));
    }

    #[test]
    fn no_answering_slot_is_no_sensor() {
        let broken = Firmware {
            celsius: 50,
            broken: true,
        };
        assert!(SmmThermal::probe(broken).is_none());
        let mut f = Firmware {
            celsius: 50,
            broken: false,
        };
        assert_eq!(read_sensor(&mut f, 2), Err(Error::new(ENODATA)));
    }
}
