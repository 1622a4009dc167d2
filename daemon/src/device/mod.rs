//! The device model: life cycle, group dependencies, the table of 108
//! devices with quarantine and the thermal guard, and the scan/read
//! sessions that cut results into 256-byte chunks.
//!
//! Plain data structures with no I/O: the scheme owns them and the
//! platform layer feeds them.

mod chunk_cursor;
mod groups;
mod lifecycle;
mod read_session;
mod scan_session;
mod session_ids;
mod table;
mod thermal;

pub use groups::dependencies as group_dependencies;
pub use lifecycle::LifecycleState;
pub use read_session::{MAX_DEVICE_DATA, ReadSession};
pub use scan_session::ScanSession;
pub use session_ids::SessionIds;
pub use table::{BringUp, DeviceTable, StateChange};
pub use thermal::{
    DEFAULT_THERMAL_HYSTERESIS_CELSIUS, DEFAULT_THERMAL_LIMIT_CELSIUS,
    MAX_THERMAL_HYSTERESIS_CELSIUS, MAX_THERMAL_LIMIT_CELSIUS, MIN_THERMAL_LIMIT_CELSIUS,
    ThermalCrossing, ThermalGuard,
};

#[cfg(test)]
mod session_tests;
