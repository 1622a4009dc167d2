//! dsmild's startup, as `main.rs` runs it on Redox and the simulated machine's
//! init runs it on Linux: only the [`Platform`] (the port and memory access
//! behind the firmware) differs.
//!
//! 1. Logging (`redox-log`: stderr and `/scheme/logging/misc/dsmil/dsmild.log`).
//! 2. `INIT_NOTIFY`: dsmild is a `notify` daemon, under pcid-spawner and as a
//!    service alike.
//! 3. The configuration: `--config <path>` or `/etc/dsmild.toml`.
//! 4. Started by pcid-spawner (`PCID_CLIENT_CHANNEL`): bind the DSMIL PCI
//!    controller. Started as the service on a machine whose PCI driver instance
//!    already serves `dsmil`: report ready and exit, so the service is harmless
//!    there.
//! 5. The SMM temperature sensors (probed once), the token path (legacy ports or
//!    the calling interface with the DMI token table), then [`crate::serve`].

use driver_sys::daemon::{InitNotify, Startup, setup_logging};
use driver_sys::pci::{PCID_CLIENT_CHANNEL, PciFunction};
use libredox::Fd;
use libredox::errno::ENOENT;
use libredox::flag::{O_CLOEXEC, O_DIRECTORY, O_RDONLY};

use crate::config::Config;
use crate::config_file::{self, DEFAULT_CONFIG_PATH};
use crate::controller::{ControllerConfig, DsmilController};
use crate::hardware::{Hardware, ThermalSensor};
use crate::platform::{
    CallingInterface, CallingInterfaceConfig, LegacySmi, MmioAccess, PortIo, RedoxClock, SmiBuffer,
    SmiPolicy, SmiTrigger, SmmCall, SmmThermal, TokenIo,
};

/// The machine access dsmild's firmware paths need.
pub trait Platform {
    /// Port I/O, SMI trigger and SMM calls (on Redox the x86 instructions after
    /// the kernel's I/O grant).
    type Ports: PortIo + SmiTrigger + SmmCall + Send + 'static;
    /// The calling interface's command buffer, below 4 GiB.
    type Buffer: SmiBuffer + Send + 'static;
    /// A port accessor (each firmware path takes its own).
    fn ports(&self) -> syscall::Result<Self::Ports>;
    /// A command buffer for the calling interface.
    fn smi_buffer(&self) -> syscall::Result<Self::Buffer>;
    /// The 360 MiB MMIO window at physical `base`, at most `resident` chunks
    /// mapped at once.
    fn mmio(&self, base: u64, resident: usize) -> syscall::Result<Box<dyn MmioAccess + Send>>;
}

/// What the command line asks for.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// `--config <path>`.
    pub config_path: Option<String>,
    /// `--smi-command-code <code>` (overrides the config file).
    pub smi_command_code: Option<u8>,
}

/// Usage text for a bad command line.
pub const USAGE: &str = "usage: dsmild [--config <path>] [--smi-command-code <code>]";

fn parse_code(text: &str) -> Option<u8> {
    match text.strip_prefix("0x") {
        Some(hex) => u8::from_str_radix(hex, 16).ok(),
        None => text.parse().ok(),
    }
}

/// Parses dsmild's arguments.
pub fn parse_args(args: &[String]) -> Result<Options, String> {
    let mut options = Options::default();
    let mut words = args.iter();
    while let Some(flag) = words.next() {
        let value = words.next().ok_or_else(|| USAGE.to_string())?;
        match flag.as_str() {
            "--config" => options.config_path = Some(value.clone()),
            "--smi-command-code" => {
                let code = parse_code(value).ok_or(format!("bad SMI command code {value:?}"))?;
                options.smi_command_code = Some(code);
            }
            _ => return Err(USAGE.to_string()),
        }
    }
    Ok(options)
}

/// Whether scheme `name` is already served (the PCI driver instance runs).
fn scheme_served(name: &str) -> bool {
    match Fd::open(
        &format!("/scheme/{name}"),
        O_DIRECTORY | O_RDONLY | O_CLOEXEC,
        0,
    ) {
        Ok(_) => true,
        Err(e) => e.errno() != ENOENT,
    }
}

