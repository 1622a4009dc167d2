//! The quirk file format (`/etc/quirks.d/*.toml`).
//!
//! ```toml
//! # One [[quirk]] table per entry.
//! [[quirk]]
//! vendor = 0x1002          # required unless `class` is given
//! device = 0x4386          # optional; needs `vendor`
//! device_mask = 0xfffe     # optional, default 0xffff
//! class = 0x0c0300         # optional 24-bit class code
//! class_mask = 0xffff00    # optional, default 0xffffff when `class` is given
//! flags = ["NO_MSI", "NO_MSIX"]
//! reason = "why, for the log"
//! ```
//!
//! Files are untrusted text: every error names the file and, where there is
//! one, the 1-based entry number, and nothing panics. Unknown keys and flag
//! names are errors so a typo does not silently disable a quirk. An entry with
//! neither `vendor` nor `class` would match every device and is refused.

use std::borrow::Cow;
use std::path::Path;

use serde::Deserialize;

use super::flags::QuirkFlags;
use super::table::{QuirkEntry, QuirkMatch};

/// Where quirk files live on a Redox system.
pub const QUIRKS_DIR: &str = "/etc/quirks.d";
/// Larger files are refused (bounded memory).
pub const MAX_QUIRK_FILE_BYTES: u64 = 256 * 1024;
/// More entries per file are refused.
pub const MAX_QUIRK_ENTRIES: usize = 4096;
/// More files in the directory are ignored, with an error.
pub const MAX_QUIRK_FILES: usize = 256;

/// A quirk file could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuirkFileError {
    /// The file name.
    pub file: String,
    /// 1-based `[[quirk]]` entry number, when the problem is in one entry.
    pub entry: Option<usize>,
    /// What is wrong.
    pub message: String,
}

