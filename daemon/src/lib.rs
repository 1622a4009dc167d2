//! `dsmil`: the DSMIL driver for Redox OS.
//!
//! The library holds the wire types shared with clients ([`wire`]), the scheme
//! ([`scheme`]), and the daemon loop ([`run`]); the `dsmild` binary is only the
//! startup script that wires real hardware into [`run`].

#![warn(missing_docs)]

pub mod client;
pub mod config;
pub mod config_file;
pub mod controller;
pub mod daemon;
pub mod device;
pub mod hardware;
pub mod machine;
pub mod platform;
pub mod scheme;
pub mod startup;
pub mod wire;

pub use config::Config;
pub use daemon::{DaemonError, run, serve};
pub use hardware::Hardware;