fn token_path<P: Platform>(
    config: &Config,
    platform: &P,
) -> syscall::Result<Box<dyn TokenIo + Send>> {
    let Some(code) = config.smi_command_code else {
        let smi = LegacySmi::new(platform.ports()?, RedoxClock, SmiPolicy::default());
        return Ok(Box::new(smi));
    };
    if config.dmi_tokens.is_empty() {
        log::warn!(
            "dsmild: calling interface without a DMI token table ([smi] tokens): no token is reachable"
        );
    }
    let ci = CallingInterfaceConfig {
        command_port: config.smi_command_port,
        ..CallingInterfaceConfig::new(code)
    };
    let smi = CallingInterface::new(
        platform.smi_buffer()?,
        platform.ports()?,
        ci,
        config.dmi_tokens.clone(),
    )?;
    Ok(Box::new(smi))
}

fn thermal<P: Platform>(config: &Config, platform: &P) -> Option<Box<dyn ThermalSensor>> {
    let probed = platform.ports().ok().and_then(SmmThermal::probe);
    match probed {
        Some(sensors) => {
            log::info!("dsmild: SMM temperature sensors {:?}", sensors.sensors());
            Some(Box::new(sensors))
        }
        None => {
            // Said once: every later report just says "unavailable".
            let reads = if config.reads_without_thermal_sensor {
                "allowed"
            } else {
                "refused"
            };
            log::warn!(
                "dsmild: no working SMM temperature sensor: temperature unavailable, \
                 device reads {reads} (thermal.reads_without_sensor)"
            );
            None
        }
    }
}

/// Starts dsmild from `startup` on `platform` and serves until shut down.
pub fn start<P: Platform>(startup: &Startup, platform: &P) -> Result<(), String> {
    setup_logging("misc", "dsmil", "dsmild");
    let notify = InitNotify::from_startup(startup, "dsmild");
    let options = parse_args(&startup.args)?;
    let mut config = Config::default();
    let path = options
        .config_path
        .as_deref()
        .unwrap_or(DEFAULT_CONFIG_PATH);
    config_file::load(&mut config, path)?;
    if let Some(code) = options.smi_command_code {
        config.smi_command_code = Some(code);
    }

    // Under pcid-spawner: the channel it opened for us (never reopened by path:
    // that would be ENOLCK while pcid-spawner still holds it).
    let controller = startup.fd_var(PCID_CLIENT_CHANNEL).and_then(|fd| {
        match PciFunction::from_channel_fd(fd)
            .map_err(|e| e.to_string())
            .and_then(|f| {
                DsmilController::bind(f, &ControllerConfig::default()).map_err(|e| e.to_string())
            }) {
            Ok(controller) => Some(controller),
            Err(e) => {
                log::warn!("dsmild: DSMIL controller unusable ({e}); SMI path only");
                None
            }
        }
    });
    if controller.is_none() && scheme_served(&config.scheme_name) {
        log::info!(
            "dsmild: /scheme/{} is served already (the PCI driver); exiting",
            config.scheme_name
        );
        return notify
            .ready()
            .map_err(|e| format!("reporting readiness: {e}"));
    }

    let thermal = thermal(&config, platform);
    let mut hardware = match token_path(&config, platform) {
        Ok(firmware) => Hardware::with_firmware(thermal, firmware),
        Err(e) => {
            log::warn!("dsmild: no firmware path ({e}); devices stay offline");
            Hardware {
                thermal,
                firmware: None,
                device_memory: None,
                mmio: None,
                clock: Box::new(RedoxClock),
            }
        }
    };
    if let Some(controller) = controller {
        hardware = hardware.device_memory(Box::new(controller));
    }
    if let Some(base) = config.mmio_base {
        match platform.mmio(base, config.mmio_resident_chunks) {
            Ok(window) => hardware = hardware.mmio(window),
            Err(e) => log::warn!("dsmild: MMIO window at {base:#x} unusable ({e}); mmio is ENODEV"),
        }
    }
    crate::serve(config, hardware, notify).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    #[test]
    fn arguments() {
        assert_eq!(parse_args(&[]), Ok(Options::default()));
        let o = parse_args(&args(&[
            "--config",
            "/x.toml",
            "--smi-command-code",
            "0x7d",
        ]))
        .unwrap();
        assert_eq!(
            (o.config_path.as_deref(), o.smi_command_code),
            (Some("/x.toml"), Some(0x7D))
        );
        assert!(parse_args(&args(&["--config"])).is_err());
        assert!(parse_args(&args(&["--smi-command-code", "999"])).is_err());
        assert!(parse_args(&args(&["-v", "x"])).is_err());
    }
}
