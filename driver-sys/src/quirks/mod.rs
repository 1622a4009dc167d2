//! Per-device quirks: flags that make the driver stack avoid broken features.
//!
//! * [`flags`]: [`QuirkFlags`] (`NO_MSI`, `NO_MSIX`, `FORCE_LEGACY_IRQ`,
//!   `NO_IOMMU`, `DMA_32BIT_ONLY`).
//! * [`table`]: matching entries by vendor/device/class with masks, the
//!   built-in table, and [`QuirkTable`] which merges it with files.
//! * [`toml_file`]: the `/etc/quirks.d/*.toml` format.

pub mod flags;
pub mod table;
pub mod toml_file;

pub use flags::QuirkFlags;
pub use table::{BUILTIN_QUIRKS, PciIdentity, QuirkEntry, QuirkMatch, QuirkTable};
pub use toml_file::{QUIRKS_DIR, QuirkFileError, parse_quirk_file};
