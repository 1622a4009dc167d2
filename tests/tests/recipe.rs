//! recipe.toml, the pcid-spawner config and the init units against base's
//! conventions (redox-real.md §4.5, §5; base `Makefile` install-base, init's
//! `unit.rs`/`service.rs`, pcid-spawner's config): every file lands where base
//! looks for it, in a format base accepts, and names things that exist.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use redox_host::init::rootfs::{Install, Source, recipe_installs};
use toml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn parse_text(what: &str, text: &str) -> toml::Table {
    text.parse::<toml::Table>()
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn parse(rel: &str) -> toml::Table {
    parse_text(rel, &read(rel))
}

/// Binaries a package declares, and its features.
fn package(dir: &str) -> (String, BTreeSet<String>, BTreeSet<String>) {
    let manifest = parse(&format!("{dir}/Cargo.toml"));
    let name = manifest["package"]["name"]
        .as_str()
        .expect("package name")
        .to_string();
    let bins = manifest
        .get("bin")
        .and_then(Value::as_array)
        .map(|bins| {
            bins.iter()
                .filter_map(|b| b.get("name").and_then(Value::as_str))
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    let features = manifest
        .get("features")
        .and_then(Value::as_table)
        .map(|f| f.keys().cloned().collect())
        .unwrap_or_default();
    (name, bins, features)
}

fn script() -> String {
    parse("recipe.toml")["build"]["script"]
        .as_str()
        .expect("[build] script")
        .to_string()
}

/// Values following `flag` in the script's words (`-p x`, `--bin y`, `--features z`).
fn args_of(script: &str, flag: &str) -> Vec<String> {
    let words: Vec<&str> = script.split_whitespace().collect();
    words
        .windows(2)
        .filter(|w| w[0] == flag)
        .map(|w| w[1].to_string())
        .collect()
}

/// What lands where: installed path (under the stage) → what is copied there
/// (`bin:<name>` for a built binary, else a repository path), parsed by the
/// same reader the simulated init stages its root filesystem with.
fn installs() -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let installs = recipe_installs(&read("recipe.toml")).unwrap_or_else(|e| panic!("{e}"));
    for Install { path, source } in installs {
        let what = match source {
            Source::Program(bin) => format!("bin:{bin}"),
            Source::Repository(rel) => rel,
        };
        assert!(
            out.insert(path.clone(), what).is_none(),
            "{path} installed twice"
        );
    }
    out
}

#[test]
fn recipe_is_cookbook_shaped_and_its_source_exists() {
    let recipe = parse("recipe.toml");
    let path = recipe["source"]["path"].as_str().expect("[source] path");
    assert!(repo().join(path).join("Cargo.toml").is_file());
    assert_eq!(recipe["build"]["template"].as_str(), Some("custom"));
    assert!(recipe["build"]["dependencies"].is_array());
}

#[test]
fn recipe_builds_existing_packages_bins_and_features() {
    let script = script();
    let packages = [package("daemon"), package("iommu")];
    let names: Vec<&str> = packages.iter().map(|p| p.0.as_str()).collect();
    for p in args_of(&script, "-p") {
        assert!(
            names.contains(&p.as_str()),
            "recipe builds unknown package {p}"
        );
    }
    let all_bins: BTreeSet<String> = packages.iter().flat_map(|p| p.1.clone()).collect();
    let built: BTreeSet<String> = args_of(&script, "--bin").into_iter().collect();
    for bin in &built {
        assert!(all_bins.contains(bin), "recipe builds unknown bin {bin}");
    }
    for (_, what) in installs() {
        if let Some(bin) = what.strip_prefix("bin:") {
            assert!(
                built.contains(bin),
                "recipe installs {bin} without building it"
            );
        }
    }
    for feature in args_of(&script, "--features") {
        let (pkg, feat) = feature.split_once('/').expect("package/feature");
        let p = packages
            .iter()
            .find(|p| p.0 == pkg)
            .expect("feature's package");
        assert!(p.2.contains(feat), "{pkg} has no feature {feat}");
    }
}

#[test]
fn everything_lands_where_base_looks_for_it() {
    let installs = installs();
    // Base Makefile: drivers in /usr/lib/drivers, daemons and tools in /usr/bin.
    assert_eq!(installs["/usr/lib/drivers/dsmild"], "bin:dsmild");
    assert_eq!(installs["/usr/bin/iommud"], "bin:iommud");
    assert_eq!(installs["/usr/bin/dsmilctl"], "bin:dsmilctl");
    // A driver's config.toml becomes /usr/lib/pcid.d/<driver>.toml.
    assert_eq!(
        installs["/usr/lib/pcid.d/dsmild.toml"],
        "daemon/config.toml"
    );
    for (dst, what) in &installs {
        if !what.starts_with("bin:") {
            assert!(
                repo().join(what).is_file(),
                "recipe installs missing {what}"
            );
        }
        let allowed = [
            "/usr/lib/drivers/",
            "/usr/bin/",
            "/usr/lib/pcid.d/",
            "/usr/lib/init.d/",
            "/etc/",
        ];
        assert!(
            allowed.iter().any(|p| dst.starts_with(p)),
            "{dst}: not a base location"
        );
        assert!(
            !dst.starts_with("/etc/pcid.d/") && !dst.starts_with("/etc/init.d/"),
            "{dst}: /etc is the administrator's override directory"
        );
        if dst.starts_with("/usr/lib/pcid.d/") {
            assert!(
                dst.ends_with(".toml"),
                "{dst}: pcid-spawner configs are TOML"
            );
        }
        if dst.starts_with("/usr/lib/init.d/") {
            assert!(
                dst.ends_with(".service") || dst.ends_with(".target"),
                "{dst}: a unit, not a legacy script"
            );
            assert_eq!(
                Path::new(dst).file_name(),
                Path::new(what).file_name(),
                "unit keeps its name"
            );
        }
    }
}

/// Keys of base init's `UnitInfo` and `Service` (both `deny_unknown_fields`).
const UNIT_KEYS: [&str; 5] = [
    "description",
    "default_dependencies",
    "requires_weak",
    "condition_architecture",
    "condition_board",
];
const SERVICE_KEYS: [&str; 5] = ["cmd", "args", "envs", "inherit_envs", "type"];

fn units() -> BTreeMap<String, toml::Table> {
    installs()
        .into_iter()
        .filter(|(dst, _)| dst.starts_with("/usr/lib/init.d/"))
        .map(|(dst, src)| {
            let name = dst.trim_start_matches("/usr/lib/init.d/").to_string();
            (name, parse(&src))
        })
        .collect()
}

#[test]
fn units_use_only_keys_base_init_accepts() {
    let installs = installs();
    let units = units();
    assert!(units.len() >= 2, "iommud and the dsmild service");
    for (name, unit) in &units {
        let tables: BTreeSet<&str> = unit.keys().map(String::as_str).collect();
        assert_eq!(
            tables,
            BTreeSet::from(["unit", "service"]),
            "{name}: tables"
        );
        for key in unit["unit"].as_table().expect("[unit]").keys() {
            assert!(
                UNIT_KEYS.contains(&key.as_str()),
                "{name}: [unit] {key} would fail to load"
            );
        }
        let service = unit["service"].as_table().expect("[service]");
        for key in service.keys() {
            assert!(
                SERVICE_KEYS.contains(&key.as_str()),
                "{name}: [service] {key} would fail to load"
            );
        }
        match &service["type"] {
            Value::String(t) => assert!(
                ["notify", "oneshot", "oneshot_async"].contains(&t.as_str()),
                "{name}: type {t}"
            ),
            Value::Table(t) => {
                assert_eq!(
                    t.keys().collect::<Vec<_>>(),
                    ["scheme"],
                    "{name}: type table"
                );
                assert!(t["scheme"].is_str());
            }
            other => panic!("{name}: type {other}"),
        }
        // init looks a relative cmd up on PATH=/usr/bin; an absolute one is used as is.
        let cmd = service["cmd"].as_str().expect("cmd");
        let path = if cmd.starts_with('/') {
            cmd.to_string()
        } else {
            format!("/usr/bin/{cmd}")
        };
        assert!(
            installs.contains_key(&path),
            "{name}: {path} is not installed"
        );
    }
}

#[test]
fn iommud_is_a_scheme_service_that_runs_before_pcid_spawner() {
    let units = units();
    let (name, unit) = units
        .iter()
        .find(|(_, u)| u["service"]["cmd"].as_str() == Some("iommud"))
        .expect("an iommud unit");
    let scheme = unit["service"]["type"]["scheme"].as_str();
    assert_eq!(scheme, Some(iommu::Config::default().scheme_name.as_str()));
    // Sorts before base's 00_base.target, the first unit that queues
    // 00_pcid-spawner.service (byte order, as init's BTreeMap of file names).
    assert!(name.as_str() < "00_base.target", "{name}");
    assert!(name.as_str() < "00_pcid-spawner.service", "{name}");
}

#[test]
fn dsmild_has_a_notify_service_after_pcid_spawner() {
    let units = units();
    let (_, unit) = units
        .iter()
        .find(|(_, u)| u["service"]["cmd"].as_str() == Some("/usr/lib/drivers/dsmild"))
        .expect("a dsmild service");
    assert_eq!(unit["service"]["type"].as_str(), Some("notify"));
    let deps: Vec<&str> = unit["unit"]["requires_weak"]
        .as_array()
        .expect("requires_weak")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(deps.contains(&"00_pcid-spawner.service"));
}

/// pcid-spawner's `[[drivers]]` fields (base `pcid-spawner` config).
const DRIVER_KEYS: [&str; 9] = [
    "name",
    "class",
    "subclass",
    "interface",
    "vendor",
    "device",
    "ids",
    "device_id_range",
    "command",
];

#[test]
fn pcid_config_matches_the_controller_and_starts_the_installed_driver() {
    let installs = installs();
    let config = parse("daemon/config.toml");
    assert_eq!(config.keys().collect::<Vec<_>>(), ["drivers"]);
    let drivers = config["drivers"].as_array().expect("[[drivers]]");
    assert_eq!(drivers.len(), 1);
    let d = drivers[0].as_table().expect("table");
    for key in d.keys() {
        assert!(DRIVER_KEYS.contains(&key.as_str()), "[[drivers]] {key}");
    }
    assert_eq!(
        d["vendor"].as_integer(),
        Some(i64::from(dsmil::client::PCI_VENDOR_ID))
    );
    assert_eq!(
        d["device"].as_integer(),
        Some(i64::from(dsmil::client::PCI_DEVICE_ID))
    );
    assert!(d["name"].as_str().is_some_and(|n| !n.is_empty()));
    // A relative command resolves to /usr/lib/drivers/<cmd>.
    let command = d["command"].as_array().expect("command");
    let cmd = command[0].as_str().expect("command[0]");
    assert!(!cmd.starts_with('/'));
    assert!(installs.contains_key(&format!("/usr/lib/drivers/{cmd}")));
}

#[test]
fn the_installed_dsmild_settings_parse() {
    let installs = installs();
    let src = &installs["/etc/dsmild.toml"];
    let mut config = dsmil::Config::default();
    dsmil::config_file::apply(&mut config, &read(src)).expect("valid");
    assert_eq!(
        config,
        dsmil::Config::default(),
        "everything commented out: the defaults"
    );
}
