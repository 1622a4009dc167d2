//! Both SMI paths against recording fakes.

use std::time::Duration;

use syscall::error::{EACCES, EINVAL, EIO, ETIMEDOUT, Error};

use super::test_doubles::{FakePorts, PortOp, SteppingClock};
use super::*;
use crate::wire::{QUARANTINED_TOKENS, Token};

const TICK: Duration = Duration::from_micros(10);

fn token(raw: u16) -> Token {
    Token::new(raw).unwrap()
}

fn no_retries() -> SmiPolicy {
    SmiPolicy::new(DEFAULT_SMI_BUDGET, DEFAULT_HANG_POLLS, 0).unwrap()
}

fn legacy<'a>(
    ports: &'a mut FakePorts,
    clock: &'a SteppingClock,
    policy: SmiPolicy,
) -> LegacySmi<&'a mut FakePorts, &'a SteppingClock> {
    LegacySmi::new(ports, clock, policy)
}

#[test]
fn legacy_read_port_sequence() {
    let mut ports = FakePorts::with_status(&[0x01]);
    ports.data_value = 0xCAFE_F00D;
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default());
    assert_eq!(smi.read_token(token(0x8000)), Ok(0xCAFE_F00D));
    assert_eq!(smi.counters().operations, 1);
    assert_eq!(
        ports.ops,
        [
            PortOp::Outw(0x164E, 0x8000),
            PortOp::Outb(0xB2, 1),
            PortOp::Inb(0xB3),
            PortOp::Inl(0x164F),
        ]
    );
}

#[test]
fn legacy_write_port_sequence_after_busy_polls() {
    let mut ports = FakePorts::with_status(&[0x02, 0x02, 0x04, 0x41]);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default());
    assert_eq!(smi.write_token(token(0x806B), 0x1234_5678), Ok(()));
    assert_eq!(
        ports.ops,
        [
            PortOp::Outw(0x164E, 0x806B),
            PortOp::Outl(0x164F, 0x1234_5678),
            PortOp::Outb(0xB2, 2),
            PortOp::Inb(0xB3),
            PortOp::Inb(0xB3),
            PortOp::Inb(0xB3),
            PortOp::Inb(0xB3),
        ]
    );
}

#[test]
fn firmware_error_bit_is_eio_without_retry() {
    let mut ports = FakePorts::with_status(&[0x02, 0x81]);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default());
    let error = smi.read_token(token(0x8001)).unwrap_err();
    assert_eq!(error, SmiError::Firmware { status: 0x81 });
    assert_eq!(Error::from(error), Error::new(EIO));
    assert_eq!(smi.counters().errors, 1);
    assert_eq!(ports.raises(), 1, "a firmware answer is final");
    assert!(
        !ports.ops.contains(&PortOp::Inl(LEGACY_DATA_PORT)),
        "no data read on failure"
    );
}

#[test]
fn invalid_status_is_eio() {
    for stuck in [0x00, 0xFF] {
        let mut ports = FakePorts::with_status(&[stuck]);
        let clock = SteppingClock::new(TICK);
        let mut smi = legacy(&mut ports, &clock, no_retries());
        let error = smi.read_token(token(0x8002)).unwrap_err();
        assert_eq!(error, SmiError::InvalidStatus { status: stuck });
        assert_eq!(error.errno(), EIO);
        assert_eq!(ports.status_reads(), 10);
    }
}

#[test]
fn hung_after_ten_identical_polls() {
    let mut ports = FakePorts::with_status(&[0x02]);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, no_retries());
    let error = smi.write_token(token(0x8003), 1).unwrap_err();
    assert_eq!(error, SmiError::Hung { status: 0x02 });
    assert_eq!(Error::from(error), Error::new(ETIMEDOUT));
    assert_eq!(smi.counters().timeouts, 1);
    assert_eq!(ports.status_reads(), 10);
}

#[test]
fn nine_identical_polls_are_not_a_hang() {
    let mut script = vec![0x02; 9];
    script.push(0x01);
    let mut ports = FakePorts::with_status(&script);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, no_retries());
    assert_eq!(smi.write_token(token(0x8003), 1), Ok(()));
    assert_eq!(ports.status_reads(), 10);
}

#[test]
fn changing_busy_status_resets_hang_detection() {
    // 0x02 ×9, 0x04 ×9, then done: 18 busy polls, never 10 identical.
    let mut script = vec![0x02; 9];
    script.extend([0x04; 9]);
    script.push(0x01);
    let mut ports = FakePorts::with_status(&script);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, no_retries());
    assert_eq!(smi.write_token(token(0x8004), 1), Ok(()));
}

