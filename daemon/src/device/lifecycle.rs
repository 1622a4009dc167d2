//! The device life cycle: the only state changes a DSMIL device may make.

use syscall::error::{EINVAL, Error, Result};

/// Where a device is in its life cycle.
///
/// Valid transitions (anything else is refused):
///
/// ```text
/// Offline ──► Initializing ──► Ready ◄──► Active
///    ▲             │  ▲          │          │
///    │             ▼  │          ▼          ▼
///    └──────────── Error ◄───────┴──────────┘
/// any ──► Locked ──► Error
/// ```
///
/// `Locked` is the emergency stop: reachable from every state (itself
/// included, so locking is idempotent), and left only through `Error`, so
/// a locked device is re-initialized from scratch before it is used again.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LifecycleState {
    /// Not brought up.
    Offline,
    /// Being probed.
    Initializing,
    /// Answering, idle.
    Ready,
    /// Answering, in use.
    Active,
    /// Failed; must go back through `Offline` or `Initializing`.
    Error,
    /// Locked out.
    Locked,
}

impl LifecycleState {
    /// Every state, for exhaustive checks.
    pub const ALL: [LifecycleState; 6] = [
        LifecycleState::Offline,
        LifecycleState::Initializing,
        LifecycleState::Ready,
        LifecycleState::Active,
        LifecycleState::Error,
        LifecycleState::Locked,
    ];

    /// Whether `self → to` is one of the validated transitions.
    pub const fn can_become(self, to: LifecycleState) -> bool {
        use LifecycleState::*;
        matches!(
            (self, to),
            (Offline, Initializing)
                | (Initializing, Ready | Error)
                | (Ready, Active | Error)
                | (Active, Ready | Error)
                | (Error, Offline | Initializing)
                | (_, Locked)
                | (Locked, Error)
        )
    }

    /// `to` if `self → to` is valid, else `EINVAL`.
    pub fn transition_to(self, to: LifecycleState) -> Result<LifecycleState> {
        if self.can_become(to) {
            Ok(to)
        } else {
            Err(Error::new(EINVAL))
        }
    }

    /// Ready or Active: the device answers requests.
    pub const fn is_operational(self) -> bool {
        matches!(self, LifecycleState::Ready | LifecycleState::Active)
    }

    /// The number `events` records carry: 0 offline, 1 initializing,
    /// 2 ready, 3 active, 4 error, 5 locked.
    pub const fn number(self) -> i32 {
        match self {
            LifecycleState::Offline => 0,
            LifecycleState::Initializing => 1,
            LifecycleState::Ready => 2,
            LifecycleState::Active => 3,
            LifecycleState::Error => 4,
            LifecycleState::Locked => 5,
        }
    }

    /// Lower-case name for text files and logs.
    pub const fn name(self) -> &'static str {
        match self {
            LifecycleState::Offline => "offline",
            LifecycleState::Initializing => "initializing",
            LifecycleState::Ready => "ready",
            LifecycleState::Active => "active",
            LifecycleState::Error => "error",
            LifecycleState::Locked => "locked",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::LifecycleState::{self, *};

    const VALID: [(LifecycleState, LifecycleState); 10] = [
        (Offline, Initializing),
        (Initializing, Ready),
        (Initializing, Error),
        (Ready, Active),
        (Ready, Error),
        (Active, Ready),
        (Active, Error),
        (Error, Offline),
        (Error, Initializing),
        (Locked, Error),
    ];

    #[test]
    fn exactly_the_documented_transitions() {
        let mut accepted = 0;
        for from in LifecycleState::ALL {
            for to in LifecycleState::ALL {
                let expected = VALID.contains(&(from, to)) || to == Locked; // any → Locked
                assert_eq!(from.can_become(to), expected, "{from:?} → {to:?}");
                assert_eq!(
                    from.transition_to(to).is_ok(),
                    expected,
                    "{from:?} → {to:?}"
                );
                accepted += usize::from(expected);
            }
        }
        // 9 ordinary transitions + 6 into Locked + Locked → Error.
        assert_eq!(accepted, 16);
    }

    #[test]
    fn some_invalid_transitions_by_name() {
        for (from, to) in [
            (Offline, Ready),
            (Offline, Active),
            (Offline, Error),
            (Initializing, Active),
            (Initializing, Offline),
            (Ready, Offline),
            (Ready, Initializing),
            (Active, Offline),
            (Error, Ready),
            (Error, Active),
            (Locked, Offline),
            (Locked, Ready),
            (Ready, Ready),
        ] {
            assert!(from.transition_to(to).is_err(), "{from:?} → {to:?}");
        }
    }
}
