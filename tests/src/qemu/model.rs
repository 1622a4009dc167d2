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

/// Every model the suite runs.
pub const MODELS: &[Model] = &[AMD_VI];

/// The model called `name`.
pub fn model(name: &str) -> Option<&'static Model> {
    MODELS.iter().find(|m| m.name == name)
}
