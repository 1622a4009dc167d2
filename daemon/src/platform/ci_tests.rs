//! The Dell calling interface against a recording fake firmware that keeps
//! token values by DMI *location*.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;

use syscall::error::{EINVAL, EIO, ENXIO, Error};

use super::test_doubles::{FakePorts, PortOp, SharedBuffer};
use super::*;
use crate::wire::{QUARANTINED_TOKENS, Token};

const PHYS: u64 = 0x0009_F000;
const CODE: u8 = 0xDA;

fn token(raw: u16) -> Token {
    Token::new(raw).unwrap()
}

/// The table of these tests: token `t` lives at `0x0400 + (t & 0xFF)` and is set
/// to `t & 0x0F`; quarantined tokens are listed too (the table comes from firmware).
fn table() -> Vec<DmiToken> {
    Token::all()
        .map(|t| DmiToken {
            token: t.raw(),
            location: 0x0400 + (t.raw() & 0xFF),
            value: t.raw() & 0x0F,
        })
        .collect()
}

/// Fake firmware: values by location, class 0/1 select 0, `output[0]` forced
/// to `result` when non-zero, nothing written back when `silent`.
#[derive(Default)]
struct Firmware {
    values: HashMap<u32, u32>,
    writes: Vec<(u32, u32)>,
    result: i32,
    silent: bool,
    raises: Vec<SmiRegisters>,
}

fn firmware(
    memory: Rc<RefCell<Vec<u8>>>,
    state: Rc<RefCell<Firmware>>,
) -> impl FnMut(SmiRegisters) {
    move |registers| {
        let mut state = state.borrow_mut();
        state.raises.push(registers);
        if state.silent
            || registers.ebx as u64 != PHYS
            || registers.ecx != CALLING_INTERFACE_SIGNATURE
        {
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

impl Rig {
    fn new() -> Rig {
        let buffer = SharedBuffer::new(PHYS, 64);
        let state = Rc::new(RefCell::new(Firmware::default()));
        // A status port that would say "busy" for ever: polling it would hang.
        let ports = FakePorts::with_status(&[0x02])
            .on_raise(firmware(Rc::clone(&buffer.memory), Rc::clone(&state)));
        Rig {
            ports,
            buffer,
            state,
        }
    }

    /// A second handle on the shared buffer memory, so the rig keeps its own.
    fn buffer_ref(&self) -> SharedBuffer {
        SharedBuffer {
            phys: self.buffer.phys,
            memory: Rc::clone(&self.buffer.memory),
        }
    }

    fn interface(&mut self) -> CallingInterface<SharedBuffer, &mut FakePorts> {
        let buffer = self.buffer_ref();
        CallingInterface::new(
            buffer,
            &mut self.ports,
            CallingInterfaceConfig::new(CODE),
            table(),
        )
        .unwrap()
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
fn token_write_uses_the_tables_location_and_value_synchronously() {
    let mut rig = Rig::new();
    let mut smi = rig.interface();
    assert_eq!(smi.write_token(token(0x801A), 0x0A), Ok(()));
    assert_eq!(smi.read_token(token(0x801A)), Ok(0x0A));
    drop(smi);
    let state = rig.state.borrow();
    assert_eq!(
        state.writes,
        [(0x041A, 0x0A)],
        "location and value from the table"
    );
    let expected = SmiRegisters {
        ebx: PHYS as u32,
        ecx: 0x4253_4931,
        command_port: 0xB2,
        command_code: CODE,
    };
    assert_eq!(state.raises, [expected, expected]);
    assert_eq!(
        rig.ports.status_reads(),
        0,
        "synchronous: no status polling"
    );
}

#[test]
fn only_the_table_value_and_table_tokens_can_be_written() {
    let mut rig = Rig::new();
    let mut smi = CallingInterface::new(
        rig.buffer_ref(),
        &mut rig.ports,
        CallingInterfaceConfig::new(CODE),
        vec![DmiToken {
            token: 0x8001,
            location: 0x10,
            value: 1,
        }],
    )
    .unwrap();
    let wrong = smi.write_token(token(0x8001), 7).unwrap_err();
    assert_eq!(wrong, SmiError::NotTheTokenValue { value: 1 });
    assert_eq!(Error::from(wrong), Error::new(EINVAL));
    let absent = smi.read_token(token(0x8002)).unwrap_err();
    assert_eq!((absent, absent.errno()), (SmiError::NotInTokenTable, ENXIO));
    drop(smi);
    assert!(
        rig.state.borrow().raises.is_empty(),
        "nothing reached firmware"
    );
}

#[test]
fn uses_the_configured_port() {
    let mut rig = Rig::new();
    let mut config = CallingInterfaceConfig::new(CODE);
    config.command_port = 0x2B2;
    let mut smi = CallingInterface::new(rig.buffer_ref(), &mut rig.ports, config, table()).unwrap();
    assert_eq!(smi.read_token(token(0x8000)), Ok(0));
    drop(smi);
    assert_eq!(rig.state.borrow().raises[0].command_port, 0x2B2);
}

#[test]
fn buffer_must_lie_below_4_gib() {
    let config = CallingInterfaceConfig::new(CODE);
    for phys in [1u64 << 32, 0xFFFF_FFF0, u64::MAX - 10, 0x1_0000_1000] {
        let mut ports = FakePorts::with_status(&[0x01]);
        let error = CallingInterface::new(SharedBuffer::new(phys, 64), &mut ports, config, table())
            .map(|_| ())
            .unwrap_err();
        assert_eq!(error, SmiError::BadBuffer, "{phys:#x}");
        assert_eq!(Error::from(error), Error::new(EINVAL));
        assert!(ports.ops.is_empty());
    }
    // Ending exactly at 4 GiB is fine; a buffer shorter than 36 bytes is not.
    let mut ports = FakePorts::with_status(&[0x01]);
    let end = SharedBuffer::new((1 << 32) - 36, 36);
    assert!(CallingInterface::new(end, &mut ports, config, table()).is_ok());
    assert_eq!(
        CallingInterface::new(SharedBuffer::new(PHYS, 35), &mut ports, config, table())
            .map(|_| ())
            .unwrap_err(),
        SmiError::BadBuffer
    );
}

#[test]
fn quarantine_reaches_nothing() {
    let mut rig = Rig::new();
    rig.buffer.memory.borrow_mut().fill(0x5A);
    let mut smi = rig.interface();
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
fn result_codes_come_from_output_0() {
    for (result, errno) in [(-1, EIO), (-2, ENXIO), (-7, EINVAL), (3, EINVAL)] {
        let mut rig = Rig::new();
        rig.state.borrow_mut().result = result;
        let mut smi = rig.interface();
        let error = smi.read_token(token(0x8020)).unwrap_err();
        assert_eq!(error, SmiError::CallFailed { result });
        assert_eq!(error.errno(), errno);
    }
}

#[test]
fn firmware_that_did_not_run_is_eio_not_success() {
    let mut rig = Rig::new();
    rig.state.borrow_mut().silent = true;
    let mut smi = rig.interface();
    let error = smi.write_token(token(0x8030), 0).unwrap_err();
    assert_eq!((error, error.errno()), (SmiError::NoAnswer, EIO));
}
