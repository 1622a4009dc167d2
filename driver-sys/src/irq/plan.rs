//! The interrupt degradation chain.
//!
//! A driver asks for N vectors. Failing to get them should cost performance,
//! not the device, so the planner walks down:
//!
//! 1. MSI-X with min(N, table size) vectors, then half as many, down to 1;
//! 2. MSI with the largest power of two ≤ min(N, what the function supports),
//!    halving down to 1 (multi-message MSI needs an aligned power-of-two block);
//! 3. the legacy INTx pin.
//!
//! Quirks cut steps out: `NO_MSIX` skips 1, `NO_MSI` skips 2,
//! `FORCE_LEGACY_IRQ` skips both. Every step — tried, refused, skipped,
//! unsupported — is logged and recorded in the returned plan, so the driver
//! can report (and tests can check) exactly why it ended where it did.
//!
//! The planner does no I/O itself: a [`VectorSource`] performs each attempt
//! (reserving vectors in the matrix or the `irq` scheme, opening the INTx
//! line) and hands back whatever it allocated as the grant.

use crate::msi::capability::{MsiCapability, MsixCapability};
use crate::quirks::QuirkFlags;

/// Interrupt mechanisms, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqMode {
    /// MSI-X: independent vectors, each with its own table entry.
    MsiX,
    /// MSI: an aligned power-of-two block sharing one address.
    Msi,
    /// The legacy INTx pin (shared, level-triggered).
    Intx,
}

impl core::fmt::Display for IrqMode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            Self::MsiX => "MSI-X",
            Self::Msi => "MSI",
            Self::Intx => "INTx",
        })
    }
}

/// What interrupt mechanisms a function has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IrqCapabilities {
    /// MSI-X table size, if the function has MSI-X.
    pub msix_table_size: Option<u16>,
    /// Vectors MSI supports (1..=32, a power of two), if the function has MSI.
    pub msi_max_vectors: Option<u32>,
    /// The INTx pin (1 = INTA .. 4 = INTD), if the function uses one.
    pub intx_pin: Option<u8>,
}

impl IrqCapabilities {
    /// From parsed capabilities and the config interrupt-pin byte (0x3D; 0 =
    /// none, values above 4 are invalid and treated as none).
    pub fn from_capabilities(
        msix: Option<&MsixCapability>,
        msi: Option<&MsiCapability>,
        interrupt_pin: u8,
    ) -> Self {
        Self {
            msix_table_size: msix.map(MsixCapability::table_size),
            msi_max_vectors: msi.map(MsiCapability::max_vectors),
            intx_pin: (1..=4).contains(&interrupt_pin).then_some(interrupt_pin),
        }
    }
}

/// Performs one attempt of the chain.
pub trait VectorSource {
    /// What a successful attempt hands back (vector handles, a block, ...).
    type Grant;
    /// Why an attempt failed.
    type Error: core::fmt::Display;

    /// Try to set up `count` interrupts in `mode` (`count` is 1 for INTx).
    fn allocate(&mut self, mode: IrqMode, count: u32) -> Result<Self::Grant, Self::Error>;
}

impl<G, E: core::fmt::Display, F: FnMut(IrqMode, u32) -> Result<G, E>> VectorSource for F {
    type Grant = G;
    type Error = E;
    fn allocate(&mut self, mode: IrqMode, count: u32) -> Result<G, E> {
        self(mode, count)
    }
}

/// What happened at one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepOutcome {
    /// The source set it up; the chain stops here.
    Granted,
    /// The source failed, with its message.
    Refused(String),
    /// A quirk forbids this mode.
    SkippedByQuirk(QuirkFlags),
    /// The function lacks this mechanism.
    Unsupported,
}

/// One step of the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanStep {
    /// The mode considered.
    pub mode: IrqMode,
    /// Vectors asked for (0 for a skipped or unsupported mode).
    pub vectors: u32,
    /// What happened.
    pub outcome: StepOutcome,
}

/// The chosen interrupt setup.
#[derive(Debug)]
pub struct IrqPlan<G> {
    /// The mode in use.
    pub mode: IrqMode,
    /// Vectors granted.
    pub vectors: u32,
    /// What the source handed back.
    pub grant: G,
    /// Every step taken, in order, ending with the granted one.
    pub steps: Vec<PlanStep>,
}

impl<G> IrqPlan<G> {
    /// Whether the plan gave less than the best the function could do with
    /// the wanted count (fewer vectors, or a worse mode).
    pub fn is_degraded(&self) -> bool {
        self.steps.len() > 1
    }
}

/// Nothing worked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlanError {
    /// Zero vectors were asked for.
    ZeroVectors,
    /// No mode could be set up; the steps say why.
    NoInterrupt {
        /// Every step tried.
        steps: Vec<PlanStep>,
    },
}

