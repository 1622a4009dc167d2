//! Unit files as base's init reads them (base `init/src/unit.rs`, `service.rs`):
//! `*.service` is TOML with `[unit]` and `[service]`, `*.target` `[unit]` alone,
//! both `deny_unknown_fields` — an unknown key makes the unit fail to load, and
//! init skips it with an error.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

/// `[unit]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnitInfo {
    /// What it is, for logs.
    pub description: Option<String>,
    /// true adds a weak dependency on the runtime target.
    #[serde(default = "default_true")]
    pub default_dependencies: bool,
    /// Units that must be started first if they are queued.
    #[serde(default)]
    pub requires_weak: Vec<String>,
    /// Architectures it runs on (`std::env::consts::ARCH`).
    pub condition_architecture: Option<Vec<String>>,
    /// Boards it runs on (init's compile-time `BOARD`).
    pub condition_board: Option<Vec<String>>,
}

fn default_true() -> bool {
    true
}

/// `type` of a service.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ServiceType {
    /// Wait for one byte on `INIT_NOTIFY`.
    #[default]
    Notify,
    /// Wait for the scheme's root capability on `INIT_NOTIFY`, then register it.
    Scheme(String),
    /// Wait for the process to exit.
    Oneshot,
    /// Spawn and move on.
    OneshotAsync,
}

/// `[service]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// The program (through `PATH` unless absolute).
    pub cmd: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment it gets on top of the base environment.
    #[serde(default)]
    pub envs: BTreeMap<String, String>,
    /// Variables copied from init's own environment.
    #[serde(default)]
    pub inherit_envs: BTreeSet<String>,
    /// How init waits for it.
    #[serde(rename = "type", default)]
    pub type_: ServiceType,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerializedService {
    unit: UnitInfo,
    service: Service,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SerializedTarget {
    unit: UnitInfo,
}

/// What a unit is.
#[derive(Clone, Debug)]
pub enum UnitKind {
    /// A service.
    Service(Service),
    /// A target: a name for its `requires_weak` set.
    Target,
}

/// A loaded unit.
#[derive(Clone, Debug)]
pub struct Unit {
    /// Its file name.
    pub id: String,
    /// `[unit]`.
    pub info: UnitInfo,
    /// Service or target.
    pub kind: UnitKind,
}

impl Unit {
    /// Parses unit `id` from its file's text. Legacy scripts (no extension) and
    /// templates (`name@inst`) are base features these units do not use; the
    /// simulated init refuses them rather than guess.
    pub fn parse(id: &str, text: &str) -> Result<Unit, String> {
        if id.contains('@') {
            return Err("templates are not simulated".into());
        }
        let (info, kind) = match id.rsplit_once('.').map(|(_, ext)| ext) {
            Some("service") => {
                let s: SerializedService = toml::from_str(text).map_err(|e| e.to_string())?;
                (s.unit, UnitKind::Service(s.service))
            }
            Some("target") => {
                let t: SerializedTarget = toml::from_str(text).map_err(|e| e.to_string())?;
                (t.unit, UnitKind::Target)
            }
            None => return Err("legacy scripts are not simulated".into()),
            Some(_) => return Err("invalid file extension".into()),
        };
        Ok(Unit {
            id: id.to_string(),
            info,
            kind,
        })
    }

    /// `conditions_met`: the architecture is the simulated machine's (the host's);
    /// the simulated init was built without `BOARD`.
    pub fn conditions_met(&self) -> bool {
        if let Some(archs) = &self.info.condition_architecture
            && !archs.iter().any(|a| a == std::env::consts::ARCH)
        {
            return false;
        }
        self.info.condition_board.is_none()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_shapes_parse_and_unknown_keys_fail() {
        let u = Unit::parse(
            "00_nulld.service",
            "[unit]\ndescription = \"/dev/null\"\ndefault_dependencies = false\n\
             [service]\ncmd = \"nulld\"\ntype = { scheme = \"null\" }\n",
        )
        .unwrap();
        assert!(
            matches!(&u.kind, UnitKind::Service(s) if s.type_ == ServiceType::Scheme("null".into()))
        );
        assert!(!u.info.default_dependencies);
        let t = Unit::parse(
            "00_base.target",
            "[unit]\nrequires_weak = [\"a.service\"]\n",
        )
        .unwrap();
        assert_eq!(t.info.requires_weak, ["a.service"]);
        for bad in [
            "[unit]\nrequires = [\"x\"]\n[service]\ncmd = \"a\"\n",
            "[unit]\nafter = [\"x\"]\n[service]\ncmd = \"a\"\n",
            "[unit]\n[service]\ncmd = \"a\"\nrestart = true\n",
            "[unit]\n[service]\ncmd = \"a\"\n[install]\n",
        ] {
            assert!(Unit::parse("x.service", bad).is_err(), "{bad}");
        }
        assert!(Unit::parse("x", "nowait y").is_err());
    }
}
