//! Fakes for the platform traits: a port recorder with scripted status
//! reads, a stepping clock, shared "physical" memory for the calling
//! interface, and a physmap that counts live mappings.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Duration;

use syscall::error::Result;

use super::*;

/// Every port access and SMI, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PortOp {
    Inb(u16),
    Outb(u16, u8),
    Inw(u16),
    Outw(u16, u16),
    Inl(u16),
    Outl(u16, u32),
    Raise(SmiRegisters),
}

impl PortOp {
    pub(crate) fn is_write(&self) -> bool {
        matches!(
            self,
            PortOp::Outb(..) | PortOp::Outw(..) | PortOp::Outl(..) | PortOp::Raise(_)
        )
    }
}

type Firmware = Box<dyn FnMut(SmiRegisters)>;

/// Records everything; status-port reads follow a script (the last value
/// repeats, or the script cycles).
pub(crate) struct FakePorts {
    pub(crate) ops: Vec<PortOp>,
    status_script: Vec<u8>,
    cycle: bool,
    next_status: usize,
    pub(crate) data_value: u32,
    firmware: Option<Firmware>,
}

impl FakePorts {
    pub(crate) fn with_status(script: &[u8]) -> FakePorts {
        FakePorts {
            ops: Vec::new(),
            status_script: script.to_vec(),
            cycle: false,
            next_status: 0,
            data_value: 0,
            firmware: None,
        }
    }

    pub(crate) fn cycling(script: &[u8]) -> FakePorts {
        FakePorts {
            cycle: true,
            ..FakePorts::with_status(script)
        }
    }

    pub(crate) fn on_raise(mut self, firmware: impl FnMut(SmiRegisters) + 'static) -> FakePorts {
        self.firmware = Some(Box::new(firmware));
        self
    }

    pub(crate) fn status_reads(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, PortOp::Inb(SMI_STATUS_PORT)))
            .count()
    }

    pub(crate) fn raises(&self) -> usize {
        self.ops
            .iter()
            .filter(|op| matches!(op, PortOp::Outb(SMI_COMMAND_PORT, _) | PortOp::Raise(_)))
            .count()
    }

    fn status(&mut self) -> u8 {
        let len = self.status_script.len();
        if len == 0 {
            return 0xFF;
        }
        let index = if self.cycle {
            self.next_status % len
        } else {
            self.next_status.min(len - 1)
        };
        self.next_status += 1;
        self.status_script[index]
    }
}

impl PortIo for FakePorts {
    fn inb(&mut self, port: u16) -> u8 {
        self.ops.push(PortOp::Inb(port));
        if port == SMI_STATUS_PORT {
            self.status()
        } else {
            0xFF
        }
    }
    fn outb(&mut self, port: u16, value: u8) {
        self.ops.push(PortOp::Outb(port, value));
    }
    fn inw(&mut self, port: u16) -> u16 {
        self.ops.push(PortOp::Inw(port));
        0xFFFF
    }
    fn outw(&mut self, port: u16, value: u16) {
        self.ops.push(PortOp::Outw(port, value));
    }
    fn inl(&mut self, port: u16) -> u32 {
        self.ops.push(PortOp::Inl(port));
        self.data_value
    }
    fn outl(&mut self, port: u16, value: u32) {
        self.ops.push(PortOp::Outl(port, value));
    }
}

impl SmiTrigger for FakePorts {
    fn raise(&mut self, registers: SmiRegisters) {
        self.ops.push(PortOp::Raise(registers));
        if let Some(firmware) = self.firmware.as_mut() {
            firmware(registers);
        }
    }
}

/// Advances by `step` every time it is read.
pub(crate) struct SteppingClock {
    now: Cell<Duration>,
    step: Duration,
}

impl SteppingClock {
    pub(crate) fn new(step: Duration) -> SteppingClock {
        SteppingClock {
            now: Cell::new(Duration::ZERO),
            step,
        }
    }
}

impl Clock for SteppingClock {
    fn now(&self) -> Duration {
        let now = self.now.get();
        self.now.set(now + self.step);
        now
    }
}

/// A command buffer whose bytes the fake firmware shares.
pub(crate) struct SharedBuffer {
    pub(crate) phys: u64,
    pub(crate) memory: Rc<RefCell<Vec<u8>>>,
}

impl SharedBuffer {
    pub(crate) fn new(phys: u64, size: usize) -> SharedBuffer {
        SharedBuffer {
            phys,
            memory: Rc::new(RefCell::new(vec![0; size])),
        }
    }
}

impl SmiBuffer for SharedBuffer {
    fn phys_addr(&self) -> u64 {
        self.phys
    }
    fn size(&self) -> usize {
        self.memory.borrow().len()
    }
    fn store(&mut self, bytes: &[u8]) {
        self.memory.borrow_mut()[..bytes.len()].copy_from_slice(bytes);
    }
    fn load(&self, out: &mut [u8]) {
        out.copy_from_slice(&self.memory.borrow()[..out.len()]);
    }
}

/// Sparse "physical memory" plus mapping bookkeeping.
#[derive(Default)]
pub(crate) struct PhysState {
    pub(crate) memory: HashMap<u64, u8>,
    pub(crate) live: usize,
    pub(crate) max_live: usize,
    pub(crate) mapped: Vec<u64>,
    pub(crate) fail_next: Option<syscall::error::Error>,
}

pub(crate) struct FakeMapper {
    pub(crate) state: Rc<RefCell<PhysState>>,
}

pub(crate) struct FakeChunk {
    phys: u64,
    len: usize,
    state: Rc<RefCell<PhysState>>,
}

impl PhysMapper for FakeMapper {
    type Chunk = FakeChunk;
    fn map(&mut self, phys: u64, len: usize) -> Result<FakeChunk> {
        let mut state = self.state.borrow_mut();
        if let Some(error) = state.fail_next.take() {
            return Err(error);
        }
        state.live += 1;
        state.max_live = state.max_live.max(state.live);
        state.mapped.push(phys);
        Ok(FakeChunk {
            phys,
            len,
            state: Rc::clone(&self.state),
        })
    }
}

impl MmioChunk for FakeChunk {
    fn read(&self, offset: usize, out: &mut [u8]) {
        assert!(
            offset + out.len() <= self.len,
            "window passed an out-of-chunk read"
        );
        let state = self.state.borrow();
        for (i, byte) in out.iter_mut().enumerate() {
            let at = self.phys + (offset + i) as u64;
            *byte = state.memory.get(&at).copied().unwrap_or(0);
        }
    }
    fn write(&mut self, offset: usize, data: &[u8]) {
        assert!(
            offset + data.len() <= self.len,
            "window passed an out-of-chunk write"
        );
        let mut state = self.state.borrow_mut();
        for (i, byte) in data.iter().enumerate() {
            state.memory.insert(self.phys + (offset + i) as u64, *byte);
        }
    }
}

impl Drop for FakeChunk {
    fn drop(&mut self) {
        self.state.borrow_mut().live -= 1;
    }
}
