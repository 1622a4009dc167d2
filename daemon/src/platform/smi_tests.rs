//! Both SMI paths against recording fakes.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use syscall::error::{EACCES, EINVAL, EIO, ENXIO, ETIMEDOUT, Error};

use super::test_doubles::{FakePorts, PortOp, SharedBuffer, SteppingClock};
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

// ---- calling interface ----

const PHYS: u64 = 0x0009_F000;
const CODE: u8 = 0xDA;

/// Fake firmware: keeps token values, answers class 0/1 select 0, counts
/// writes per token.
struct Firmware {
    values: std::collections::HashMap<u32, u32>,
    writes: Vec<(u32, u32)>,
    result: i32,
    raises: Vec<SmiRegisters>,
}

fn firmware(
    memory: Rc<RefCell<Vec<u8>>>,
    state: Rc<RefCell<Firmware>>,
) -> impl FnMut(SmiRegisters) {
    move |registers| {
        let mut state = state.borrow_mut();
        state.raises.push(registers);
        if registers.ebx as u64 != PHYS || registers.ecx != CALLING_INTERFACE_SIGNATURE {
            return;
        }
        let mut memory = memory.borrow_mut();
        let mut command = CallingInterfaceBuffer::decode(&memory[..]).unwrap();
        let input = command.input;
        let mut output = [0u32; 4];
        match (command.cmd_class, command.cmd_select) {
            (CLASS_TOKEN_READ, SELECT_TOKEN_STD) => {
                output[1] = state.values.get(&input[0]).copied().unwrap_or(0);
            }
            (CLASS_TOKEN_WRITE, SELECT_TOKEN_STD) => {
                state.values.insert(input[0], input[1]);
                state.writes.push((input[0], input[1]));
            }
            _ => output[0] = -2i32 as u32,
        }
        if state.result != 0 {
            output[0] = state.result as u32;
        }
        command.output = output;
        command.encode(&mut memory[..]).unwrap();
    }
}

struct Rig {
    ports: FakePorts,
    buffer: SharedBuffer,
    state: Rc<RefCell<Firmware>>,
}

fn rig(status: &[u8]) -> Rig {
    let buffer = SharedBuffer::new(PHYS, 64);
    let state = Rc::new(RefCell::new(Firmware {
        values: Default::default(),
        writes: Vec::new(),
        result: 0,
        raises: Vec::new(),
    }));
    let ports = FakePorts::with_status(status)
        .on_raise(firmware(Rc::clone(&buffer.memory), Rc::clone(&state)));
    Rig {
        ports,
        buffer,
        state,
    }
}

#[test]
fn calling_interface_buffer_layout() {
    let command = CallingInterfaceBuffer {
        cmd_class: 0x0102,
        cmd_select: 0x0304,
        input: [0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444],
        output: [5, 6, 7, 0xFFFF_FFFE],
    };
    let mut raw = [0xEEu8; 36];
    command.encode(&mut raw).unwrap();
    assert_eq!(&raw[0..2], &[0x02, 0x01]);
    assert_eq!(&raw[2..4], &[0x04, 0x03]);
    assert_eq!(&raw[4..8], &[0x11; 4]);
    assert_eq!(&raw[16..20], &[0x44; 4]);
    assert_eq!(&raw[20..24], &5u32.to_le_bytes());
    assert_eq!(&raw[32..36], &[0xFE, 0xFF, 0xFF, 0xFF]);
    assert_eq!(CallingInterfaceBuffer::decode(&raw), Some(command));
    assert_eq!(CallingInterfaceBuffer::decode(&raw[..35]), None);
    assert_eq!(command.encode(&mut [0u8; 35]), None);
}

#[test]
fn calling_interface_round_trip_and_registers() {
    let mut rig = rig(&[0x01]);
    let clock = SteppingClock::new(TICK);
    let mut smi = CallingInterface::new(
        rig.buffer_ref(),
        &mut rig.ports,
        &clock,
        CallingInterfaceConfig::new(CODE),
    )
    .unwrap();
    assert_eq!(smi.write_token(token(0x8010), 0xABCD), Ok(()));
    assert_eq!(smi.read_token(token(0x8010)), Ok(0xABCD));
    let state = rig.state.borrow();
    assert_eq!(state.writes, [(0x8010, 0xABCD)]);
    let expected = SmiRegisters {
        ebx: PHYS as u32,
        ecx: 0x4253_4931,
        command_port: 0xB2,
        command_code: CODE,
    };
    assert_eq!(state.raises, [expected, expected]);
}

