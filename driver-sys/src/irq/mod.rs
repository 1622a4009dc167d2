//! Interrupts of a function.
//!
//! * [`plan`]: the degradation chain MSI-X → fewer MSI-X vectors → MSI → INTx,
//!   as a pure planner over a vector source.
//! * [`vectors`]: [`InterruptVectors`], vectors from the `irq` scheme without
//!   probing, kept in an idle pool since the kernel never takes one back.
//! * [`handle`]: [`IrqHandle`] (read the count, acknowledge, events, affinity move).
//! * [`listing`]: the scheme's getdents listings and `bsp` file.
//! * [`enable`]: [`enable_interrupts`], the plan run against a real function.

pub mod enable;
pub mod handle;
pub mod listing;
pub mod plan;
pub mod vectors;

pub use enable::{InterruptSetup, MsixVectors, enable_interrupts, function_quirks};
pub use handle::{IrqHandle, IrqLine};
pub use plan::{
    IrqCapabilities, IrqMode, IrqPlan, PlanError, PlanStep, StepOutcome, VectorSource,
    plan_interrupts,
};
pub use vectors::{IRQ_SCHEME, InterruptVectors, VectorStats};
