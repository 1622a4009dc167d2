//! The Redox IOMMU daemon, iommud: the `iommu` scheme wire protocol and its
//! typed client, the IOVA allocator, I/O page tables generic over the
//! vendor's entry format ([`format`]), domains, the unit trait every vendor
//! implements ([`unit::IommuUnit`], with its ordering contract), the AMD-Vi
//! unit driver (device table, command ring, event log), invalidation (strict
//! and lazy, page-table pages freed only after it) and the scheme with its
//! daemon loop.
//!
//! The pure-logic part (protocol, IOVA allocator, page tables, domains, flush
//! queues) reaches physical memory only through [`phys::PageTableMemory`],
//! so it runs in-process in tests. The daemon part reaches the OS only
//! through `libredox`, `redox-scheme` and `redox_event`, and an AMD-Vi unit's
//! registers only through [`amdvi::AmdViMmio`]; on Linux, `redox-host`
//! supplies both.
#![warn(missing_docs)]

pub mod access;
pub mod acpi;
pub mod amdvi;
pub mod assignment;
pub mod bdf;
pub mod buffers;
pub mod client;
pub mod config;
pub mod contiguous;
pub mod daemon;
pub mod discovery;
pub mod dmar;
pub mod domain;
pub mod drain;
pub mod flush_queue;
pub mod format;
pub mod iova;
pub mod ivrs;
pub mod page_table;
pub mod pcid_channel;
pub mod phys;
pub mod physmap;
pub mod protocol;
pub mod pte;
pub mod scatter;
pub mod scheme;
pub mod service;
pub mod startup;
pub mod table_memory;
pub mod topology;
pub mod unit;
pub mod vtd;

pub use bdf::Bdf;
pub use client::IommuDomain;
pub use config::Config;
pub use daemon::{DaemonError, run, serve};
pub use domain::{Domain, DomainConfig, DomainStats, Mapping, Unmapped};
pub use flush_queue::Invalidation;
pub use iova::{IovaAllocator, WindowUsage};
pub use page_table::{PagePolicy, PageTable, Translation};
pub use phys::{PageTableMemory, TableArena};
pub use protocol::{MapFlags, Opcode, RawRequest, Request, Response};
pub use unit::{DeviceState, DomainTables, IommuUnit, UnitCapabilities, UnitFault, Vendor};
