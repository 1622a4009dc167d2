use super::*;
use crate::vector::{CpuMask, VectorError, VectorMatrix, alloc_spread};

fn full_caps() -> IrqCapabilities {
    IrqCapabilities {
        msix_table_size: Some(16),
        msi_max_vectors: Some(8),
        intx_pin: Some(1),
    }
}

/// A source that grants `(mode, count)` when `ok` says so and records calls.
struct Scripted<F: FnMut(IrqMode, u32) -> bool> {
    ok: F,
    calls: Vec<(IrqMode, u32)>,
}

impl<F: FnMut(IrqMode, u32) -> bool> VectorSource for Scripted<F> {
    type Grant = (IrqMode, u32);
    type Error = &'static str;
    fn allocate(&mut self, mode: IrqMode, count: u32) -> Result<Self::Grant, Self::Error> {
        self.calls.push((mode, count));
        if (self.ok)(mode, count) {
            Ok((mode, count))
        } else {
            Err("no vectors")
        }
    }
}

fn scripted<F: FnMut(IrqMode, u32) -> bool>(ok: F) -> Scripted<F> {
    Scripted {
        ok,
        calls: Vec::new(),
    }
}

fn step(mode: IrqMode, vectors: u32, outcome: StepOutcome) -> PlanStep {
    PlanStep {
        mode,
        vectors,
        outcome,
    }
}

fn refused(mode: IrqMode, vectors: u32) -> PlanStep {
    step(mode, vectors, StepOutcome::Refused("no vectors".into()))
}

#[test]
fn msix_with_everything_wanted() {
    let mut s = scripted(|_, _| true);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::empty(), 8, &mut s).unwrap();
    assert_eq!(
        (plan.mode, plan.vectors, plan.grant),
        (IrqMode::MsiX, 8, (IrqMode::MsiX, 8))
    );
    assert_eq!(
        plan.steps,
        vec![step(IrqMode::MsiX, 8, StepOutcome::Granted)]
    );
    assert!(!plan.is_degraded());
}

#[test]
fn msix_is_capped_by_table_size_then_halved() {
    let mut s = scripted(|mode, n| mode == IrqMode::MsiX && n <= 4);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::empty(), 64, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::MsiX, 4));
    assert_eq!(
        plan.steps,
        vec![
            refused(IrqMode::MsiX, 16),
            refused(IrqMode::MsiX, 8),
            step(IrqMode::MsiX, 4, StepOutcome::Granted)
        ]
    );
    assert!(plan.is_degraded());
}

#[test]
fn non_power_of_two_msix_then_msi_powers_of_two() {
    // MSI-X refused at every size; MSI takes 4 of the wanted 6.
    let mut s = scripted(|mode, n| mode == IrqMode::Msi && n <= 4);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::empty(), 6, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Msi, 4));
    assert_eq!(
        s.calls,
        vec![
            (IrqMode::MsiX, 6),
            (IrqMode::MsiX, 3),
            (IrqMode::MsiX, 1),
            (IrqMode::Msi, 4)
        ]
    );
}

#[test]
fn msi_halves_down_to_one_then_intx() {
    let mut s = scripted(|mode, _| mode == IrqMode::Intx);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::empty(), 32, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Intx, 1));
    let modes: Vec<(IrqMode, u32)> = plan.steps.iter().map(|s| (s.mode, s.vectors)).collect();
    assert_eq!(
        modes,
        vec![
            (IrqMode::MsiX, 16),
            (IrqMode::MsiX, 8),
            (IrqMode::MsiX, 4),
            (IrqMode::MsiX, 2),
            (IrqMode::MsiX, 1),
            (IrqMode::Msi, 8),
            (IrqMode::Msi, 4),
            (IrqMode::Msi, 2),
            (IrqMode::Msi, 1),
            (IrqMode::Intx, 1),
        ]
    );
}

#[test]
fn no_msix_quirk_goes_straight_to_msi() {
    let mut s = scripted(|_, _| true);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::NO_MSIX, 8, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Msi, 8));
    assert_eq!(
        plan.steps[0],
        step(
            IrqMode::MsiX,
            0,
            StepOutcome::SkippedByQuirk(QuirkFlags::NO_MSIX)
        )
    );
    assert!(
        s.calls.iter().all(|(m, _)| *m != IrqMode::MsiX),
        "MSI-X never tried"
    );
}

#[test]
fn no_msi_quirk_still_uses_msix_but_skips_msi() {
    let mut s = scripted(|_, _| true);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::NO_MSI, 2, &mut s).unwrap();
    assert_eq!(plan.mode, IrqMode::MsiX);

    let mut s = scripted(|mode, _| mode != IrqMode::MsiX);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::NO_MSI, 1, &mut s).unwrap();
    assert_eq!(plan.mode, IrqMode::Intx);
    assert_eq!(
        plan.steps,
        vec![
            refused(IrqMode::MsiX, 1),
            step(
                IrqMode::Msi,
                0,
                StepOutcome::SkippedByQuirk(QuirkFlags::NO_MSI)
            ),
            step(IrqMode::Intx, 1, StepOutcome::Granted),
        ]
    );
}

