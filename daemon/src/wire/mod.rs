//! Binary types shared with clients of scheme `dsmil`.
//!
//! Everything is little-endian with a fixed, compile-time-asserted size.
//! Each type has `encode(&self, &mut [u8]) -> Result<usize>` (writes into the
//! front of a buffer at least `SIZE` long) and `decode(&[u8]) -> Result<Self>`
//! (exactly `SIZE` bytes): client bytes are parsed field by field, never
//! reinterpreted in place. Errors are errno values (`EINVAL`).

mod control;
mod device_info;
mod event;
mod le;
mod read_chunk;
mod replies;
mod scan_chunk;
mod token;

pub use control::{ControlRequest, Op};
pub use device_info::{
    DeviceAccess, DeviceInfo, DeviceState, decode_device_list, encode_device_list,
};
pub use event::{EventKind, EventRecord};
pub use read_chunk::{READ_CHUNK_DATA, ReadChunk, ReadChunkHeader};
pub use replies::{
    MILDEV_VERSION_CODE, NO_TEMPERATURE_READING, SessionStart, SessionSummary, SystemStatus,
    ThermalReply, VersionInfo,
};
pub use scan_chunk::{
    CHUNK_SIZE, DEVICES_PER_SCAN_CHUNK, SCAN_CHUNK_COUNT, ScanChunk, ScanChunkHeader,
};
pub use token::{
    DEVICE_COUNT, FIRST_TOKEN, GROUP_COUNT, GROUP_SIZE, LAST_TOKEN, QUARANTINED_TOKENS, Token,
};

#[cfg(test)]
mod robustness_tests;
