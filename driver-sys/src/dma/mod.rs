//! DMA memory.
//!
//! * [`buffer`]: [`DmaRegion`] and [`DmaBuffer<T>`], physically contiguous zeroed
//!   memory from the `memory` scheme.
//! * [`mapper`]: [`IommuMapper`] — the device's IOMMU domain
//!   ([`IommuDomainMapper`], iommu wire protocol v1) or [`Passthrough`].
//! * [`allocator`]: [`IommuDmaAllocator`], mapped memory with a per-size-class pool
//!   and DMA-mask awareness.
//! * [`streaming`]: `map_single`/`unmap_single`/`sync_*` through bounce buffers.

pub mod allocator;
pub mod buffer;
pub mod iommu_client;
pub mod mapper;
pub mod streaming;

pub use allocator::{DmaAllocation, DmaStats, IommuDmaAllocator, SIZE_CLASSES};
pub use buffer::{DmaBuffer, DmaRegion, Zeroable};
pub use iommu::protocol::MapFlags;
pub use mapper::{IommuDomainMapper, IommuMapper, Passthrough, channel_mapper, domain_mapper};
pub use streaming::{DmaDirection, StreamingMap};
