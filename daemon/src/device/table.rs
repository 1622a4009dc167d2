//! The table of the 108 DSMIL devices and the access policy over it:
//! quarantine, thermal guard, life cycle and group dependencies.

use syscall::error::{EACCES, EAGAIN, EINVAL, EIO, ENODEV, Error, Result};

use super::groups;
use super::lifecycle::LifecycleState;
use super::thermal::ThermalGuard;
use crate::wire::{
    DEVICE_COUNT, DeviceAccess, DeviceInfo, DeviceState, GROUP_COUNT, GROUP_SIZE,
    NO_TEMPERATURE_READING, QUARANTINED_TOKENS, SystemStatus, Token,
};

/// A device's life-cycle change, for the `events` file and the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StateChange {
    /// The device.
    pub token: Token,
    /// State before.
    pub from: LifecycleState,
    /// State after.
    pub to: LifecycleState,
}

/// What [`DeviceTable::bring_up`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BringUp {
    /// Devices that answered their probe and are now `Ready`.
    pub ready: usize,
    /// Devices whose probe failed (now `Error`), with the error.
    pub failed: Vec<(Token, Error)>,
    /// Groups left down because a group they depend on is not up.
    pub blocked_groups: Vec<usize>,
}

#[derive(Clone, Copy, Debug)]
struct DeviceEntry {
    state: LifecycleState,
    last_response: u32,
    timestamp_ms: u64,
}

/// The 108 devices, indexed by token, plus the thermal guard.
///
/// Policy, in the order it is applied to a read or write:
/// 1. a quarantined token is refused with `EACCES` (always first: not even
///    the thermal state is revealed about it);
/// 2. above the thermal limit, `EBUSY`;
/// 3. the device must be operational (`Ready`/`Active`): `Locked` is
///    `EACCES`, `Error` is `EIO`, `Offline`/`Initializing` are `ENODEV`.
///
/// Quarantined devices sit in `Locked` for ever: every transition of them
/// is `EACCES`, so nothing can walk them back to `Ready`.
#[derive(Clone, Debug)]
pub struct DeviceTable {
    entries: [DeviceEntry; DEVICE_COUNT],
    thermal: ThermalGuard,
}

impl DeviceTable {
    /// A table with every device `Offline` except the quarantined ones,
    /// which are `Locked`.
    pub fn new(thermal: ThermalGuard) -> DeviceTable {
        let blank = DeviceEntry {
            state: LifecycleState::Offline,
            last_response: 0,
            timestamp_ms: 0,
        };
        let mut entries = [blank; DEVICE_COUNT];
        for token in Token::all().filter(|t| t.is_quarantined()) {
            if let Some(entry) = entries.get_mut(token.index()) {
                entry.state = LifecycleState::Locked;
            }
        }
        DeviceTable { entries, thermal }
    }

    fn entry(&self, token: Token) -> &DeviceEntry {
        // A Token's index is < DEVICE_COUNT by construction; the fallback is
        // unreachable but keeps this free of indexing panics.
        self.entries.get(token.index()).unwrap_or(&self.entries[0])
    }

    fn entry_mut(&mut self, token: Token) -> Result<&mut DeviceEntry> {
        self.entries
            .get_mut(token.index())
            .ok_or(Error::new(EINVAL))
    }

    /// The thermal guard.
    pub fn thermal(&self) -> &ThermalGuard {
        &self.thermal
    }

    /// The thermal guard, to feed it readings or change its limit.
    pub fn thermal_mut(&mut self) -> &mut ThermalGuard {
        &mut self.thermal
    }

    /// A device's life-cycle state.
    pub fn state(&self, token: Token) -> LifecycleState {
        self.entry(token).state
    }

    /// Whether every non-quarantined device of `group` is operational.
    /// Quarantined devices never come up, so they do not count.
    pub fn group_is_up(&self, group: usize) -> bool {
        group < GROUP_COUNT
            && Token::all()
                .skip(group * GROUP_SIZE)
                .take(GROUP_SIZE)
                .filter(|t| !t.is_quarantined())
                .all(|t| self.state(t).is_operational())
    }

    /// Whether every group `group` depends on is up.
    pub fn dependencies_met(&self, group: usize) -> bool {
        groups::dependencies(group)
            .iter()
            .all(|&g| self.group_is_up(g))
    }

    /// Moves a device through its life cycle.
    ///
    /// `EACCES` for a quarantined token; `EINVAL` for a transition the life
    /// cycle does not allow; `EAGAIN` when becoming operational
    /// (`Initializing → Ready`, `Ready → Active`) while a group it depends on
    /// is not up. Going down (to `Ready` from `Active`, to `Error`, to
    /// `Locked`) never waits on dependencies.
    pub fn transition(&mut self, token: Token, to: LifecycleState) -> Result<StateChange> {
        if token.is_quarantined() {
            return Err(Error::new(EACCES));
        }
        let from = self.state(token);
        from.transition_to(to)?;
        let rising = matches!(
            (from, to),
            (LifecycleState::Initializing, LifecycleState::Ready)
                | (LifecycleState::Ready, LifecycleState::Active)
        );
        if rising && !self.dependencies_met(token.group()) {
            return Err(Error::new(EAGAIN));
        }
        self.entry_mut(token)?.state = to;
        Ok(StateChange { token, from, to })
    }

