//! At-least-once bookkeeping: which offsets of each partition are in flight, and how far each
//! partition may be committed.
//!
//! An offset may be committed only once the message at it and every earlier message of its
//! partition have been handled by every handler reading the topic (and all their sinks). Each
//! delivered message carries an [`Ack`]; when its last clone is dropped the message is done.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use slipstream_core::__component::lock;

/// The offsets of one partition.
#[derive(Debug, Default)]
struct Partition {
    /// Offsets delivered and not yet done.
    in_flight: BTreeSet<i64>,
    /// One past the highest offset received (the position to commit when nothing is in flight).
    next: Option<i64>,
    /// The position last committed (or handed out for committing).
    committed: Option<i64>,
    /// The oldest offset whose handling failed for good (a delivery the broker refused): never
    /// committed past, though it is no longer in flight.
    stuck: Option<i64>,
    /// Bumped when the partition is revoked or sought, so that acks of older messages are
    /// ignored.
    epoch: u64,
}

impl Partition {
    /// The position that may be committed: the oldest offset still in flight, or one past the
    /// newest done.
    fn committable(&self) -> Option<i64> {
        let done = self.in_flight.first().copied().or(self.next);
        match (done, self.stuck) {
            (Some(done), Some(stuck)) => Some(done.min(stuck)),
            (done, stuck) => done.or(stuck),
        }
    }
}

/// Offsets in flight per partition of one topic consumer.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    partitions: Mutex<HashMap<i32, Partition>>,
}

/// Marks a message as done when its last clone is dropped.
#[derive(Debug)]
pub(crate) struct AckEntry {
    tracker: Arc<Tracker>,
    partition: i32,
    offset: i64,
    epoch: u64,
}

/// A shared handle on one message's completion.
pub(crate) type Ack = Arc<AckEntry>;

/// The message a handler is working on, if it came from a topic: its topic sinks attach their
/// pending deliveries to it, so that its offset is committed only once they are acknowledged.
#[derive(Debug, Default)]
pub(crate) struct CurrentMessage {
    ack: Mutex<Option<Ack>>,
}

impl CurrentMessage {
    pub(crate) fn set(&self, ack: Option<Ack>) {
        *lock(&self.ack) = ack;
    }

    pub(crate) fn get(&self) -> Option<Ack> {
        lock(&self.ack).clone()
    }
}

impl slipstream_core::__component::ItemOrigin for CurrentMessage {
    /// The partition and offset of the message being handled.
    fn position(&self) -> Option<(i32, i64)> {
        let ack = lock(&self.ack);
        ack.as_ref().map(|a| (a.partition, a.offset))
    }
}

impl AckEntry {
    /// The message's handling failed for good: its partition is never committed past it (it is
    /// read again after a restart), and nothing waits for it any more.
    pub(crate) fn fail(&self) {
        let mut partitions = self.tracker.lock();
        if let Some(p) = partitions.get_mut(&self.partition)
            && p.epoch == self.epoch
        {
            p.stuck = Some(p.stuck.map_or(self.offset, |s| s.min(self.offset)));
        }
    }
}

impl Drop for AckEntry {
    fn drop(&mut self) {
        let mut partitions = self.tracker.lock();
        if let Some(p) = partitions.get_mut(&self.partition)
            && p.epoch == self.epoch
        {
            p.in_flight.remove(&self.offset);
        }
    }
}

impl Tracker {
    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Partition>> {
        lock(&self.partitions)
    }

    /// Records a received message; the returned ack completes it.
    pub(crate) fn received(self: &Arc<Self>, partition: i32, offset: i64) -> Ack {
        let mut partitions = self.lock();
        let p = partitions.entry(partition).or_default();
        p.in_flight.insert(offset);
        p.next = Some(p.next.map_or(offset + 1, |next| next.max(offset + 1)));
        Arc::new(AckEntry {
            tracker: Arc::clone(self),
            partition,
            offset,
            epoch: p.epoch,
        })
    }

    /// Records a message that needs no handling (skipped); it counts as done at once.
    pub(crate) fn skipped(self: &Arc<Self>, partition: i32, offset: i64) {
        drop(self.received(partition, offset));
    }

