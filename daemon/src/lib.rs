//! dsmil
pub mod wire;
pub mod device;