    /// Brings every `Offline` or `Error` device up, group by group in
    /// dependency order: `→ Initializing`, then `probe(token)` (an SMI read
    /// of the token); `Ok(value)` records the response and makes the device
    /// `Ready`, `Err` makes it `Error`. A group whose dependencies are not
    /// up is left alone and listed in [`BringUp::blocked_groups`].
    pub fn bring_up<F>(&mut self, now_ms: u64, mut probe: F) -> BringUp
    where
        F: FnMut(Token) -> Result<u32>,
    {
        let mut report = BringUp::default();
        for group in 0..GROUP_COUNT {
            if !self.dependencies_met(group) {
                report.blocked_groups.push(group);
                continue;
            }
            let members = Token::all().skip(group * GROUP_SIZE).take(GROUP_SIZE);
            for token in members.filter(|t| !t.is_quarantined()) {
                if !matches!(
                    self.state(token),
                    LifecycleState::Offline | LifecycleState::Error
                ) {
                    continue;
                }
                if self
                    .transition(token, LifecycleState::Initializing)
                    .is_err()
                {
                    continue;
                }
                match probe(token) {
                    Ok(value) => {
                        self.record_response(token, value, now_ms);
                        if self.transition(token, LifecycleState::Ready).is_ok() {
                            report.ready += 1;
                        }
                    }
                    Err(error) => {
                        let _ = self.transition(token, LifecycleState::Error);
                        report.failed.push((token, error));
                    }
                }
            }
        }
        report
    }

    /// Whether a read of `token` may go ahead (see the type's policy).
    pub fn check_read(&self, token: Token) -> Result<()> {
        if token.is_quarantined() {
            return Err(Error::new(EACCES));
        }
        self.thermal.check()?;
        match self.state(token) {
            LifecycleState::Ready | LifecycleState::Active => Ok(()),
            LifecycleState::Locked => Err(Error::new(EACCES)),
            LifecycleState::Error => Err(Error::new(EIO)),
            LifecycleState::Offline | LifecycleState::Initializing => Err(Error::new(ENODEV)),
        }
    }

    /// Whether a write of `token` may go ahead: the read policy (quarantine
    /// `EACCES` first, thermal `EBUSY`, operational state). Whether the
    /// writer is allowed (root) is the scheme's question.
    pub fn check_write(&self, token: Token) -> Result<()> {
        self.check_read(token)
    }

    /// Records a value the firmware returned for `token` at `now_ms`.
    pub fn record_response(&mut self, token: Token, value: u32, now_ms: u64) {
        if let Ok(entry) = self.entry_mut(token) {
            entry.last_response = value;
            entry.timestamp_ms = now_ms;
        }
    }

    /// Marks a device that failed to answer as `Error`, if its life cycle
    /// allows it (returns the change, or `None` if it was not operational).
    pub fn record_failure(&mut self, token: Token) -> Option<StateChange> {
        self.transition(token, LifecycleState::Error).ok()
    }

    /// The device's record as clients see it. Quarantined devices report
    /// `QUARANTINED` with access `NONE`; others report their live state
    /// (`THERMAL_LIMIT` for all of them while throttled) with access `READ`.
    pub fn info(&self, token: Token) -> DeviceInfo {
        let entry = self.entry(token);
        let quarantined = token.is_quarantined();
        let state = if quarantined {
            DeviceState::Quarantined
        } else if self.thermal.is_throttled() {
            DeviceState::ThermalLimit
        } else {
            match entry.state {
                LifecycleState::Offline => DeviceState::Offline,
                LifecycleState::Initializing => DeviceState::Unknown,
                LifecycleState::Ready | LifecycleState::Active => DeviceState::Safe,
                LifecycleState::Error | LifecycleState::Locked => DeviceState::Error,
            }
        };
        DeviceInfo {
            device_id: token.raw(),
            state,
            access: if quarantined {
                DeviceAccess::None
            } else {
                DeviceAccess::Read
            },
            is_quarantined: quarantined,
            last_response: entry.last_response,
            timestamp: entry.timestamp_ms,
            thermal_celsius: self.thermal.current_celsius(),
        }
    }

    /// Every device's record in ascending token order (a scan's snapshot).
    pub fn snapshot(&self) -> Vec<DeviceInfo> {
        Token::all().map(|t| self.info(t)).collect()
    }

    /// Devices that would report `SAFE` right now.
    pub fn safe_device_count(&self) -> usize {
        if self.thermal.is_throttled() {
            return 0;
        }
        Token::all()
            .filter(|t| !t.is_quarantined() && self.state(*t).is_operational())
            .count()
    }

    /// Quarantined devices (always 5).
    pub fn quarantined_count(&self) -> usize {
        QUARANTINED_TOKENS.len()
    }

    /// The `GET_STATUS` reply, given when the last scan started.
    pub fn system_status(&self, last_scan_timestamp: u64) -> SystemStatus {
        SystemStatus {
            kernel_module_loaded: true,
            // Without a reading: not known safe, and the documented "no reading"
            // value instead of a temperature.
            thermal_safe: self.thermal.is_available() && !self.thermal.is_throttled(),
            current_temp_celsius: self.thermal.reading().unwrap_or(NO_TEMPERATURE_READING),
            // At most 108: the casts cannot truncate.
            safe_device_count: self.safe_device_count() as u32,
            quarantined_count: self.quarantined_count() as u32,
            last_scan_timestamp,
        }
    }
}

impl Default for DeviceTable {
    fn default() -> DeviceTable {
        DeviceTable::new(ThermalGuard::default())
    }
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;
