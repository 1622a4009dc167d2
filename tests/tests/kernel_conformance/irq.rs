//! redox-real.md §1: the kernel `irq` scheme (kernel `src/scheme/irq.rs`).