impl Rig {
    /// A second handle on the shared buffer memory, so the rig keeps its own.
    fn buffer_ref(&self) -> SharedBuffer {
        SharedBuffer {
            phys: self.buffer.phys,
            memory: Rc::clone(&self.buffer.memory),
        }
    }
}

#[test]
fn calling_interface_uses_configured_port_and_synchronous_mode() {
    let mut rig = rig(&[]);
    let clock = SteppingClock::new(TICK);
    let mut config = CallingInterfaceConfig::new(CODE);
    config.command_port = 0x2B2;
    config.status_port = None;
    let mut smi = CallingInterface::new(rig.buffer_ref(), &mut rig.ports, &clock, config).unwrap();
    assert_eq!(smi.read_token(token(0x8000)), Ok(0));
    drop(smi);
    assert_eq!(rig.state.borrow().raises[0].command_port, 0x2B2);
    assert_eq!(rig.ports.status_reads(), 0, "synchronous: no polling");
}

#[test]
fn buffer_must_lie_below_4_gib() {
    let clock = SteppingClock::new(TICK);
    let config = CallingInterfaceConfig::new(CODE);
    for phys in [1u64 << 32, 0xFFFF_FFF0, u64::MAX - 10, 0x1_0000_1000] {
        let mut ports = FakePorts::with_status(&[0x01]);
        let error = CallingInterface::new(SharedBuffer::new(phys, 64), &mut ports, &clock, config)
            .map(|_| ())
            .unwrap_err();
        assert_eq!(error, SmiError::BadBuffer, "{phys:#x}");
        assert_eq!(Error::from(error), Error::new(EINVAL));
        assert!(ports.ops.is_empty());
    }
    // Ending exactly at 4 GiB is fine; a buffer shorter than 36 bytes is not.
    let mut ports = FakePorts::with_status(&[0x01]);
    assert!(
        CallingInterface::new(
            SharedBuffer::new((1 << 32) - 36, 36),
            &mut ports,
            &clock,
            config
        )
        .is_ok()
    );
    assert_eq!(
        CallingInterface::new(SharedBuffer::new(PHYS, 35), &mut ports, &clock, config)
            .map(|_| ())
            .unwrap_err(),
        SmiError::BadBuffer
    );
}

#[test]
fn calling_interface_quarantine_reaches_nothing() {
    let mut rig = rig(&[0x01]);
    rig.buffer.memory.borrow_mut().fill(0x5A);
    let clock = SteppingClock::new(TICK);
    let mut smi = CallingInterface::new(
        rig.buffer_ref(),
        &mut rig.ports,
        &clock,
        CallingInterfaceConfig::new(CODE),
    )
    .unwrap();
    for raw in QUARANTINED_TOKENS {
        assert_eq!(smi.write_token(token(raw), 1), Err(SmiError::Quarantined));
        assert_eq!(smi.read_token(token(raw)), Err(SmiError::Quarantined));
    }
    assert_eq!(smi.counters().refused, 10);
    drop(smi);
    assert!(rig.ports.ops.is_empty());
    assert!(!rig.ports.ops.iter().any(PortOp::is_write));
    assert!(rig.state.borrow().raises.is_empty());
    assert!(
        rig.buffer.memory.borrow().iter().all(|&b| b == 0x5A),
        "the command buffer was not even written"
    );
}

#[test]
fn calling_interface_failure_codes() {
    for (result, errno) in [(-1, EIO), (-2, ENXIO), (-7, EIO)] {
        let mut rig = rig(&[0x01]);
        rig.state.borrow_mut().result = result;
        let clock = SteppingClock::new(TICK);
        let mut smi = CallingInterface::new(
            rig.buffer_ref(),
            &mut rig.ports,
            &clock,
            CallingInterfaceConfig::new(CODE),
        )
        .unwrap();
        let error = smi.read_token(token(0x8020)).unwrap_err();
        assert_eq!(error, SmiError::CallFailed { result });
        assert_eq!(error.errno(), errno);
    }
}

#[test]
fn calling_interface_hang_is_etimedout() {
    let mut rig = rig(&[0x02]);
    let clock = SteppingClock::new(TICK);
    let mut config = CallingInterfaceConfig::new(CODE);
    config.policy = no_retries();
    let mut smi = CallingInterface::new(rig.buffer_ref(), &mut rig.ports, &clock, config).unwrap();
    let error = smi.write_token(token(0x8030), 5).unwrap_err();
    assert_eq!(error, SmiError::Hung { status: 0x02 });
    assert_eq!(Error::from(error), Error::new(ETIMEDOUT));
    drop(smi);
    assert_eq!(rig.ports.status_reads(), 10);
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
