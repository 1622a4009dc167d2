//! Starting a driver daemon as base does: what it was started with
//! ([`Startup`]: arguments, `INIT_NOTIFY`, `PCID_CLIENT_CHANNEL`), the readiness
//! byte or scheme capability for init and pcid-spawner ([`InitNotify`]), and
//! `redox-log` logging to stderr and `/scheme/logging` ([`setup_logging`]), and
//! for the serving loop a [`DeadlineTimer`] and the [`DaemonError`] it stops with.
//!
//! The code lives in `iommu::startup` (iommud needs it too, and `iommu` is below
//! this crate in the dependency order); this module is where drivers find it.
//!
//! A driver under pcid-spawner, in order (base `pcid_interface::pci_daemon`):
//!
//! ```text
//! let startup = Startup::from_process();
//! setup_logging("misc", "pci", "dsmild");
//! let notify = InitNotify::from_startup(&startup, "dsmild");
//! let pci = PciFunction::from_channel_fd(startup.fd_var(PCID_CLIENT_CHANNEL)?)?;
//! // … set up, register the scheme …
//! notify.ready()?;
//! ```

pub use iommu::startup::{
    DaemonError, DeadlineTimer, INIT_NOTIFY, InitNotify, LOG_ENV_PATH, Startup, level_from_env,
    setup_logging, sys,
};
