//! Matching quirk entries against a PCI function, and the built-in table.

use std::borrow::Cow;
use std::path::Path;

use super::flags::QuirkFlags;
use super::toml_file::{QuirkFileError, parse_quirk_file, read_quirk_dir};

/// What identifies a function for quirk matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PciIdentity {
    /// Vendor ID (config 0x00).
    pub vendor: u16,
    /// Device ID (config 0x02).
    pub device: u16,
    /// 24-bit class code: base class << 16 | subclass << 8 | programming interface.
    pub class: u32,
}

/// Which functions an entry applies to. A field matches when
/// `(actual & mask) == (wanted & mask)`; a zero mask matches anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QuirkMatch {
    /// Vendor ID.
    pub vendor: u16,
    /// Vendor mask (0xFFFF = exact, 0 = any vendor).
    pub vendor_mask: u16,
    /// Device ID.
    pub device: u16,
    /// Device mask (0xFFFF = exact, 0 = any device).
    pub device_mask: u16,
    /// Class code.
    pub class: u32,
    /// Class mask (0xFFFFFF = exact, 0xFFFF00 = any programming interface, 0 = any class).
    pub class_mask: u32,
}

impl QuirkMatch {
    /// Exactly vendor:device, any class.
    pub const fn device(vendor: u16, device: u16) -> Self {
        Self {
            vendor,
            vendor_mask: 0xFFFF,
            device,
            device_mask: 0xFFFF,
            class: 0,
            class_mask: 0,
        }
    }

    /// Whether `id` is matched.
    pub fn matches(&self, id: &PciIdentity) -> bool {
        (id.vendor & self.vendor_mask) == (self.vendor & self.vendor_mask)
            && (id.device & self.device_mask) == (self.device & self.device_mask)
            && (id.class & self.class_mask) == (self.class & self.class_mask)
    }
}

/// One quirk: which functions, which flags, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuirkEntry {
    /// Which functions.
    pub matcher: QuirkMatch,
    /// What to avoid.
    pub flags: QuirkFlags,
    /// Why, for the log.
    pub reason: Cow<'static, str>,
}

const fn builtin(matcher: QuirkMatch, flags: QuirkFlags, reason: &'static str) -> QuirkEntry {
    QuirkEntry {
        matcher,
        flags,
        reason: Cow::Borrowed(reason),
    }
}

const NO_MSI_AT_ALL: QuirkFlags = QuirkFlags::NO_MSI.union(QuirkFlags::NO_MSIX);

/// Quirks every system gets, from hardware defects Linux also works around
/// (`drivers/pci/quirks.c`). Linux's `no_msi` covers MSI and MSI-X, so those
/// entries set both flags.
pub const BUILTIN_QUIRKS: &[QuirkEntry] = &[
    // ATI/AMD SB600/SB700 USB controllers 1002:4386..438b advertise MSI but it
    // does not work; Linux's quirk_no_msi keeps them on INTx. The masks cover
    // 4386-4387 and 4388-438b with two entries.
    builtin(
        QuirkMatch {
            device_mask: 0xFFFE,
            ..QuirkMatch::device(0x1002, 0x4386)
        },
        NO_MSI_AT_ALL,
        "AMD SB600/SB700 USB: MSI is defective (Linux quirk_no_msi)",
    ),
    builtin(
        QuirkMatch {
            device_mask: 0xFFFC,
            ..QuirkMatch::device(0x1002, 0x4388)
        },
        NO_MSI_AT_ALL,
        "AMD SB600/SB700 USB: MSI is defective (Linux quirk_no_msi)",
    ),
    // Intel E7520 / E7320 memory controller hubs: their PCIe root ports must
    // not use MSI (Linux quirk_pcie_mch).
    builtin(
        QuirkMatch::device(0x8086, 0x3590),
        NO_MSI_AT_ALL,
        "Intel E7520 MCH: MSI unsupported (Linux quirk_pcie_mch)",
    ),
    builtin(
        QuirkMatch::device(0x8086, 0x3592),
        NO_MSI_AT_ALL,
        "Intel E7320 MCH: MSI unsupported (Linux quirk_pcie_mch)",
    ),
    // Huawei 19e5:1610 in its PCI-to-PCI bridge personality (class 06:04, any
    // programming interface): Linux applies quirk_pcie_mch by class.
    builtin(
        QuirkMatch {
            class: 0x06_04_00,
            class_mask: 0xFF_FF_00,
            ..QuirkMatch::device(0x19E5, 0x1610)
        },
        NO_MSI_AT_ALL,
        "Huawei 1610 PCI bridge: MSI unsupported (Linux quirk_pcie_mch)",
    ),
];

/// The quirks in force: the built-in table plus any files loaded.
#[derive(Debug, Clone)]
pub struct QuirkTable {
    entries: Vec<QuirkEntry>,
}

