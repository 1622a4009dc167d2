//! The Dell SMBIOS SMI calling interface: a 36-byte command buffer in
//! memory below 4 GiB, its physical address in EBX, `"BSI1"` in ECX, and
//! a command code written to the command port.

use core::mem::{offset_of, size_of};

use super::legacy_smi::SMI_COMMAND_PORT;
use super::port_io::PortIo;
use super::smi_error::SmiError;
use super::smi_status::SmiCounters;
use super::token_io::TokenIo;
use crate::wire::Token;

/// ECX signature of a calling-interface SMI (`0x42534931`, "BSI1").
pub const CALLING_INTERFACE_SIGNATURE: u32 = 0x4253_4931;
/// The buffer must end at or below this physical address: EBX is 32 bits.
pub const BUFFER_PHYS_LIMIT: u64 = 1 << 32;
/// `cmd_class` of a token read.
pub const CLASS_TOKEN_READ: u16 = 0;
/// `cmd_class` of a token write.
pub const CLASS_TOKEN_WRITE: u16 = 1;
/// `cmd_select` of the standard token value.
pub const SELECT_TOKEN_STD: u16 = 0;

/// `calling_interface_buffer`: 36 bytes, packed, little-endian.
///
/// | offset | field | type |
/// |---|---|---|
/// | 0 | `cmd_class` | u16 |
/// | 2 | `cmd_select` | u16 |
/// | 4 | `input[0..4]` | 4 × u32 |
/// | 20 | `output[0..4]` | 4 × u32 |
///
/// `output[0]` (`cbRES1`) is the completion code: 0 success, −1 failure,
/// −2 not supported.
#[repr(C, packed)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CallingInterfaceBuffer {
    /// Command class.
    pub cmd_class: u16,
    /// Command select within the class.
    pub cmd_select: u16,
    /// Arguments.
    pub input: [u32; 4],
    /// Results, written by firmware.
    pub output: [u32; 4],
}

const _: () = assert!(size_of::<CallingInterfaceBuffer>() == CallingInterfaceBuffer::SIZE);
const _: () = assert!(offset_of!(CallingInterfaceBuffer, cmd_class) == 0);
const _: () = assert!(offset_of!(CallingInterfaceBuffer, cmd_select) == 2);
const _: () = assert!(offset_of!(CallingInterfaceBuffer, input) == 4);
const _: () = assert!(offset_of!(CallingInterfaceBuffer, output) == 20);

impl CallingInterfaceBuffer {
    /// Encoded size in bytes.
    pub const SIZE: usize = 36;

    /// Writes the 36 bytes into the front of `out`; `None` if it is shorter.
    pub fn encode(&self, out: &mut [u8]) -> Option<()> {
        let out = out.get_mut(..Self::SIZE)?;
        let (class, rest) = out.split_at_mut(2);
        let (select, rest) = rest.split_at_mut(2);
        class.copy_from_slice(&{ self.cmd_class }.to_le_bytes());
        select.copy_from_slice(&{ self.cmd_select }.to_le_bytes());
        let words = { self.input }.into_iter().chain(self.output);
        for (slot, word) in rest.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
        Some(())
    }

    /// Decodes the first 36 bytes of `bytes` (firmware-written memory);
    /// `None` if shorter.
    pub fn decode(bytes: &[u8]) -> Option<CallingInterfaceBuffer> {
        let bytes = bytes.get(..Self::SIZE)?;
        let u16_at = |at: usize| -> Option<u16> {
            Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
        };
        let mut words = [0u32; 8];
        for (word, raw) in words.iter_mut().zip(bytes.get(4..)?.chunks_exact(4)) {
            *word = u32::from_le_bytes(raw.try_into().ok()?);
        }
        let [i0, i1, i2, i3, o0, o1, o2, o3] = words;
        Some(CallingInterfaceBuffer {
            cmd_class: u16_at(0)?,
            cmd_select: u16_at(2)?,
            input: [i0, i1, i2, i3],
            output: [o0, o1, o2, o3],
        })
    }
}

