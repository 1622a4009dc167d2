//! dsmil
