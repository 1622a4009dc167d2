//! How a Redox daemon starts under base's `init` and `pcid-spawner`: what it was
//! started with ([`Startup`]), telling the starter it is ready ([`InitNotify`]), and
//! logging as upstream drivers do ([`setup_logging`]).
//!
//! This is base's `daemon` crate and `common::setup_logging` rebuilt on this
//! workspace's crates, **not** crates.io `redox-daemon` 0.1.3: that one forks, and
//! its parent exits with the child's readiness byte instead of writing it to the
//! `INIT_NOTIFY` pipe, so `notify` services and pcid-spawner would wait for ever.
//!
//! It lives in `iommu` because `iommud` needs it and `iommu` sits below
//! `driver-sys` in the dependency order (driver-sys → iommu); drivers use it as
//! `driver_sys::daemon`, which re-exports this module.

mod environment;
mod logging;
mod notify;
mod serving;

pub use environment::{INIT_NOTIFY, Startup};
pub use logging::{LOG_ENV_PATH, level_from_env, setup_logging};
pub use notify::InitNotify;
pub use serving::{DaemonError, DeadlineTimer, sys};
