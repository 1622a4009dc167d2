//! The Redox IOMMU daemon's core: the `iommu` scheme wire protocol, the IOVA
//! allocator, AMD-Vi v1 I/O page tables and domains.
//!
//! Everything in this crate's library part is pure logic: the physical
//! memory that page tables live in is reached through [`phys::PageTableMemory`],
//! so the same code runs in iommud on Redox and in-process in tests.
#![warn(missing_docs)]

pub mod bdf;
pub mod domain;
pub mod iova;
pub mod page_table;
pub mod phys;
pub mod protocol;
pub mod pte;

pub use bdf::Bdf;
pub use domain::{Domain, DomainConfig, DomainStats, Mapping, Unmapped};
pub use iova::{IovaAllocator, WindowUsage};
pub use page_table::{PagePolicy, PageTable, Translation};
pub use phys::{PageTableMemory, TableArena};
pub use protocol::{MapFlags, Opcode, RawRequest, Request, Response};
