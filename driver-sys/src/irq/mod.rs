//! Choosing how a function interrupts.
//!
//! * [`plan`]: the degradation chain MSI-X → fewer MSI-X vectors → MSI → INTx,
//!   as a pure planner over a vector source.

pub mod plan;

pub use plan::{
    IrqCapabilities, IrqMode, IrqPlan, PlanError, PlanStep, StepOutcome, VectorSource,
    plan_interrupts,
};