impl core::fmt::Display for QuirkFileError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self.entry {
            Some(n) => write!(f, "{}: quirk entry {n}: {}", self.file, self.message),
            None => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

impl std::error::Error for QuirkFileError {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQuirk {
    vendor: Option<i64>,
    device: Option<i64>,
    device_mask: Option<i64>,
    class: Option<i64>,
    class_mask: Option<i64>,
    flags: Vec<String>,
    #[serde(default)]
    reason: String,
}

fn ranged(name: &str, value: Option<i64>, max: i64) -> Result<Option<u32>, String> {
    match value {
        None => Ok(None),
        Some(v) if (0..=max).contains(&v) => Ok(Some(v as u32)),
        Some(v) => Err(format!("{name} = {v} is outside 0..={max:#x}")),
    }
}

fn convert(raw: RawQuirk) -> Result<QuirkEntry, String> {
    let vendor = ranged("vendor", raw.vendor, 0xFFFF)?;
    let device = ranged("device", raw.device, 0xFFFF)?;
    let device_mask = ranged("device_mask", raw.device_mask, 0xFFFF)?;
    let class = ranged("class", raw.class, 0xFF_FFFF)?;
    let class_mask = ranged("class_mask", raw.class_mask, 0xFF_FFFF)?;
    if vendor.is_none() && class.is_none() {
        return Err("needs `vendor` or `class` (it would match every device)".into());
    }
    if device.is_some() && vendor.is_none() {
        return Err("`device` needs `vendor`".into());
    }
    if device_mask.is_some() && device.is_none() {
        return Err("`device_mask` needs `device`".into());
    }
    if class_mask.is_some() && class.is_none() {
        return Err("`class_mask` needs `class`".into());
    }
    let mut flags = QuirkFlags::empty();
    for name in &raw.flags {
        flags |= QuirkFlags::from_name(name).ok_or_else(|| {
            let known: Vec<&str> = QuirkFlags::NAMED.iter().map(|(n, _)| *n).collect();
            format!("unknown flag {name:?} (known: {})", known.join(", "))
        })?;
    }
    if flags.is_empty() {
        return Err("`flags` is empty".into());
    }
    Ok(QuirkEntry {
        matcher: QuirkMatch {
            vendor: vendor.unwrap_or(0) as u16,
            vendor_mask: if vendor.is_some() { 0xFFFF } else { 0 },
            device: device.unwrap_or(0) as u16,
            device_mask: match device {
                Some(_) => device_mask.unwrap_or(0xFFFF) as u16,
                None => 0,
            },
            class: class.unwrap_or(0),
            class_mask: match class {
                Some(_) => class_mask.unwrap_or(0xFF_FFFF),
                None => 0,
            },
        },
        flags,
        reason: Cow::Owned(raw.reason),
    })
}

/// Parses one quirk file. `file` is only used in error messages.
pub fn parse_quirk_file(file: &str, text: &str) -> Result<Vec<QuirkEntry>, QuirkFileError> {
    let err = |entry: Option<usize>, message: String| QuirkFileError {
        file: file.to_owned(),
        entry,
        message,
    };
    if text.len() as u64 > MAX_QUIRK_FILE_BYTES {
        return Err(err(
            None,
            format!("larger than {MAX_QUIRK_FILE_BYTES} bytes"),
        ));
    }
    let doc: toml::Table = toml::from_str(text).map_err(|e| err(None, e.to_string()))?;
    let mut entries = Vec::new();
    for (key, value) in doc {
        if key != "quirk" {
            return Err(err(
                None,
                format!("unknown top-level key `{key}` (expected [[quirk]])"),
            ));
        }
        let toml::Value::Array(items) = value else {
            return Err(err(
                None,
                "`quirk` must be an array of tables ([[quirk]])".into(),
            ));
        };
        if items.len() > MAX_QUIRK_ENTRIES {
            return Err(err(None, format!("more than {MAX_QUIRK_ENTRIES} entries")));
        }
        for (i, item) in items.into_iter().enumerate() {
            let raw: RawQuirk = item
                .try_into()
                .map_err(|e: toml::de::Error| err(Some(i + 1), e.message().trim().to_owned()))?;
            entries.push(convert(raw).map_err(|m| err(Some(i + 1), m))?);
        }
    }
    Ok(entries)
}

/// Reads the `*.toml` files of `dir` in name order, as (name, text). I/O
/// problems go to `errors`; a missing directory is not one.
pub(super) fn read_quirk_dir(
    dir: &Path,
    errors: &mut Vec<QuirkFileError>,
) -> Vec<(String, String)> {
    let dir_name = dir.display().to_string();
    let read_dir = match std::fs::read_dir(dir) {
        Ok(r) => r,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => {
            errors.push(QuirkFileError {
                file: dir_name,
                entry: None,
                message: e.to_string(),
            });
            return Vec::new();
        }
    };
    let mut paths: Vec<_> = read_dir
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    paths.sort();
    if paths.len() > MAX_QUIRK_FILES {
        errors.push(QuirkFileError {
            file: dir_name,
            entry: None,
            message: format!("more than {MAX_QUIRK_FILES} files; the rest are ignored"),
        });
        paths.truncate(MAX_QUIRK_FILES);
    }
    let mut out = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let text = std::fs::metadata(&path).and_then(|m| {
            if m.len() > MAX_QUIRK_FILE_BYTES {
                Err(std::io::Error::other(format!(
                    "larger than {MAX_QUIRK_FILE_BYTES} bytes"
                )))
            } else {
                std::fs::read_to_string(&path)
            }
        });
        match text {
            Ok(t) => out.push((name, t)),
            Err(e) => errors.push(QuirkFileError {
                file: name,
                entry: None,
                message: e.to_string(),
            }),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quirks::table::{PciIdentity, QuirkTable};

    const GOOD: &str = r#"
# A NIC whose MSI-X table is unreliable, and every 32-bit-only capture card of a vendor.
[[quirk]]
vendor = 0x10ec
device = 0x8168
flags = ["NO_MSIX"]
reason = "MSI-X table writes lost"

[[quirk]]
vendor = 0x1234
class = 0x048000
class_mask = 0xff0000
flags = ["DMA_32BIT_ONLY", "NO_IOMMU"]

[[quirk]]
class = 0x0c0330
flags = ["FORCE_LEGACY_IRQ"]

[[quirk]]
vendor = 0xabcd
device = 0x0100
device_mask = 0xff00
flags = ["NO_MSI"]
"#;

    fn id(vendor: u16, device: u16, class: u32) -> PciIdentity {
        PciIdentity {
            vendor,
            device,
            class,
        }
    }

    #[test]
    fn parses_and_matches() {
        let entries = parse_quirk_file("10-local.toml", GOOD).unwrap();
        assert_eq!(entries.len(), 4);
        assert_eq!(entries[0].reason, "MSI-X table writes lost");
        let mut t = QuirkTable::empty();
        t.add_toml("10-local.toml", GOOD).unwrap();
        assert_eq!(t.lookup(&id(0x10EC, 0x8168, 0x020000)), QuirkFlags::NO_MSIX);
        assert!(t.lookup(&id(0x10EC, 0x8169, 0x020000)).is_empty());
        assert_eq!(
            t.lookup(&id(0x1234, 0x0001, 0x040000)),
            QuirkFlags::DMA_32BIT_ONLY | QuirkFlags::NO_IOMMU
        );
        assert!(t.lookup(&id(0x1234, 0x0001, 0x020000)).is_empty());
        assert_eq!(
            t.lookup(&id(0x8086, 0x1E31, 0x0C0330)),
            QuirkFlags::FORCE_LEGACY_IRQ
        );
        assert!(t.lookup(&id(0x8086, 0x1E31, 0x0C0320)).is_empty());
        assert_eq!(t.lookup(&id(0xABCD, 0x01FF, 0)), QuirkFlags::NO_MSI);
        assert!(t.lookup(&id(0xABCD, 0x0200, 0)).is_empty());
    }

    #[test]
    fn empty_file_is_no_quirks() {
        assert_eq!(parse_quirk_file("e.toml", "# nothing\n").unwrap(), vec![]);
    }

    fn error_of(text: &str) -> QuirkFileError {
        parse_quirk_file("99-bad.toml", text).unwrap_err()
    }

    #[test]
    fn syntax_error_names_the_file() {
        let e = error_of("[[quirk]\nvendor = ");
        assert_eq!(e.file, "99-bad.toml");
        assert_eq!(e.entry, None);
        assert!(e.to_string().starts_with("99-bad.toml: "), "{e}");
    }

    #[test]
    fn entry_errors_name_the_entry() {
        let two = |second: &str| {
            format!("[[quirk]]\nvendor = 1\nflags = [\"NO_MSI\"]\n\n[[quirk]]\n{second}\n")
        };
        let cases = [
            ("vendor = 0x10000\nflags = [\"NO_MSI\"]", "vendor"),
            ("vendor = -1\nflags = [\"NO_MSI\"]", "vendor"),
            ("vendor = 1\nflags = [\"NO_MSSI\"]", "NO_MSSI"),
            ("vendor = 1\nflags = []", "empty"),
            ("flags = [\"NO_MSI\"]", "every device"),
            (
                "device = 5\nclass = 1\nflags = [\"NO_MSI\"]",
                "needs `vendor`",
            ),
            ("vendor = 1\nvendr = 2\nflags = [\"NO_MSI\"]", "vendr"),
            ("vendor = \"intel\"\nflags = [\"NO_MSI\"]", ""),
            ("vendor = 1", "flags"),
            ("class = 0x1000000\nflags = [\"NO_MSI\"]", "class"),
            (
                "vendor = 1\nclass_mask = 3\nflags = [\"NO_MSI\"]",
                "class_mask",
            ),
        ];
        for (second, needle) in cases {
            let e = error_of(&two(second));
            assert_eq!(e.entry, Some(2), "{second}: {e}");
            assert!(e.message.contains(needle), "{second}: {e}");
            assert!(
                e.to_string().starts_with("99-bad.toml: quirk entry 2: "),
                "{e}"
            );
        }
    }

    #[test]
    fn wrong_shapes_are_errors() {
        assert!(error_of("quirk = 3").message.contains("array of tables"));
        assert!(
            error_of("[quirks]\nvendor = 1")
                .message
                .contains("unknown top-level key")
        );
        assert_eq!(error_of("quirk = [1]").entry, Some(1));
        let big = "#".repeat(MAX_QUIRK_FILE_BYTES as usize + 1);
        assert!(error_of(&big).message.contains("larger"));
    }

    #[test]
    fn a_bad_file_does_not_change_the_table() {
        let mut t = QuirkTable::empty();
        let bad =
            "[[quirk]]\nvendor = 1\nflags = [\"NO_MSI\"]\n[[quirk]]\nvendor = 2\nflags = [\"X\"]\n";
        assert!(t.add_toml("x.toml", bad).is_err());
        assert!(t.entries().is_empty(), "all-or-nothing per file");
    }

    #[test]
    fn load_dir_reads_toml_files_in_order_and_reports_bad_ones() {
        let dir = std::env::temp_dir().join(format!("driver-sys-quirks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("20-b.toml"),
            "[[quirk]]\nvendor = 2\nflags = [\"NO_MSIX\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("10-a.toml"),
            "[[quirk]]\nvendor = 1\nflags = [\"NO_MSI\"]\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("30-bad.toml"),
            "[[quirk]]\nvendor = 3\nflags = [\"nope\"]\n",
        )
        .unwrap();
        std::fs::write(dir.join("README"), "not toml").unwrap();
        let mut t = QuirkTable::empty();
        let errors = t.load_dir(&dir);
        let vendors: Vec<u16> = t.entries().iter().map(|e| e.matcher.vendor).collect();
        assert_eq!(vendors, vec![1, 2]);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].file.ends_with("30-bad.toml"));
        assert_eq!(errors[0].entry, Some(1));
        std::fs::remove_dir_all(&dir).unwrap();
        // A directory that does not exist is simply no quirks.
        assert!(t.load_dir(&dir).is_empty());
    }
}