/// Memory for the command buffer: physically contiguous, below 4 GiB.
///
/// The daemon backs it with an `IommuDmaAllocator` buffer allocated with a
/// 32-bit mask; tests with shared memory their fake firmware also sees.
/// Access is by copy (volatile in the real implementation), never by a
/// long-lived slice: firmware writes this memory behind the compiler's back.
pub trait SmiBuffer {
    /// Physical address of byte 0 (what firmware sees).
    fn phys_addr(&self) -> u64;
    /// Size of the buffer in bytes.
    fn size(&self) -> usize;
    /// Copies `bytes` to the start of the buffer (`bytes.len() ≤ size()`).
    fn store(&mut self, bytes: &[u8]);
    /// Copies the start of the buffer into `out` (`out.len() ≤ size()`).
    fn load(&self, out: &mut [u8]);
}

/// The register state of a calling-interface SMI.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SmiRegisters {
    /// Physical address of the command buffer.
    pub ebx: u32,
    /// [`CALLING_INTERFACE_SIGNATURE`].
    pub ecx: u32,
    /// Port the command code is written to (EDX).
    pub command_port: u16,
    /// Command code (AL).
    pub command_code: u8,
}

/// Raises an SMI with register state.
///
/// EBX and ECX only reach firmware if they are loaded in the same
/// instruction sequence as the port write, which userspace cannot express
/// through plain [`PortIo`]: the real implementation is a few instructions
/// of inline assembly (load EBX/ECX, `out dx, al`); the simulated one hands
/// the registers to the simulated firmware. `PortIo` is the supertrait: the
/// same object is the platform's port access.
pub trait SmiTrigger: PortIo {
    /// Loads EBX/ECX and writes `command_code` to `command_port`.
    fn raise(&mut self, registers: SmiRegisters);
}

impl<T: SmiTrigger + ?Sized> SmiTrigger for &mut T {
    fn raise(&mut self, registers: SmiRegisters) {
        (**self).raise(registers)
    }
}

/// Where calling-interface SMIs are raised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallingInterfaceConfig {
    /// Command port, from the DMI 0xDA structure (usually 0xB2).
    pub command_port: u16,
    /// Command code, from the DMI 0xDA structure.
    pub command_code: u8,
}

impl CallingInterfaceConfig {
    /// Command code `command_code` on port 0xB2.
    pub fn new(command_code: u8) -> CallingInterfaceConfig {
        CallingInterfaceConfig {
            command_port: SMI_COMMAND_PORT,
            command_code,
        }
    }
}

/// What `output[0]` holds when the call returns and firmware never ran: a value
/// firmware never writes (its codes are 0, −1, −2). Written before every call.
pub const OUTPUT_UNTOUCHED: u32 = 0x8000_0000;

/// One entry of the DMI 0xDA token table (Linux `calling_interface_token`):
/// the calling interface reads and writes a token at its `location`, and
/// writing it sets it to its `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DmiToken {
    /// Token id (`0x8000..=0x806B` for DSMIL).
    pub token: u16,
    /// Where the firmware keeps it.
    pub location: u16,
    /// The value a write sets.
    pub value: u16,
}

/// The Dell SMBIOS calling interface (Linux `dell-smbios-smm.c`, `dcdbas.c`).
///
/// It is synchronous: the `out` to the command port traps into SMM, and when
/// it returns the buffer holds the answer, so there is no status polling and
/// no budget (a firmware that never returns cannot be timed out from here).
/// Tokens are addressed through the DMI token table: a read is class 0 /
/// select 0 with `input[0]` = the token's location, the value in `output[1]`;
/// a write is class 1 / select 0 with `input[0]` = location and `input[1]` =
/// the token's table value — the interface sets a token to *its* value, so a
/// write of any other value is `EINVAL`. The result is `output[0]`.
/// Quarantined tokens are refused before the buffer is even written.
#[derive(Debug)]
pub struct CallingInterface<B, H> {
    buffer: B,
    hardware: H,
    config: CallingInterfaceConfig,
    tokens: Vec<DmiToken>,
    counters: SmiCounters,
}

