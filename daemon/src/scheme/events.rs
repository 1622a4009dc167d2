//! `events`: a bounded queue of records per reader.

use std::collections::VecDeque;

use super::DsmilScheme;
use crate::wire::EventRecord;

/// Records one reader may have waiting; past it the oldest is dropped.
pub const EVENT_QUEUE_DEPTH: usize = 64;

/// One reader's queue (one open description of `events`).
///
/// Each reader gets every record published after it opened, in order. A
/// reader that falls more than [`EVENT_QUEUE_DEPTH`] behind loses the oldest
/// records; the count rides in the `lost` field of the next record it reads,
/// so memory stays bounded without a slow reader slowing anyone else.
#[derive(Debug, Default)]
pub struct EventQueue {
    records: VecDeque<EventRecord>,
    lost: u32,
    /// The reader asked for readiness (`fevent`): post it when records arrive.
    pub subscribed: bool,
    /// A readiness post for this reader is waiting to be taken, so another
    /// record needs none (no search through the waiting posts).
    pub post_pending: bool,
}

impl EventQueue {
    /// Queues a record; returns whether one was dropped to make room.
    pub fn push(&mut self, record: EventRecord) -> bool {
        let dropped = if self.records.len() >= EVENT_QUEUE_DEPTH {
            self.records.pop_front();
            self.lost = self.lost.saturating_add(1);
            true
        } else {
            false
        };
        self.records.push_back(record);
        dropped
    }

    /// The next record, with the count of records lost before it.
    pub fn pop(&mut self) -> Option<EventRecord> {
        let mut record = self.records.pop_front()?;
        record.lost = std::mem::take(&mut self.lost);
        Some(record)
    }

    /// Whether a read would return a record now.
    pub fn is_ready(&self) -> bool {
        !self.records.is_empty()
    }
}

impl DsmilScheme {
    /// Stamps the machine's notices and queues them for every reader.
    ///
    /// The work is one step per reader per notice: only `events` handles are
    /// visited (they have their own table), and a reader's readiness post is
    /// deduplicated by a flag on its queue rather than by searching the posts.
    /// [`fanout_steps`](Self::fanout_steps) counts the steps.
    pub(super) fn flush_notices(&mut self) {
        if !self.machine.has_notices() {
            return;
        }
        let now = self.now_ms();
        for notice in self.machine.take_notices() {
            self.event_seq += 1;
            self.stats.events += 1;
            let record = EventRecord::new(
                notice.kind,
                notice.token,
                self.event_seq,
                now,
                notice.arg0,
                notice.arg1,
            );
            for (id, queue) in self.readers.iter_mut() {
                self.fanout_steps += 1;
                if queue.push(record) {
                    self.stats.events_lost += 1;
                }
                if queue.subscribed && !queue.post_pending {
                    queue.post_pending = true;
                    self.fevent_posts.push(*id);
                }
            }
        }
    }

    /// Handles whose readers asked for readiness and now have records: the
    /// daemon posts `EVENT_READ` for each (`Response::post_fevent`).
    pub fn take_fevent_posts(&mut self) -> Vec<usize> {
        let posts = std::mem::take(&mut self.fevent_posts);
        for id in &posts {
            if let Some(queue) = self.readers.get_mut(id) {
                queue.post_pending = false;
            }
        }
        posts
    }

    /// Steps publishing has taken since start: one per reader per notice
    /// (tests count them to show fan-out is linear in the readers).
    pub fn fanout_steps(&self) -> u64 {
        self.fanout_steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::EventKind;

    #[test]
    fn drop_oldest_and_count_lost() {
        let mut q = EventQueue::default();
        for seq in 1..=(EVENT_QUEUE_DEPTH as u64 + 3) {
            q.push(EventRecord::new(
                EventKind::StateChange,
                0x8000,
                seq,
                0,
                0,
                1,
            ));
        }
        let first = q.pop().expect("a record");
        assert_eq!((first.sequence, first.lost), (4, 3));
        let second = q.pop().expect("a record");
        assert_eq!((second.sequence, second.lost), (5, 0));
        let mut n = 2;
        while q.pop().is_some() {
            n += 1;
        }
        assert_eq!(n, EVENT_QUEUE_DEPTH);
        assert!(!q.is_ready());
    }
}
