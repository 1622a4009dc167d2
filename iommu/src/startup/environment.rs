//! What a daemon was started with: its arguments and its environment.
//!
//! Read once at startup and then passed down, rather than looked up with
//! `std::env` wherever needed, so the in-process daemons of the simulated machine
//! (several "processes" sharing one host process) each see their own.

use std::collections::BTreeMap;

/// The variable init and pcid-spawner put the readiness pipe's fd number in
/// (base `daemon` crate; redox-real.md §5.2).
pub const INIT_NOTIFY: &str = "INIT_NOTIFY";

/// A daemon's command-line arguments (without the program name) and environment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Startup {
    /// Arguments after the program name.
    pub args: Vec<String>,
    env: BTreeMap<String, String>,
}

impl Startup {
    /// What this process was started with (`std::env`; on Redox that is relibc).
    pub fn from_process() -> Startup {
        Startup {
            args: std::env::args().skip(1).collect(),
            env: std::env::vars().collect(),
        }
    }

    /// An explicit start: what a starter that is not `exec` (the simulated
    /// machine's init) hands an in-process daemon.
    pub fn new(
        args: impl IntoIterator<Item = String>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Startup {
        Startup {
            args: args.into_iter().collect(),
            env: env.into_iter().collect(),
        }
    }

    /// The environment variable `name`.
    pub fn var(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }

    /// The variable `name` parsed as a file descriptor number.
    pub fn fd_var(&self, name: &str) -> Option<usize> {
        self.var(name)?.trim().parse().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fd_vars_parse_decimal_only() {
        let s = Startup::new(
            Vec::new(),
            [
                (INIT_NOTIFY.to_string(), " 7".to_string()),
                ("BAD".to_string(), "0x7".to_string()),
            ],
        );
        assert_eq!(s.fd_var(INIT_NOTIFY), Some(7));
        assert_eq!(s.fd_var("BAD"), None);
        assert_eq!(s.fd_var("MISSING"), None);
    }
}
