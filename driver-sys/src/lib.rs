//! driver-sys placeholder