impl core::fmt::Display for PlanError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ZeroVectors => write!(f, "zero interrupt vectors requested"),
            Self::NoInterrupt { steps } => {
                write!(f, "no interrupt mechanism available (")?;
                for (i, s) in steps.iter().enumerate() {
                    if i > 0 {
                        write!(f, "; ")?;
                    }
                    write!(f, "{} x{}: {:?}", s.mode, s.vectors, s.outcome)?;
                }
                write!(f, ")")
            }
        }
    }
}

impl std::error::Error for PlanError {}

/// Counts to try for a mode: `start`, then halved, down to 1.
fn halvings(start: u32) -> impl Iterator<Item = u32> {
    core::iter::successors((start > 0).then_some(start), |&n| (n > 1).then_some(n / 2))
}

struct Chain<'a, S: VectorSource> {
    source: &'a mut S,
    steps: Vec<PlanStep>,
}

impl<S: VectorSource> Chain<'_, S> {
    fn skip(&mut self, mode: IrqMode, outcome: StepOutcome) {
        match &outcome {
            StepOutcome::SkippedByQuirk(q) => log::warn!("irq plan: {mode} skipped by quirk {q}"),
            _ => log::info!("irq plan: function has no {mode}"),
        }
        self.steps.push(PlanStep {
            mode,
            vectors: 0,
            outcome,
        });
    }

    fn try_counts(
        &mut self,
        mode: IrqMode,
        counts: impl Iterator<Item = u32>,
    ) -> Option<(u32, S::Grant)> {
        for count in counts {
            match self.source.allocate(mode, count) {
                Ok(grant) => {
                    log::info!("irq plan: {mode} with {count} vector(s)");
                    self.steps.push(PlanStep {
                        mode,
                        vectors: count,
                        outcome: StepOutcome::Granted,
                    });
                    return Some((count, grant));
                }
                Err(e) => {
                    log::warn!("irq plan: {mode} with {count} vector(s) failed: {e}");
                    self.steps.push(PlanStep {
                        mode,
                        vectors: count,
                        outcome: StepOutcome::Refused(e.to_string()),
                    });
                }
            }
        }
        None
    }
}

/// Walks the degradation chain for `wanted` vectors; see the module docs.
pub fn plan_interrupts<S: VectorSource>(
    caps: &IrqCapabilities,
    quirks: QuirkFlags,
    wanted: u32,
    source: &mut S,
) -> Result<IrqPlan<S::Grant>, PlanError> {
    if wanted == 0 {
        return Err(PlanError::ZeroVectors);
    }
    let mut chain = Chain {
        source,
        steps: Vec::new(),
    };
    let legacy = quirks.contains(QuirkFlags::FORCE_LEGACY_IRQ);

    let msix_quirk = quirks & (QuirkFlags::NO_MSIX | QuirkFlags::FORCE_LEGACY_IRQ);
    match caps.msix_table_size {
        _ if legacy || quirks.contains(QuirkFlags::NO_MSIX) => {
            chain.skip(IrqMode::MsiX, StepOutcome::SkippedByQuirk(msix_quirk))
        }
        Some(size) if size > 0 => {
            let start = wanted.min(u32::from(size));
            if let Some((vectors, grant)) = chain.try_counts(IrqMode::MsiX, halvings(start)) {
                return Ok(IrqPlan {
                    mode: IrqMode::MsiX,
                    vectors,
                    grant,
                    steps: chain.steps,
                });
            }
        }
        _ => chain.skip(IrqMode::MsiX, StepOutcome::Unsupported),
    }

    let msi_quirk = quirks & (QuirkFlags::NO_MSI | QuirkFlags::FORCE_LEGACY_IRQ);
    match caps.msi_max_vectors {
        _ if legacy || quirks.contains(QuirkFlags::NO_MSI) => {
            chain.skip(IrqMode::Msi, StepOutcome::SkippedByQuirk(msi_quirk))
        }
        Some(max) if max > 0 => {
            let limit = wanted.min(max).min(32);
            // Largest power of two not above the limit.
            let start = 1u32 << (31 - limit.leading_zeros());
            if let Some((vectors, grant)) = chain.try_counts(IrqMode::Msi, halvings(start)) {
                return Ok(IrqPlan {
                    mode: IrqMode::Msi,
                    vectors,
                    grant,
                    steps: chain.steps,
                });
            }
        }
        _ => chain.skip(IrqMode::Msi, StepOutcome::Unsupported),
    }

    if caps.intx_pin.is_some() {
        if let Some((vectors, grant)) = chain.try_counts(IrqMode::Intx, halvings(1)) {
            return Ok(IrqPlan {
                mode: IrqMode::Intx,
                vectors,
                grant,
                steps: chain.steps,
            });
        }
    } else {
        chain.skip(IrqMode::Intx, StepOutcome::Unsupported);
    }
    log::warn!("irq plan: no interrupt mechanism could be set up");
    Err(PlanError::NoInterrupt { steps: chain.steps })
}

#[cfg(test)]
mod tests;
