//! A simulated thermal sensor near the DSMIL devices: the host sets the
//! temperature (a thermal excursion is `set(95)`), dsmild reads it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

use syscall::error::{EIO, Error, Result};

/// The host's handle on the sensor; clones share it.
#[derive(Clone, Debug)]
pub struct SimulatedThermal {
    celsius: Arc<AtomicI32>,
    failed: Arc<AtomicBool>,
}

impl SimulatedThermal {
    /// A sensor reading `celsius`.
    pub fn new(celsius: i32) -> SimulatedThermal {
        SimulatedThermal {
            celsius: Arc::new(AtomicI32::new(celsius)),
            failed: Arc::new(AtomicBool::new(false)),
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

    /// Makes reads fail with `EIO` (a broken sensor) or work again.
    pub fn set_failed(&self, failed: bool) {
        self.failed.store(failed, Ordering::Release);
    }

    /// The sensor as dsmild's hardware sees it.
    pub fn sensor(&self) -> Box<dyn dsmil::hardware::ThermalSensor> {
        Box::new(self.clone())
    }
}

impl dsmil::hardware::ThermalSensor for SimulatedThermal {
    fn read_celsius(&mut self) -> Result<i32> {
        if self.failed.load(Ordering::Acquire) {
            return Err(Error::new(EIO));
        }
        Ok(self.get())
    }
}
