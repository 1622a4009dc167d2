//! dsmil
pub mod wire;
