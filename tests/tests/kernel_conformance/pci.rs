//! redox-real.md §4: pcid's `pci` scheme (base `drivers/pcid/src/scheme.rs`).
