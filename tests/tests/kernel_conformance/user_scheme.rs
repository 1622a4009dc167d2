//! redox-real.md §3: user-scheme delivery (kernel `src/scheme/user.rs`).