#[test]
fn force_legacy_skips_both_message_modes() {
    let mut s = scripted(|_, _| true);
    let plan = plan_interrupts(&full_caps(), QuirkFlags::FORCE_LEGACY_IRQ, 8, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Intx, 1));
    let q = QuirkFlags::FORCE_LEGACY_IRQ;
    assert_eq!(
        plan.steps,
        vec![
            step(IrqMode::MsiX, 0, StepOutcome::SkippedByQuirk(q)),
            step(IrqMode::Msi, 0, StepOutcome::SkippedByQuirk(q)),
            step(IrqMode::Intx, 1, StepOutcome::Granted),
        ]
    );
    assert_eq!(s.calls, vec![(IrqMode::Intx, 1)]);
}

#[test]
fn dma_quirks_do_not_change_the_chain() {
    for q in [QuirkFlags::NO_IOMMU, QuirkFlags::DMA_32BIT_ONLY] {
        let mut s = scripted(|_, _| true);
        let plan = plan_interrupts(&full_caps(), q, 4, &mut s).unwrap();
        assert_eq!(
            (plan.mode, plan.vectors, plan.steps.len()),
            (IrqMode::MsiX, 4, 1)
        );
    }
}

#[test]
fn missing_capabilities_are_recorded_as_unsupported() {
    let caps = IrqCapabilities {
        msix_table_size: None,
        msi_max_vectors: Some(1),
        intx_pin: None,
    };
    let mut s = scripted(|_, _| true);
    let plan = plan_interrupts(&caps, QuirkFlags::empty(), 4, &mut s).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Msi, 1));
    assert_eq!(
        plan.steps[0],
        step(IrqMode::MsiX, 0, StepOutcome::Unsupported)
    );
}

#[test]
fn nothing_available_is_an_error_listing_every_step() {
    let caps = IrqCapabilities {
        msix_table_size: Some(4),
        msi_max_vectors: None,
        intx_pin: None,
    };
    let mut s = scripted(|_, _| false);
    let err = plan_interrupts(&caps, QuirkFlags::empty(), 2, &mut s).unwrap_err();
    let PlanError::NoInterrupt { steps } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(
        steps,
        &vec![
            refused(IrqMode::MsiX, 2),
            refused(IrqMode::MsiX, 1),
            step(IrqMode::Msi, 0, StepOutcome::Unsupported),
            step(IrqMode::Intx, 0, StepOutcome::Unsupported),
        ]
    );
    assert!(err.to_string().contains("MSI-X x2"));
    let mut s = scripted(|_, _| true);
    assert_eq!(
        plan_interrupts(&caps, QuirkFlags::empty(), 0, &mut s).unwrap_err(),
        PlanError::ZeroVectors
    );
}

#[test]
fn capabilities_from_parsed_structures() {
    let msix = MsixCapability::from_registers(0x70, 31, 0, 0x1000).unwrap();
    let msi = MsiCapability::from_control(0x50, 4 << 1).unwrap();
    let caps = IrqCapabilities::from_capabilities(Some(&msix), Some(&msi), 2);
    assert_eq!(
        caps,
        IrqCapabilities {
            msix_table_size: Some(32),
            msi_max_vectors: Some(16),
            intx_pin: Some(2)
        }
    );
    assert_eq!(
        IrqCapabilities::from_capabilities(None, None, 0).intx_pin,
        None
    );
    assert_eq!(
        IrqCapabilities::from_capabilities(None, None, 5).intx_pin,
        None
    );
}

/// Two CPUs with 3 free vectors each: 0x40..=0x42 on CPU 0, 0x50..=0x52 on CPU 1.
fn nearly_full_matrix() -> VectorMatrix {
    let m = VectorMatrix::new(2).unwrap();
    while m.alloc_on(0).is_ok() {}
    while m.alloc_on(1).is_ok() {}
    for v in [0x40, 0x41, 0x42] {
        m.free(0, crate::vector::Vector(v)).unwrap();
    }
    for v in [0x50, 0x51, 0x52] {
        m.free(1, crate::vector::Vector(v)).unwrap();
    }
    m
}

fn matrix_source(m: &VectorMatrix) -> impl FnMut(IrqMode, u32) -> Result<u32, VectorError> + '_ {
    let all = CpuMask::first(2);
    move |mode, n| match mode {
        IrqMode::MsiX => alloc_spread(m, n as usize, &all, 0).map(|v| v.len() as u32),
        IrqMode::Msi => m.alloc_block(&all, n).map(|b| b.count),
        IrqMode::Intx => Ok(1),
    }
}

#[test]
fn msix_degrades_against_a_nearly_full_vector_matrix() {
    // MSI-X wants 8: 8 fails (and is rolled back), 4 fits across both CPUs.
    let m = nearly_full_matrix();
    let plan =
        plan_interrupts(&full_caps(), QuirkFlags::empty(), 8, &mut matrix_source(&m)).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::MsiX, 4));
    assert_eq!(
        m.free_count(0).unwrap() + m.free_count(1).unwrap(),
        2,
        "failed attempt rolled back"
    );
}

#[test]
fn msi_degrades_to_the_largest_aligned_block_that_fits() {
    // MSI needs an aligned block: 8 and 4 do not fit, 0x40..=0x41 does.
    let m = nearly_full_matrix();
    let plan =
        plan_interrupts(&full_caps(), QuirkFlags::NO_MSIX, 8, &mut matrix_source(&m)).unwrap();
    assert_eq!((plan.mode, plan.vectors), (IrqMode::Msi, 2));
    assert_eq!(plan.steps.len(), 4);
    assert_eq!(m.is_allocated(0, crate::vector::Vector(0x40)), Ok(true));
    assert_eq!(m.is_allocated(0, crate::vector::Vector(0x42)), Ok(false));
}