#[test]
fn hung_attempts_are_retried_then_fail() {
    let mut ports = FakePorts::with_status(&[0x02]);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default()); // 2 retries
    let error = smi.read_token(token(0x8005)).unwrap_err();
    assert_eq!(error, SmiError::Hung { status: 0x02 });
    let counters = smi.counters();
    assert_eq!(
        (counters.raised, counters.retries, counters.timeouts),
        (3, 2, 1)
    );
    assert_eq!(ports.raises(), 3, "each retry repeats the whole sequence");
    assert_eq!(
        ports
            .ops
            .iter()
            .filter(|op| **op == PortOp::Outw(0x164E, 0x8005))
            .count(),
        3
    );
    assert_eq!(ports.status_reads(), 30);
}

#[test]
fn retry_can_succeed() {
    let mut script = vec![0x02; 10];
    script.push(0x01);
    let mut ports = FakePorts::with_status(&script);
    ports.data_value = 77;
    let clock = SteppingClock::new(TICK);
    let policy = SmiPolicy::new(DEFAULT_SMI_BUDGET, DEFAULT_HANG_POLLS, 1).unwrap();
    let mut smi = legacy(&mut ports, &clock, policy);
    assert_eq!(smi.read_token(token(0x8006)), Ok(77));
    assert_eq!(smi.counters().retries, 1);
    assert_eq!(ports.raises(), 2);
}

#[test]
fn budget_exceeded_is_etimedout() {
    // A status that keeps changing is never "hung"; only the clock stops it.
    // Each clock read advances 1 ms: the 50 ms budget runs out after ~50 polls.
    let mut ports = FakePorts::cycling(&[0x02, 0x04]);
    let clock = SteppingClock::new(Duration::from_millis(1));
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default());
    let error = smi.read_token(token(0x8007)).unwrap_err();
    match error {
        SmiError::BudgetExceeded { elapsed } => assert!(elapsed > DEFAULT_SMI_BUDGET),
        other => panic!("expected BudgetExceeded, got {other:?}"),
    }
    assert_eq!(error.errno(), ETIMEDOUT);
    let polls = ports.status_reads();
    assert!((50..=52).contains(&polls), "{polls} polls");
    assert_eq!(ports.raises(), 1, "an exhausted budget is not retried");
}

#[test]
fn retries_share_one_budget() {
    // Hung attempts of 10 polls at 2 ms per clock read: the budget runs
    // out during the third attempt even though 5 retries are allowed.
    let mut ports = FakePorts::with_status(&[0x02]);
    let clock = SteppingClock::new(Duration::from_millis(2));
    let policy = SmiPolicy::new(DEFAULT_SMI_BUDGET, DEFAULT_HANG_POLLS, 5).unwrap();
    let mut smi = legacy(&mut ports, &clock, policy);
    let error = smi.read_token(token(0x8008)).unwrap_err();
    assert!(
        matches!(error, SmiError::BudgetExceeded { .. }),
        "{error:?}"
    );
    assert_eq!(ports.raises(), 3);
}

#[test]
fn policy_validation() {
    assert_eq!(
        SmiPolicy::new(Duration::ZERO, 10, 0),
        Err(Error::new(EINVAL))
    );
    assert_eq!(
        SmiPolicy::new(DEFAULT_SMI_BUDGET, 1, 0),
        Err(Error::new(EINVAL))
    );
    let policy = SmiPolicy::default();
    assert_eq!(
        (policy.budget(), policy.hang_polls(), policy.retries()),
        (Duration::from_millis(50), 10, 2)
    );
}

#[test]
fn legacy_quarantine_touches_no_port() {
    let mut ports = FakePorts::with_status(&[0x01]);
    let clock = SteppingClock::new(TICK);
    let mut smi = legacy(&mut ports, &clock, SmiPolicy::default());
    for raw in QUARANTINED_TOKENS {
        let t = token(raw);
        assert_eq!(smi.write_token(t, 0xDEAD), Err(SmiError::Quarantined));
        assert_eq!(smi.read_token(t), Err(SmiError::Quarantined));
        assert_eq!(Error::from(SmiError::Quarantined), Error::new(EACCES));
    }
    let counters = smi.counters();
    assert_eq!(
        (counters.refused, counters.operations, counters.raised),
        (10, 0, 0)
    );
    assert!(
        ports.ops.is_empty(),
        "not a single port access: {:?}",
        ports.ops
    );
}

#[test]
fn token_io_is_object_safe_and_shared_by_both_paths() {
    let mut ports = FakePorts::with_status(&[0x01]);
    let clock = SteppingClock::new(TICK);
    let mut legacy_path = legacy(&mut ports, &clock, SmiPolicy::default());
    let path: &mut dyn TokenIo = &mut legacy_path;
    assert_eq!(path.read_token(token(0x8029)), Err(SmiError::Quarantined));
    assert_eq!(path.write_token(token(0x8028), 3), Ok(()));
}
