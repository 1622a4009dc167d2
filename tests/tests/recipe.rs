//! recipe.toml, daemon/config.toml and the iommud init entry agree with the
//! workspace: every binary, package, feature and file they name exists, and the
//! PCI match is the controller's ids.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use toml::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn parse(rel: &str) -> Value {
    let text = std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    text.parse::<toml::Table>()
        .map(Value::Table)
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
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
    let recipe = parse("recipe.toml");
    recipe["build"]["script"]
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
    let installed: Vec<&str> = script
        .lines()
        .find_map(|l| l.trim().strip_prefix("for bin in "))
        .expect("install loop")
        .split_whitespace()
        .collect();
    for wanted in ["dsmild", "iommud", "dsmilctl"] {
        assert!(built.contains(wanted), "recipe does not build {wanted}");
        assert!(
            installed.contains(&wanted),
            "recipe does not install {wanted}"
        );
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
fn recipe_installs_files_that_exist() {
    let script = script();
    let mut sources = 0;
    for word in script.split_whitespace() {
        let word = word.trim_matches('"');
        if let Some(rel) = word.strip_prefix("${COOKBOOK_SOURCE}/")
            && rel != "Cargo.toml"
        {
            assert!(repo().join(rel).is_file(), "recipe installs missing {rel}");
            sources += 1;
        }
    }
    assert!(sources >= 2, "config and init entry are installed");
    assert!(script.contains("${COOKBOOK_STAGE}/etc/pcid.d/dsmild.toml"));
    assert!(script.contains("${COOKBOOK_STAGE}/usr/lib/init.d/00_iommud"));
}

#[test]
fn pcid_config_matches_the_controller_and_starts_an_installed_bin() {
    let config = parse("daemon/config.toml");
    let drivers = config["drivers"].as_array().expect("[[drivers]]");
    assert_eq!(drivers.len(), 1);
    let d = &drivers[0];
    assert_eq!(
        d["vendor"].as_integer(),
        Some(i64::from(dsmil::client::PCI_VENDOR_ID))
    );
    assert_eq!(
        d["device"].as_integer(),
        Some(i64::from(dsmil::client::PCI_DEVICE_ID))
    );
    assert!(d["name"].as_str().is_some_and(|n| !n.is_empty()));
    let command = d["command"].as_array().expect("command");
    assert_eq!(command[0].as_str(), Some("dsmild"));
    assert!(package("daemon").1.contains("dsmild"));
}

#[test]
fn init_entry_starts_iommud() {
    let text = std::fs::read_to_string(repo().join("iommu/init.d/00_iommud")).expect("init entry");
    let commands: Vec<Vec<&str>> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(commands, vec![vec!["nowait", "iommud"]]);
    assert!(package("iommu").1.contains("iommud"));
}
