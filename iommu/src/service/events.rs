//! Events: the units' event logs read into the pending queue (DRAIN_EVENTS)
//! and the bounded fault history (the `faults` file).

use syscall::error::{ENODEV, Error, Result};

use crate::unit::FaultCause;

use super::{Drained, FaultRecord, Iommu};

impl Iommu {
    /// Reads the units' event logs into the pending queue and the history.
    pub fn collect_events(&mut self) {
        let limit = self.config.fault_history.max(1);
        for (index, unit) in self.units.iter_mut().enumerate() {
            let (pending, history, counters) =
                (&mut self.pending, &mut self.history, &mut self.counters);
            unit.drain_faults(&mut |fault| {
                counters.events += 1;
                if fault.cause != FaultCause::Other {
                    counters.faults += 1;
                }
                let record = FaultRecord { unit: index, fault };
                if pending.len() >= limit {
                    pending.pop_front();
                    counters.events_dropped += 1;
                }
                pending.push_back(record);
                if history.len() >= limit {
                    history.pop_front();
                }
                history.push_back(record);
            });
        }
    }

    /// DRAIN_EVENTS: collects, then hands out (and forgets) every event not
    /// drained before, of `unit` or of all units.
    pub fn drain_events(&mut self, unit: Option<usize>) -> Result<Drained> {
        if unit.is_some_and(|u| u >= self.units.len()) {
            return Err(Error::new(ENODEV));
        }
        self.collect_events();
        let mut drained = Drained::default();
        self.pending.retain(|r| {
            if unit.is_some_and(|u| u != r.unit) {
                return true;
            }
            drained.count += 1;
            drained.first.get_or_insert(*r);
            false
        });
        Ok(drained)
    }
}
