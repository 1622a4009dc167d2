//! Session ids: unique for the life of the daemon.

use syscall::error::{ENOSPC, Error, Result};

/// Hands out session ids `1, 2, 3, …`, never reusing one.
///
/// One instance per daemon, shared by scan and read sessions, so an id
/// names at most one session ever: a stale id from a completed session can
/// never match a new one. 0 is never issued, so clients can use it as
/// "no session".
#[derive(Debug)]
pub struct SessionIds {
    next: u64,
}

impl Default for SessionIds {
    fn default() -> SessionIds {
        SessionIds { next: 1 }
    }
}

impl SessionIds {
    /// A fresh id source starting at 1.
    pub fn new() -> SessionIds {
        SessionIds::default()
    }

    /// The next id; `ENOSPC` once all 2⁶⁴−1 ids are used (never in
    /// practice, but it must not wrap into reuse).
    pub fn allocate(&mut self) -> Result<u64> {
        let id = self.next;
        if id == 0 {
            return Err(Error::new(ENOSPC));
        }
        // Wraps to 0 after u64::MAX, which then reads as "exhausted".
        self.next = id.wrapping_add(1);
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_and_nonzero() {
        let mut ids = SessionIds::new();
        let taken: Vec<u64> = (0..1000).map(|_| ids.allocate().unwrap()).collect();
        let mut sorted = taken.clone();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
        assert!(!taken.contains(&0));
    }

    #[test]
    fn exhaustion_is_an_error_not_reuse() {
        let mut ids = SessionIds { next: u64::MAX };
        assert_eq!(ids.allocate(), Ok(u64::MAX));
        assert_eq!(ids.allocate(), Err(Error::new(ENOSPC)));
        assert_eq!(ids.allocate(), Err(Error::new(ENOSPC)));
    }
}
