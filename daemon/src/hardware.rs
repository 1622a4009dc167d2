//! What dsmild needs from the machine, behind small traits so the same daemon runs on
//! real hardware (wired in `main.rs`) and on the simulated machine (wired by
//! `redox-host`).

use syscall::error::Result;

/// A temperature sensor near the DSMIL devices.
pub trait ThermalSensor: Send {
    /// Current temperature in °C.
    fn read_celsius(&mut self) -> Result<i32>;
}

/// A sensor that always reads one value (machines without one report a safe constant).
pub struct FixedThermal(pub i32);

impl ThermalSensor for FixedThermal {
    fn read_celsius(&mut self) -> Result<i32> {
        Ok(self.0)
    }
}

/// The hardware handed to [`crate::run`].
pub struct Hardware {
    /// Thermal sensor.
    pub thermal: Box<dyn ThermalSensor>,
}

impl Hardware {
    /// Hardware with only a fixed-reading thermal sensor (no SMI, no PCI function).
    pub fn minimal(celsius: i32) -> Self {
        Self {
            thermal: Box::new(FixedThermal(celsius)),
        }
    }
}
