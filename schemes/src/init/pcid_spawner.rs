//! base's pcid-spawner (`drivers/pcid-spawner/src/main.rs`; redox-real.md §4.4,
//! §4.5), run by the simulated init as the program `pcid-spawner`:
//! * the configs of `/usr/lib/pcid.d` and `/etc/pcid.d` (a later directory's file
//!   replaces one of the same name), in name order, joined into one TOML document;
//! * for every function of `/scheme/pci`: open its channel (pcid enables bus
//!   mastering right there, matched or not), RequestConfig; `ENOLCK` (a driver
//!   holds it) skips the function;
//! * the first `[[drivers]]` entry whose every present field matches wins:
//!   EnableDevice, then the driver runs with the channel in `PCID_CLIENT_CHANNEL`
//!   and `INIT_NOTIFY`, and pcid-spawner waits for its readiness byte before the
//!   next function — one driver at a time; then it closes its own channel copy;
//! * a relative `command[0]` is `/usr/lib/drivers/<cmd>`.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Weak};

use driver_sys::pci::{PCID_CLIENT_CHANNEL, PciFunction};
use driver_sys::quirks::PciIdentity;
use serde::Deserialize;

use super::spawn::Readiness;
use super::{BootEvent, Program, Shared};
use crate::kernel::process::with_current;

#[derive(Deserialize, Default)]
struct Config {
    #[serde(default)]
    drivers: Vec<DriverConfig>,
}

#[derive(Deserialize)]
struct DriverConfig {
    #[allow(dead_code)]
    name: Option<String>,
    class: Option<u8>,
    subclass: Option<u8>,
    interface: Option<u8>,
    ids: Option<BTreeMap<String, Vec<u16>>>,
    vendor: Option<u16>,
    device: Option<u16>,
    device_id_range: Option<Range<u16>>,
    command: Vec<String>,
}

impl DriverConfig {
    fn matches(&self, id: &PciIdentity) -> bool {
        let class = (id.class >> 16) as u8;
        let subclass = (id.class >> 8) as u8;
        let interface = id.class as u8;
        let ids_match = match &self.ids {
            Some(ids) => ids.iter().any(|(vendor, devices)| {
                let hex = vendor.trim_start_matches("0x");
                u16::from_str_radix(hex, 16).ok() == Some(id.vendor) && devices.contains(&id.device)
            }),
            None => {
                self.vendor.is_none_or(|v| v == id.vendor)
                    && self.device.is_none_or(|d| d == id.device)
            }
        };
        ids_match
            && self.class.is_none_or(|c| c == class)
            && self.subclass.is_none_or(|c| c == subclass)
            && self.interface.is_none_or(|c| c == interface)
            && self
                .device_id_range
                .as_ref()
                .is_none_or(|r| r.contains(&id.device))
    }
}

fn run(shared: &Arc<Shared>) -> Result<(), String> {
    let files = shared
        .rootfs
        .config_for_dirs(&["/usr/lib/pcid.d", "/etc/pcid.d"]);
    let joined: String = files
        .iter()
        .filter_map(|f| shared.rootfs.text(f))
        .collect::<Vec<_>>()
        .join("\n");
    let config: Config = toml::from_str(&joined).map_err(|e| format!("pcid-spawner: {e}"))?;
    for addr in shared.kernel.pci().addresses() {
        let function = format!("{addr}");
        let dir = format!("/scheme/pci/{}", addr.scheme_name());
        let mut pci = match PciFunction::connect_by_path(&dir) {
            Ok(pci) => pci,
            Err(e) => {
                shared.event(BootEvent::Error(format!(
                    "pcid-spawner: {function}: {e}; skipped"
                )));
                continue;
            }
        };
        let id = pci.identity();
        let Some(driver) = config.drivers.iter().find(|d| d.matches(&id)) else {
            continue;
        };
        let Some(cmd) = driver.command.first() else {
            continue;
        };
        if let Err(e) = pci.enable_device() {
            shared.event(BootEvent::Error(format!("pcid-spawner: {function}: {e}")));
            continue;
        }
        let path = if cmd.starts_with('/') {
            cmd.clone()
        } else {
            format!("/usr/lib/drivers/{cmd}")
        };
        let channel = with_current(|ctx| ctx.process.get(pci.channel_fd()))
            .ok_or("pcid-spawner: not in a process")?
            .map_err(|e| format!("pcid-spawner: {e}"))?;
        shared.event(BootEvent::DriverStarted {
            function: function.clone(),
            path: path.clone(),
        });
        let started = shared.spawn(
            cmd,
            &path,
            driver.command[1..].to_vec(),
            shared.base_env(),
            Some((PCID_CLIENT_CHANNEL, channel)),
        );
        match started {
            Ok(started) => match shared.wait_ready(&started, false) {
                Readiness::Byte | Readiness::Capability(_) => {
                    shared.event(BootEvent::DriverReady { function })
                }
                Readiness::Eof => shared.event(BootEvent::DriverNotReady {
                    function,
                    why: "exited without notifying readiness".into(),
                }),
                Readiness::TimedOut => shared.event(BootEvent::DriverNotReady {
                    function,
                    why: "no readiness byte before the test deadline".into(),
                }),
            },
            Err(e) => shared.event(BootEvent::DriverNotReady { function, why: e }),
        }
        // pcid-spawner's own copy of the channel closes here.
        drop(pci);
    }
    Ok(())
}

/// The `pcid-spawner` program of the simulated init.
pub(super) fn program(shared: Weak<Shared>) -> Program {
    Arc::new(move |_startup| match shared.upgrade() {
        Some(shared) => run(&shared),
        None => Err("pcid-spawner: the machine is gone".into()),
    })
}
