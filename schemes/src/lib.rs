//! redox-host
