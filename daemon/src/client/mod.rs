//! The client side of scheme `dsmil`: what other drivers and tools link.
//!
//! * [`Dsmil`] — typed operations (`scan`, `read`, `status`, `thermal`,
//!   `version`, `events`, `write_token`) over a [`Transport`]: [`StdFs`] (std
//!   file I/O: `/scheme/dsmil` on Redox, a `redox-host mount` directory on
//!   Linux) or [`SchemeCalls`] (`libredox` calls).
//! * [`fast::ControlChannel`] — the `call` fast path (one round trip per op).
//! * [`ctl`] — the commands of `dsmilctl`, as functions.
//!
//! Programs that use only [`Dsmil`] with [`StdFs`] never reference a relibc
//! symbol, which is why `dsmilctl` links on Linux without the mocked kernel.
//!
//! ```no_run
//! use dsmil::client::Dsmil;
//!
//! let dsmil = Dsmil::open()?;
//! let status = dsmil.status()?;
//! println!("{} °C, {} safe devices", status.current_temp_celsius, status.safe_device_count);
//! # Ok::<(), dsmil::client::ClientError>(())
//! ```

pub mod ctl;
mod dsmil;
mod error;
mod events;
pub mod fast;
mod scan_stream;
mod scheme_calls;
mod std_fs;
mod transport;

pub use dsmil::{DEFAULT_ROOT, Dsmil};
pub use error::{ClientError, Result, errno_name};
pub use events::Events;
pub use scan_stream::{decode_read_stream, decode_scan_stream};
pub use scheme_calls::{SchemeCalls, SchemeFd};
pub use std_fs::StdFs;
pub use transport::{OpenMode, Transport};

/// PCI vendor id of the DSMIL controller function (Dell), as `pcid-spawner`
/// matches it in `daemon/config.toml` and the simulated controller reports it.
pub const PCI_VENDOR_ID: u16 = 0x1028;
/// PCI device id of the DSMIL controller function.
pub const PCI_DEVICE_ID: u16 = 0xD5A1;
