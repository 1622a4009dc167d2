//! Interrupts of a function.
//!
//! * [`plan`]: the degradation chain MSI-X → fewer MSI-X vectors → MSI → INTx,
//!   as a pure planner over a vector source.
//! * [`handle`]: vectors from the `irq` scheme without probing, and
//!   [`IrqHandle`] (wait, acknowledge, affinity, events).
//! * [`enable`]: [`enable_interrupts`], the plan run against a real function.

pub mod enable;
pub mod handle;
pub mod plan;

pub use enable::{InterruptSetup, MsixVectors, enable_interrupts, function_quirks};
pub use handle::{InterruptVectors, IrqHandle, IrqLine, VectorStats};
pub use plan::{
    IrqCapabilities, IrqMode, IrqPlan, PlanError, PlanStep, StepOutcome, VectorSource,
    plan_interrupts,
};
