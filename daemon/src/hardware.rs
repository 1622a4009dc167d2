//! What dsmild needs from the machine, behind small traits so the same daemon runs on
//! real hardware (wired in `main.rs`) and on the simulated machine (wired by
//! `redox-host`).
//!
//! Today the token path is firmware (SMI: [`crate::platform::LegacySmi`] or the Dell
//! [`crate::platform::CallingInterface`]), optionally with the devices' register
//! blocks ([`DeviceMemory`]). The DSMIL PCI controller (MSI-X completion, device data
//! DMA'd into IOMMU-mapped buffers) will be one more optional field here, preferred
//! over firmware when the function exists; the scheme only talks to [`crate::machine`],
//! which picks the path.

use syscall::error::Result;

use crate::platform::{Clock, DeviceMemory, MmioAccess, RedoxClock, TokenIo};

/// A temperature sensor near the DSMIL devices.
pub trait ThermalSensor: Send {
    /// Current temperature in °C.
    fn read_celsius(&mut self) -> Result<i32>;
}

/// A sensor that always reads one value: for tests and simulations that do not
/// exercise the thermal path (`dsmild` itself never invents a temperature).
pub struct FixedThermal(pub i32);

impl ThermalSensor for FixedThermal {
    fn read_celsius(&mut self) -> Result<i32> {
        Ok(self.0)
    }
}

/// The hardware handed to [`crate::run`].
pub struct Hardware {
    /// Thermal sensor; `None` when the machine has none that works (the
    /// temperature is then reported as unavailable).
    pub thermal: Option<Box<dyn ThermalSensor>>,
    /// Token reads and writes through firmware; `None` when the machine has no
    /// SMI path (every device then stays offline).
    pub firmware: Option<Box<dyn TokenIo + Send>>,
    /// The devices' register blocks, captured by read sessions; `None` when the
    /// memory window is not mapped (reads then carry the token value and record only).
    pub device_memory: Option<Box<dyn DeviceMemory + Send>>,
    /// The DSMIL 360 MiB MMIO window (the `mmio` file); `None` when no base is
    /// configured.
    pub mmio: Option<Box<dyn MmioAccess + Send>>,
    /// The clock sessions age by: the system monotonic clock, which the `time`
    /// scheme's housekeeping deadlines are set against.
    pub clock: Box<dyn Clock + Send>,
}

impl Hardware {
    /// Hardware with only a fixed-reading thermal sensor (no SMI, no PCI function):
    /// the scheme answers, every device is offline.
    pub fn minimal(celsius: i32) -> Self {
        Self {
            thermal: Some(Box::new(FixedThermal(celsius))),
            firmware: None,
            device_memory: None,
            mmio: None,
            clock: Box::new(RedoxClock),
        }
    }

    /// Hardware with a thermal sensor (if any works) and a firmware token path, on
    /// the system clock.
    pub fn with_firmware(
        thermal: Option<Box<dyn ThermalSensor>>,
        firmware: Box<dyn TokenIo + Send>,
    ) -> Self {
        Self {
            thermal,
            firmware: Some(firmware),
            device_memory: None,
            mmio: None,
            clock: Box::new(RedoxClock),
        }
    }

    /// Adds the devices' register blocks.
    pub fn device_memory(mut self, memory: Box<dyn DeviceMemory + Send>) -> Self {
        self.device_memory = Some(memory);
        self
    }

    /// Adds the MMIO window.
    pub fn mmio(mut self, window: Box<dyn MmioAccess + Send>) -> Self {
        self.mmio = Some(window);
        self
    }

    /// Replaces the clock (tests that drive the scheme without a kernel).
    pub fn clock(mut self, clock: Box<dyn Clock + Send>) -> Self {
        self.clock = clock;
        self
    }
}
