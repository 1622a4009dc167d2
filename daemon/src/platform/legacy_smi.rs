//! DSMIL's own legacy SMI path: token and data through I/O ports, command
//! through the APM command port, completion through its status port.

use super::port_io::{Clock, PortIo};
use super::smi_error::SmiError;
use super::smi_status::{SmiCounters, SmiPolicy, raise_and_wait};
use super::token_io::TokenIo;
use crate::wire::Token;

/// Port that takes the token number (`outw`).
pub const LEGACY_TOKEN_PORT: u16 = 0x164E;
/// Port that carries the token value (`outl` for writes, `inl` for reads).
pub const LEGACY_DATA_PORT: u16 = 0x164F;
/// APM command port: writing a command code raises the SMI.
pub const SMI_COMMAND_PORT: u16 = 0xB2;
/// APM status port: polled for completion.
pub const SMI_STATUS_PORT: u16 = 0xB3;
/// Command code: read the token.
pub const LEGACY_CMD_READ: u8 = 1;
/// Command code: write the token.
pub const LEGACY_CMD_WRITE: u8 = 2;

/// The legacy SMI path.
///
/// A read is `outw(token → 0x164E)`, `outb(1 → 0xB2)`, poll 0xB3, then
/// `inl(0x164F)` for the value. A write is `outw(token → 0x164E)`,
/// `outl(value → 0x164F)`, `outb(2 → 0xB2)`, poll 0xB3. Polling, hang
/// detection, the budget and retries follow [`SmiPolicy`]; a retry repeats
/// the whole port sequence. Quarantined tokens are refused before the
/// first port access.
#[derive(Debug)]
pub struct LegacySmi<P, C> {
    ports: P,
    clock: C,
    policy: SmiPolicy,
    counters: SmiCounters,
}

impl<P: PortIo, C: Clock> LegacySmi<P, C> {
    /// The legacy path over `ports`, timed by `clock`.
    pub fn new(ports: P, clock: C, policy: SmiPolicy) -> LegacySmi<P, C> {
        LegacySmi {
            ports,
            clock,
            policy,
            counters: SmiCounters::default(),
        }
    }

    /// Totals so far.
    pub fn counters(&self) -> SmiCounters {
        self.counters
    }

    /// The policy in force.
    pub fn policy(&self) -> SmiPolicy {
        self.policy
    }

    /// Replaces the policy (configuration change).
    pub fn set_policy(&mut self, policy: SmiPolicy) {
        self.policy = policy;
    }

    /// Gives the port and clock objects back.
    pub fn into_parts(self) -> (P, C) {
        (self.ports, self.clock)
    }

    fn command(&mut self, token: Token, write: Option<u32>) -> Result<(), SmiError> {
        if token.is_quarantined() {
            let refused = Err(SmiError::Quarantined);
            self.counters.record(&refused);
            return refused;
        }
        let outcome = raise_and_wait(
            &mut self.ports,
            &self.clock,
            &self.policy,
            Some(SMI_STATUS_PORT),
            &mut self.counters,
            |ports| {
                ports.outw(LEGACY_TOKEN_PORT, token.raw());
                match write {
                    Some(value) => {
                        ports.outl(LEGACY_DATA_PORT, value);
                        ports.outb(SMI_COMMAND_PORT, LEGACY_CMD_WRITE);
                    }
                    None => ports.outb(SMI_COMMAND_PORT, LEGACY_CMD_READ),
                }
            },
        );
        self.counters.record(&outcome);
        outcome
    }
}

impl<P: PortIo, C: Clock> TokenIo for LegacySmi<P, C> {
    fn read_token(&mut self, token: Token) -> Result<u32, SmiError> {
        self.command(token, None)?;
        Ok(self.ports.inl(LEGACY_DATA_PORT))
    }

    fn write_token(&mut self, token: Token, value: u32) -> Result<(), SmiError> {
        self.command(token, Some(value))
    }
}
