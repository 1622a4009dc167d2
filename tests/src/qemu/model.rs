//! The IOMMU models the QEMU suite runs on, and their scenarios.
//!
//! One boot per model runs every scenario of that model (a boot costs seconds under
//! TCG). The guest learns its model from the kernel command line
//! (`dsmil.model=<name>`). To add a model: a [`Model`] here, its entry in [`MODELS`],
//! and a scenario module under [`super::guest`] dispatched in `guest::run_model`.

/// How the harness treats a scenario's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Must pass.
    Pass,
    /// Needs work that has not landed yet: the guest reports NOT-YET-AVAILABLE
    /// (never PASS) until then; a PASS is accepted too, a FAIL is not.
    NotYetAvailable,
}

/// One scenario: its name (as printed) and what the harness expects of it.
#[derive(Clone, Copy, Debug)]
pub struct Scenario {
    /// Name in the result line.
    pub name: &'static str,
    /// Expected outcome.
    pub expect: Expect,
    /// One line for the log: what it shows.
    pub what: &'static str,
}

/// An IOMMU model QEMU emulates.
#[derive(Clone, Copy, Debug)]
pub struct Model {
    /// Name on the kernel command line and in result lines.
    pub name: &'static str,
    /// `-device` arguments for the IOMMU (it must come before the devices it covers).
    pub iommu_device: &'static str,
    /// `-device` arguments for edu (a full DMA mask: iommud's IOVAs start at 4 GiB).
    pub edu_device: &'static str,
    /// Scenarios, in the order the guest runs them.
    pub scenarios: &'static [Scenario],
    /// What QEMU's model cannot show, printed with the results.
    pub caveat: &'static str,
}

const fn must(name: &'static str, what: &'static str) -> Scenario {
    Scenario {
        name,
        expect: Expect::Pass,
        what,
    }
}

/// QEMU's `amd-iommu` (AMD-Vi).
pub const AMD_VI: Model = Model {
    name: "amd-vi",
    iommu_device: "amd-iommu",
    edu_device: "edu,dma_mask=0xffffffffffffffff",
    scenarios: &[
        must(
            "unit-up",
            "iommud brings the unit up: device table, command ring, completion-wait store",
        ),
        must(
            "dma-lands",
            "edu DMA through mapped IOVAs lands, bytes checked",
        ),
        must(
            "unmapped-blocked",
            "DMA to an unmapped IOVA changes nothing (canary intact)",
        ),
        must(
            "readonly-blocked",
            "a DMA write through a read-only mapping changes nothing (canary intact)",
        ),
        must(
            "strict-unmap",
            "after a strict UNMAP the device no longer reaches the page",
        ),
        must(
            "lazy-unmap",
            "after a lazy UNMAP the page stays reachable until the flush, then not",
        ),
        must(
            "remap",
            "an IOVA unmapped and mapped again reaches only the new page",
        ),
        must(
            "superpage-2m",
            "a 2 MiB mapping is reached across its extent",
        ),
        must(
            "ring-wrap",
            "the command ring wraps (QEMU may report head = ring size) and keeps working",
        ),
        must(
            "domain-move",
            "a device moved to another domain reaches only the new domain's pages",
        ),
        must(
            "domain-move-channel",
            "a device moved by ASSIGN with its pcid channel reaches only the new domain's pages",
        ),
        must(
            "detach",
            "after UNASSIGN the device no longer reaches pages it had just used",
        ),
        must(
            "passthrough-unheld",
            "a device no domain holds is in passthrough (DESIGN §5's default)",
        ),
    ],
    caveat: "QEMU 7.2 never writes AMD-Vi event log entries (its amdvi_test_mask bug), so \
             fault scenarios prove blocking by the data that did not arrive, not by a fault record",
};

/// The scenarios of QEMU's `intel-iommu`: VT-d's bring-up, a blocked DMA
/// showing up as a recorded fault, and every DMA scenario of AMD-Vi.
const VTD_SCENARIOS: &[Scenario] = &[
    must(
        "unit-up",
        "iommud finds the unit in QEMU's DMAR: TE, QI and the root table on, edu's context entry in its domain",
    ),
    must(
        "fault-recorded",
        "a DMA write through a read-only mapping is blocked and its fault record (reason 5) is drained",
    ),
    must(
        "dma-lands",
        "edu DMA through mapped IOVAs lands, bytes checked",
    ),
    must(
        "unmapped-blocked",
        "DMA to an unmapped IOVA changes nothing (canary intact)",
    ),
    must(
        "readonly-blocked",
        "a DMA write through a read-only mapping changes nothing (canary intact)",
    ),
    must(
        "strict-unmap",
        "after a strict UNMAP the device no longer reaches the page",
    ),
    must(
        "lazy-unmap",
        "after a lazy UNMAP the page stays reachable until the flush, then not",
    ),
    must(
        "remap",
        "an IOVA unmapped and mapped again reaches only the new page",
    ),
    must(
        "superpage-2m",
        "a 2 MiB mapping is reached across its extent",
    ),
    must(
        "ring-wrap",
        "the 256-entry invalidation queue wraps and keeps working",
    ),
    must(
        "domain-move",
        "a device moved to another domain reaches only the new domain's pages",
    ),
    must(
        "domain-move-channel",
        "a device moved by ASSIGN with its pcid channel reaches only the new domain's pages",
    ),
    must(
        "detach",
        "after UNASSIGN the device no longer reaches pages it had just used",
    ),
    must(
        "passthrough-unheld",
        "a device no domain holds is in pass-through (TT=10)",
    ),
];

/// What QEMU's VT-d cannot show.
const VTD_CAVEAT: &str = concat!(
    "QEMU 7.2's VT-d has one fault record and collapses faults of one source id ",
    "while it is pending; interrupt remapping is off (intremap=off), so the guest ",
    "kernel leaves the unit alone"
);

/// QEMU's `intel-iommu` (VT-d, 39-bit, no caching mode).
pub const INTEL_VTD: Model = Model {
    name: "intel-iommu",
    iommu_device: "intel-iommu,intremap=off",
    edu_device: "edu,dma_mask=0xffffffffffffffff",
    scenarios: VTD_SCENARIOS,
    caveat: VTD_CAVEAT,
};

/// QEMU's `intel-iommu` with `caching-mode=on`: iommud must invalidate after
/// making entries present.
pub const INTEL_VTD_CM: Model = Model {
    name: "intel-iommu-cm",
    iommu_device: "intel-iommu,intremap=off,caching-mode=on",
    edu_device: "edu,dma_mask=0xffffffffffffffff",
    scenarios: VTD_SCENARIOS,
    caveat: VTD_CAVEAT,
};

/// Every model the suite runs.
pub const MODELS: &[Model] = &[AMD_VI, INTEL_VTD, INTEL_VTD_CM];

/// The model called `name`.
pub fn model(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}