impl<B: SmiBuffer, H: SmiTrigger> CallingInterface<B, H> {
    /// The calling interface over `buffer` with the DMI token table `tokens`;
    /// [`SmiError::BadBuffer`] if the buffer is shorter than 36 bytes or does
    /// not lie entirely below 4 GiB.
    pub fn new(
        buffer: B,
        hardware: H,
        config: CallingInterfaceConfig,
        tokens: Vec<DmiToken>,
    ) -> Result<CallingInterface<B, H>, SmiError> {
        buffer_ebx(&buffer)?;
        Ok(CallingInterface {
            buffer,
            hardware,
            config,
            tokens,
            counters: SmiCounters::default(),
        })
    }

    /// Totals so far.
    pub fn counters(&self) -> SmiCounters {
        self.counters
    }

    /// The configuration in force.
    pub fn config(&self) -> CallingInterfaceConfig {
        self.config
    }

    /// Gives the parts back.
    pub fn into_parts(self) -> (B, H) {
        (self.buffer, self.hardware)
    }

    fn entry(&self, token: Token) -> Result<DmiToken, SmiError> {
        self.tokens
            .iter()
            .find(|t| t.token == token.raw())
            .copied()
            .ok_or(SmiError::NotInTokenTable)
    }

    fn token_call(
        &mut self,
        token: Token,
        class: u16,
        input: impl FnOnce(DmiToken) -> Result<[u32; 4], SmiError>,
    ) -> Result<[u32; 4], SmiError> {
        let outcome = if token.is_quarantined() {
            Err(SmiError::Quarantined)
        } else {
            self.entry(token)
                .and_then(input)
                .and_then(|input| self.call(class, SELECT_TOKEN_STD, input))
        };
        self.counters.record(&outcome);
        outcome
    }

    fn call(&mut self, class: u16, select: u16, input: [u32; 4]) -> Result<[u32; 4], SmiError> {
        // Checked again per call: the trait object could move or change.
        let ebx = buffer_ebx(&self.buffer)?;
        let command = CallingInterfaceBuffer {
            cmd_class: class,
            cmd_select: select,
            input,
            output: [OUTPUT_UNTOUCHED, 0, 0, 0],
        };
        let mut raw = [0u8; CallingInterfaceBuffer::SIZE];
        command.encode(&mut raw).ok_or(SmiError::BadBuffer)?;
        self.buffer.store(&raw);
        self.hardware.raise(SmiRegisters {
            ebx,
            ecx: CALLING_INTERFACE_SIGNATURE,
            command_port: self.config.command_port,
            command_code: self.config.command_code,
        });
        self.buffer.load(&mut raw);
        let reply = CallingInterfaceBuffer::decode(&raw).ok_or(SmiError::BadBuffer)?;
        let output = reply.output;
        match output[0] {
            0 => Ok(output),
            OUTPUT_UNTOUCHED => Err(SmiError::NoAnswer),
            result => Err(SmiError::CallFailed {
                result: result as i32,
            }),
        }
    }
}

impl<B: SmiBuffer, H: SmiTrigger> TokenIo for CallingInterface<B, H> {
    fn read_token(&mut self, token: Token) -> Result<u32, SmiError> {
        let output = self.token_call(token, CLASS_TOKEN_READ, |t| {
            Ok([u32::from(t.location), 0, 0, 0])
        })?;
        Ok(output[1])
    }

    fn write_token(&mut self, token: Token, value: u32) -> Result<(), SmiError> {
        self.token_call(token, CLASS_TOKEN_WRITE, |t| {
            if value != u32::from(t.value) {
                return Err(SmiError::NotTheTokenValue { value: t.value });
            }
            Ok([u32::from(t.location), u32::from(t.value), 0, 0])
        })
        .map(|_| ())
    }
}

/// The buffer's physical address as EBX, if the whole 36-byte command lies
/// below 4 GiB and the buffer is long enough.
fn buffer_ebx<B: SmiBuffer + ?Sized>(buffer: &B) -> Result<u32, SmiError> {
    if buffer.size() < CallingInterfaceBuffer::SIZE {
        return Err(SmiError::BadBuffer);
    }
    let phys = buffer.phys_addr();
    let end = phys
        .checked_add(CallingInterfaceBuffer::SIZE as u64)
        .ok_or(SmiError::BadBuffer)?;
    if end > BUFFER_PHYS_LIMIT {
        return Err(SmiError::BadBuffer);
    }
    u32::try_from(phys).map_err(|_| SmiError::BadBuffer)
}
