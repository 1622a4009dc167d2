//! The simulated platform's temperature sensor, read by dsmild the way it reads a
//! Dell laptop's: through the SMM i8k call (`EAX = 0x10A3`, `EBX` = sensor slot,
//! `out 0xB2`; the low byte of EAX comes back in °C, above 127 meaning no sensor
//! — Linux `drivers/hwmon/dell-smm-hwmon.c`). The host sets the temperature (a
//! thermal excursion is `set(95)`), takes the sensor away, or breaks the call.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use dsmil::platform::{I8K_GET_TEMPERATURE, SmmRegisters};
use syscall::error::{EIO, Error, Result};

/// The slot the simulated sensor answers in (the others answer "no sensor").
pub const SENSOR_SLOT: u32 = 0;
/// What an i8k slot without a sensor returns in AL (above 127).
pub const NO_SENSOR: u32 = 0x99;

/// The host's handle on the sensor; clones share it.
#[derive(Clone, Debug)]
pub struct SimulatedThermal {
    celsius: Arc<AtomicI32>,
    failed: Arc<AtomicBool>,
    absent: Arc<AtomicBool>,
}

impl SimulatedThermal {
    /// A sensor reading `celsius`.
    pub fn new(celsius: i32) -> SimulatedThermal {
        SimulatedThermal {
            celsius: Arc::new(AtomicI32::new(celsius)),
            failed: Arc::new(AtomicBool::new(false)),
            absent: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets the temperature the sensor reports.
    pub fn set(&self, celsius: i32) {
        self.celsius.store(celsius, Ordering::Release);
    }

    /// The temperature the sensor reports.
    pub fn get(&self) -> i32 {
        self.celsius.load(Ordering::Acquire)
    }

    /// Makes the SMM call fail (EAX comes back unchanged, as when SMM does not
    /// handle it) or work again.
    pub fn set_failed(&self, failed: bool) {
        self.failed.store(failed, Ordering::Release);
    }

    /// Takes the sensor away (its slot answers "no sensor") or puts it back: a
    /// machine whose SMM has no temperature sensor.
    pub fn set_absent(&self, absent: bool) {
        self.absent.store(absent, Ordering::Release);
    }

    /// The firmware's answer to an SMM call: the i8k temperature function, or
    /// all ones (unsupported) for anything else.
    pub fn answer(&self, call: SmmRegisters) -> SmmRegisters {
        let eax = if call.eax != I8K_GET_TEMPERATURE {
            0xFFFF_FFFF
        } else if self.failed.load(Ordering::Acquire) {
            call.eax
        } else if call.ebx & 0xFF != SENSOR_SLOT || self.absent.load(Ordering::Acquire) {
            NO_SENSOR
        } else {
            // The register carries an unsigned byte: below 0 °C reads as 0.
            self.get().clamp(0, 0xFF) as u32
        };
        SmmRegisters { eax, ..call }
    }

    /// The sensor read directly (not through SMM), for tests of the scheme alone.
    pub fn sensor(&self) -> Box<dyn dsmil::hardware::ThermalSensor> {
        Box::new(self.clone())
    }
}

impl dsmil::hardware::ThermalSensor for SimulatedThermal {
    fn read_celsius(&mut self) -> Result<i32> {
        if self.failed.load(Ordering::Acquire) || self.absent.load(Ordering::Acquire) {
            return Err(Error::new(EIO));
        }
        Ok(self.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsmil::platform::{SmmCall, SmmThermal, read_sensor};

    struct Smm(SimulatedThermal);
    impl SmmCall for Smm {
        fn smm_call(&mut self, r: SmmRegisters) -> SmmRegisters {
            self.0.answer(r)
        }
    }

    #[test]
    fn answers_the_i8k_temperature_call() {
        let t = SimulatedThermal::new(47);
        let mut smm = Smm(t.clone());
        assert_eq!(read_sensor(&mut smm, SENSOR_SLOT), Ok(47));
        assert_eq!(
            read_sensor(&mut smm, 3).map_err(|e| e.errno),
            Err(syscall::error::ENODATA)
        );
        t.set_failed(true);
        assert_eq!(
            read_sensor(&mut smm, SENSOR_SLOT).map_err(|e| e.errno),
            Err(EIO)
        );
        t.set_failed(false);
        t.set_absent(true);
        assert!(SmmThermal::probe(Smm(t.clone())).is_none());
    }
}