impl Default for QuirkTable {
    fn default() -> Self {
        Self::builtin()
    }
}

impl QuirkTable {
    /// Only the built-in quirks.
    pub fn builtin() -> Self {
        Self {
            entries: BUILTIN_QUIRKS.to_vec(),
        }
    }

    /// No quirks at all (for tests and for overriding everything).
    pub fn empty() -> Self {
        Self {
            entries: Vec::new(),
        }
    }

    /// All entries, built-in first.
    pub fn entries(&self) -> &[QuirkEntry] {
        &self.entries
    }

    /// Adds one entry.
    pub fn push(&mut self, entry: QuirkEntry) {
        self.entries.push(entry);
    }

    /// Parses quirk TOML `text` (named `file` in errors) and adds its entries.
    /// All-or-nothing per file. Returns how many entries were added.
    pub fn add_toml(&mut self, file: &str, text: &str) -> Result<usize, QuirkFileError> {
        let entries = parse_quirk_file(file, text)?;
        let n = entries.len();
        self.entries.extend(entries);
        Ok(n)
    }

    /// Loads every `*.toml` in `dir` in name order (normally
    /// [`super::QUIRKS_DIR`]). A missing directory is no quirks; a bad file is
    /// skipped, logged, and returned in the error list while the others load.
    pub fn load_dir(&mut self, dir: &Path) -> Vec<QuirkFileError> {
        let mut errors = Vec::new();
        for (name, text) in read_quirk_dir(dir, &mut errors) {
            match self.add_toml(&name, &text) {
                Ok(n) => log::info!("quirks: {n} entries from {name}"),
                Err(e) => {
                    log::warn!("quirks: skipping {e}");
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// The flags of every entry matching `id`, combined.
    pub fn lookup(&self, id: &PciIdentity) -> QuirkFlags {
        self.matching(id)
            .fold(QuirkFlags::empty(), |acc, e| acc | e.flags)
    }

    /// The entries matching `id`, for logging why.
    pub fn matching<'a>(&'a self, id: &'a PciIdentity) -> impl Iterator<Item = &'a QuirkEntry> {
        self.entries.iter().filter(move |e| e.matcher.matches(id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(vendor: u16, device: u16, class: u32) -> PciIdentity {
        PciIdentity {
            vendor,
            device,
            class,
        }
    }

    #[test]
    fn builtin_masks_cover_the_sb600_range_only() {
        let t = QuirkTable::builtin();
        for dev in 0x4386..=0x438B {
            assert_eq!(
                t.lookup(&id(0x1002, dev, 0x0C0310)),
                NO_MSI_AT_ALL,
                "{dev:#x}"
            );
        }
        for dev in [0x4385, 0x438C, 0x4396] {
            assert!(t.lookup(&id(0x1002, dev, 0x0C0310)).is_empty(), "{dev:#x}");
        }
        assert!(
            t.lookup(&id(0x1022, 0x4386, 0x0C0310)).is_empty(),
            "other vendor"
        );
    }

    #[test]
    fn class_match_ignores_prog_if_only() {
        let t = QuirkTable::builtin();
        assert_eq!(t.lookup(&id(0x19E5, 0x1610, 0x060400)), NO_MSI_AT_ALL);
        assert_eq!(t.lookup(&id(0x19E5, 0x1610, 0x060401)), NO_MSI_AT_ALL);
        assert!(
            t.lookup(&id(0x19E5, 0x1610, 0x010802)).is_empty(),
            "not as a bridge"
        );
        assert_eq!(t.matching(&id(0x19E5, 0x1610, 0x060400)).count(), 1);
    }

    #[test]
    fn flags_of_several_entries_combine() {
        let mut t = QuirkTable::empty();
        t.push(QuirkEntry {
            matcher: QuirkMatch::device(0x1234, 0x5678),
            flags: QuirkFlags::NO_MSIX,
            reason: "a".into(),
        });
        t.push(QuirkEntry {
            matcher: QuirkMatch {
                vendor: 0x1234,
                vendor_mask: 0xFFFF,
                device: 0,
                device_mask: 0,
                class: 0x02_00_00,
                class_mask: 0xFF_00_00,
            },
            flags: QuirkFlags::DMA_32BIT_ONLY,
            reason: "b".into(),
        });
        assert_eq!(
            t.lookup(&id(0x1234, 0x5678, 0x020000)),
            QuirkFlags::NO_MSIX | QuirkFlags::DMA_32BIT_ONLY
        );
        assert_eq!(
            t.lookup(&id(0x1234, 0x9999, 0x028000)),
            QuirkFlags::DMA_32BIT_ONLY
        );
        assert_eq!(t.lookup(&id(0x1234, 0x5678, 0x010000)), QuirkFlags::NO_MSIX);
    }
}