    /// The positions that advanced since they were last taken (every position when `all`,
    /// for a last commit whose predecessors may have failed unseen), marking them committed.
    pub(crate) fn take_commits(&self, all: bool) -> Vec<(i32, i64)> {
        let mut partitions = self.lock();
        let mut commits = Vec::new();
        for (&partition, p) in partitions.iter_mut() {
            if let Some(position) = p.committable()
                && (all || p.committed != Some(position))
            {
                p.committed = Some(position);
                commits.push((partition, position));
            }
        }
        commits.sort_unstable();
        commits
    }

    /// The committable positions of `revoked` partitions, which are forgotten: acks of their
    /// messages still in flight no longer count.
    pub(crate) fn revoke(&self, revoked: &[i32]) -> Vec<(i32, i64)> {
        let mut partitions = self.lock();
        let mut commits = Vec::new();
        for partition in revoked {
            if let Some(p) = partitions.get_mut(partition) {
                if let Some(position) = p.committable() {
                    commits.push((*partition, position));
                }
                let epoch = p.epoch + 1;
                *p = Partition {
                    epoch,
                    ..Partition::default()
                };
            }
        }
        commits
    }

    /// After a seek: the partition resumes at `offset`; messages in flight before are forgotten.
    pub(crate) fn reset(&self, partition: i32, offset: i64) {
        let mut partitions = self.lock();
        let p = partitions.entry(partition).or_default();
        p.epoch += 1;
        p.in_flight.clear();
        p.next = Some(offset);
        p.committed = None;
        p.stuck = None;
    }

    /// The read position of each partition: one past the newest message received.
    pub(crate) fn positions(&self) -> HashMap<i32, i64> {
        self.lock()
            .iter()
            .filter_map(|(&partition, p)| Some((partition, p.next?)))
            .collect()
    }

    /// How many messages are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().values().map(|p| p.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_only_past_messages_done_in_order() {
        let tracker = Arc::new(Tracker::default());
        let a = tracker.received(0, 10);
        let b = tracker.received(0, 11);
        let c = tracker.received(0, 12);
        assert_eq!(tracker.take_commits(false), [(0, 10)]);
        drop(b); // 11 done, but 10 is not
        assert_eq!(tracker.take_commits(false), []);
        drop(a);
        assert_eq!(tracker.take_commits(false), [(0, 12)]);
        drop(c);
        assert_eq!(tracker.take_commits(false), [(0, 13)]);
        assert_eq!(tracker.take_commits(false), []);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_message_is_done_when_every_clone_is_dropped() {
        let tracker = Arc::new(Tracker::default());
        let ack = tracker.received(3, 0);
        let other_handler = Arc::clone(&ack);
        drop(ack);
        assert_eq!(tracker.in_flight(), 1);
        drop(other_handler);
        assert_eq!(tracker.take_commits(false), [(3, 1)]);
    }

    #[test]
    fn a_failed_message_is_never_committed_past_and_not_waited_for() {
        let tracker = Arc::new(Tracker::default());
        let a = tracker.received(0, 3);
        let b = tracker.received(0, 4);
        a.fail();
        drop(a);
        drop(b);
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.take_commits(false), [(0, 3)]);
        drop(tracker.received(0, 5));
        assert_eq!(tracker.take_commits(false), []);
        // A seek starts the partition afresh.
        tracker.reset(0, 3);
        drop(tracker.received(0, 3));
        assert_eq!(tracker.take_commits(false), [(0, 4)]);
    }

    #[test]
    fn partitions_are_independent_and_skips_count_as_done() {
        let tracker = Arc::new(Tracker::default());
        let _p0 = tracker.received(0, 5);
        tracker.skipped(1, 7);
        assert_eq!(tracker.take_commits(false), [(0, 5), (1, 8)]);
    }

    #[test]
    fn revoked_and_reset_partitions_ignore_old_acks() {
        let tracker = Arc::new(Tracker::default());
        let old = tracker.received(0, 1);
        assert_eq!(tracker.revoke(&[0]), [(0, 1)]);
        let new = tracker.received(0, 1);
        drop(old); // from before the revocation: ignored
        assert_eq!(tracker.in_flight(), 1);
        drop(new);
        tracker.reset(0, 0);
        assert_eq!(tracker.take_commits(false), [(0, 0)]);
    }
}
