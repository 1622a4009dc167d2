//! Interrupt vectors: numbering, CPU masks, the per-CPU vector matrix, and
//! spreading queue vectors across CPUs.
//!
//! * [`number`]: the [`Vector`] type and the Redox `irq` scheme's numbering.
//! * [`cpu_mask`]: [`CpuMask`], a fixed-size set of CPUs (affinity masks).
//! * [`matrix`]: [`VectorMatrix`], lock-free per-CPU allocation like Linux's `irq_matrix`.
//! * [`spread`]: round-robin spreading of multi-queue vectors.

pub mod cpu_mask;
pub mod matrix;
pub mod number;
pub mod spread;

pub use cpu_mask::{CpuMask, MAX_CPUS};
pub use matrix::{VectorAllocation, VectorBlock, VectorError, VectorMatrix};
pub use number::{
    FIRST_DEVICE_VECTOR, FIRST_SYSTEM_VECTOR, IRQ_VECTOR_OFFSET, LAST_DEVICE_VECTOR, Vector,
    irq_scheme_path,
};
pub use spread::{alloc_spread, spread_cpus};
