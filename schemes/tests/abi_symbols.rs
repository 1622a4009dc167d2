//! The relibc symbols this crate defines are exactly those the locked `libredox`
//! (0.1.x and 0.2.x) and `redox_event` versions, and the workspace's product crates,
//! reference. After a dependency
//! upgrade this test names what to add (or drop) in `abi.rs`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Removes `//` and `/* */` comments, so commented-out declarations don't count.
fn strip_comments(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    let b = src.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

/// Identifiers of the form `redox_*_v<N>` in a source text.
fn abi_names(src: &str, into: &mut BTreeSet<String>) {
    let code = strip_comments(src);
    for word in code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        let versioned = word
            .rsplit_once("_v")
            .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|d| d.is_ascii_digit()));
        if word.starts_with("redox_") && versioned {
            into.insert(word.to_string());
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// Source directories of the locked libredox and redox_event packages.
fn locked_sources() -> Vec<PathBuf> {
    let out = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = String::from_utf8_lossy(&out.stdout);
    let key = "\"manifest_path\":\"";
    let mut dirs = BTreeSet::new();
    for piece in json.split(key).skip(1) {
        let Some(path) = piece.split('"').next() else {
            continue;
        };
        let p = PathBuf::from(path);
        let pkg = p
            .parent()
            .and_then(|d| d.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if (pkg.starts_with("libredox-") || pkg.starts_with("redox_event-"))
            && let Some(d) = p.parent()
        {
            dirs.insert(d.join("src"));
        }
    }
    dirs.into_iter().collect()
}

#[test]
fn defined_symbols_match_what_the_locked_crates_reference() {
    let dirs = locked_sources();
    let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
    assert!(
        names.iter().any(|n| n.contains("libredox-0.1"))
            && names.iter().any(|n| n.contains("libredox-0.2")),
        "expected both libredox 0.1.x and 0.2.x in the lock file, found {names:?}"
    );
    let mut referenced = BTreeSet::new();
    // The product crates may declare a relibc symbol libredox lacks; it must be defined too.
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let own = ["daemon/src", "driver-sys/src", "iommu/src"].map(|d| workspace.join(d));
    for d in dirs.iter().chain(own.iter()) {
        let mut files = Vec::new();
        rust_files(d, &mut files);
        for f in files {
            abi_names(
                &std::fs::read_to_string(&f).unwrap_or_default(),
                &mut referenced,
            );
        }
    }
    let defined: BTreeSet<String> = redox_host::abi::DEFINED
        .iter()
        .map(|s| s.to_string())
        .collect();
    let missing: Vec<_> = referenced.difference(&defined).collect();
    let extra: Vec<_> = defined.difference(&referenced).collect();
    assert!(
        missing.is_empty(),
        "referenced but not defined by redox-host: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "defined but referenced by no locked crate: {extra:?}"
    );
}

#[test]
fn comment_stripping_and_name_filter() {
    let mut s = BTreeSet::new();
    abi_names(
        "fn redox_open_v1(); /* fn redox_gone_v0(); */ // redox_also_gone_v1\n#[cfg(feature = \"redox_syscall\")] redox_read_v1(x)",
        &mut s,
    );
    assert_eq!(
        s.into_iter().collect::<Vec<_>>(),
        ["redox_open_v1", "redox_read_v1"]
    );
}
