//! redox-real.md §6: the `acpi` scheme (base `drivers/acpid/src/scheme.rs`).
