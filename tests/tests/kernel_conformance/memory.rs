//! redox-real.md §2: the kernel `memory` scheme (kernel `src/scheme/memory.rs`).
