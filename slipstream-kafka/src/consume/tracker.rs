//! At-least-once bookkeeping: which offsets of each partition are in flight, and how far each
//! partition may be committed.
//!
//! An offset may be committed only once the message at it and every earlier message of its
//! partition have been handled by every handler reading the topic (and all their sinks). Each
//! delivered message comes with an [`Ack`] whose target is an [`Entry`] here.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use futures::future::BoxFuture;
use slipstream_core::__component::lock;
use slipstream_core::partition::Origin;
use slipstream_core::{Ack, Acknowledge, BoxError, DeadLetter};

use crate::produce::dead_letter::DeadLetters;

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
    /// The tracker's generation when the partition's last seek completed (`u64::MAX` while it
    /// is under way), and where it resumed.
    sought: Option<(u64, i64)>,
    /// The offset the run read from the position sought continues with, once its first
    /// message has come: messages taken while the seek completes are fresh when they follow
    /// on from it.
    resumed_next: Option<i64>,
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
pub(crate) struct Tracker {
    partitions: Mutex<HashMap<i32, Partition>>,
    /// Notified whenever a message is settled.
    settled: std::sync::Condvar,
    /// Bumped by every seek.
    generation: std::sync::atomic::AtomicU64,
    /// The topic, for logs.
    topic: Arc<str>,
    /// Forwards failed messages to dead-letter topics.
    letters: Option<Arc<DeadLetters>>,
}

impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tracker")
            .field("topic", &self.topic)
            .finish_non_exhaustive()
    }
}

/// One delivered message, as its acknowledgement's target.
#[derive(Debug)]
pub(crate) struct Entry {
    tracker: Arc<Tracker>,
    partition: i32,
    offset: i64,
    epoch: u64,
}

impl Entry {
    fn settle(&self, failed: bool) {
        let mut partitions = self.tracker.lock();
        if let Some(p) = partitions.get_mut(&self.partition)
            && p.epoch == self.epoch
        {
            p.in_flight.remove(&self.offset);
            if failed {
                // Never committed past: it is read again after a restart.
                p.stuck = Some(p.stuck.map_or(self.offset, |s| s.min(self.offset)));
            }
        }
        drop(partitions);
        self.tracker.settled.notify_all();
    }
}

impl Acknowledge for Entry {
    fn done(&self) {
        self.settle(false);
    }

    fn failed(&self) {
        self.settle(true);
    }

    fn withdrawn(&self) -> bool {
        let partitions = self.tracker.lock();
        partitions
            .get(&self.partition)
            .is_none_or(|p| p.epoch != self.epoch)
    }

    fn origin(&self) -> Option<Origin> {
        Some(Origin {
            source: Arc::clone(&self.tracker.topic),
            partition: self.partition,
        })
    }

    fn describe(&self) -> Option<String> {
        Some(format!(
            "topic {} partition {} offset {}",
            self.tracker.topic, self.partition, self.offset
        ))
    }

    fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        let letters = self.tracker.letters.as_ref()?;
        Some(letters.forward(self.partition, self.offset, letter))
    }
}

impl Tracker {
    /// The bookkeeping of a consumer of `topic`.
    pub(crate) fn new(topic: &str, letters: Option<Arc<DeadLetters>>) -> Self {
        Tracker {
            partitions: Mutex::default(),
            settled: std::sync::Condvar::new(),
            generation: std::sync::atomic::AtomicU64::new(0),
            topic: topic.into(),
            letters,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i32, Partition>> {
        lock(&self.partitions)
    }

    /// Records a message taken from the consumer at `generation` (see
    /// [`generation`](Self::generation)); the returned ack completes it. `None` for a message
    /// fetched before a seek of its partition (the first one after the seek is at the position
    /// sought), which is not to be delivered.
    pub(crate) fn received(
        self: &Arc<Self>,
        partition: i32,
        offset: i64,
        generation: u64,
    ) -> Option<Ack> {
        let mut partitions = self.lock();
        let p = partitions.entry(partition).or_default();
        if let Some((sought_at, resumed)) = p.sought
            && generation < sought_at
        {
            // Taken from the consumer while (or before) the seek completed: fresh only as
            // the run that starts at the position sought (the consumer may already be reading
            // there before the seek call returns).
            let fresh = match p.resumed_next {
                None => offset == resumed,
                Some(next) => offset == next,
            };
            if !fresh {
                return None;
            }
            p.resumed_next = Some(offset + 1);
        }
        p.in_flight.insert(offset);
        p.next = Some(p.next.map_or(offset + 1, |next| next.max(offset + 1)));
        Some(Ack::new(Entry {
            tracker: Arc::clone(self),
            partition,
            offset,
            epoch: p.epoch,
        }))
    }

    /// A commit of `commits` failed: they are committed again on the next occasion.
    pub(crate) fn uncommitted(&self, commits: &[(i32, i64)]) {
        let mut partitions = self.lock();
        for (partition, offset) in commits {
            if let Some(p) = partitions.get_mut(partition)
                && p.committed == Some(*offset)
            {
                p.committed = None;
            }
        }
    }

    /// `partition`, assigned again, resumes at `position` (what was done before its
    /// revocation, whose commit failed then): the next commit takes it.
    pub(crate) fn resume(&self, partition: i32, position: i64) {
        let mut partitions = self.lock();
        let p = partitions.entry(partition).or_default();
        p.next = Some(p.next.map_or(position, |next| next.max(position)));
        p.committed = None;
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

    /// The committable positions of `partitions`.
    pub(crate) fn committable(&self, partitions: &[i32]) -> Vec<(i32, i64)> {
        let tracked = self.lock();
        partitions
            .iter()
            .filter_map(|partition| Some((*partition, tracked.get(partition)?.committable()?)))
            .collect()
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
        drop(partitions);
        self.settled.notify_all();
        commits
    }

    /// The generation to pass to [`received`](Self::received) for a message about to be taken
    /// from the consumer.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// A seek of `partition` to `offset` begins: what was delivered before is withdrawn, and
    /// the partition resumes at `offset`.
    pub(crate) fn begin_seek(&self, partition: i32, offset: i64) {
        let mut partitions = self.lock();
        let p = partitions.entry(partition).or_default();
        p.sought = Some((u64::MAX, offset));
        p.resumed_next = None;
        p.epoch += 1;
        p.in_flight.clear();
        p.next = Some(offset);
        p.committed = None;
        p.stuck = None;
        drop(partitions);
        self.settled.notify_all();
    }

    /// The seek of `partition` is done: the consumer no longer returns what it fetched before.
    pub(crate) fn end_seek(&self, partition: i32) {
        let mut partitions = self.lock();
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst)
            + 1;
        if let Some(p) = partitions.get_mut(&partition)
            && let Some((_, offset)) = p.sought
        {
            p.sought = Some((generation, offset));
        }
    }

    /// A seek, all at once (for tests).
    #[cfg(test)]
    pub(crate) fn reset(&self, partition: i32, offset: i64) {
        self.begin_seek(partition, offset);
        self.end_seek(partition);
    }

    /// The read position of each partition: one past the newest message received.
    pub(crate) fn positions(&self) -> HashMap<i32, i64> {
        self.lock()
            .iter()
            .filter_map(|(&partition, p)| Some((partition, p.next?)))
            .collect()
    }

    /// Waits until no message of `partitions` is in flight, at most `timeout`; whether none is.
    pub(crate) fn wait_settled(&self, partitions: &[i32], timeout: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        let mut tracked = self.lock();
        loop {
            let busy = partitions
                .iter()
                .any(|p| tracked.get(p).is_some_and(|p| !p.in_flight.is_empty()));
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if !busy || left.is_zero() {
                return !busy;
            }
            tracked = self
                .settled
                .wait_timeout(tracked, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Waits until no message is in flight, at most `timeout`; whether none is.
    pub(crate) fn wait_all_settled(&self, timeout: std::time::Duration) -> bool {
        let partitions: Vec<i32> = self.lock().keys().copied().collect();
        self.wait_settled(&partitions, timeout)
    }

    /// Whether a message failed for good (it is never committed past).
    pub(crate) fn any_stuck(&self) -> bool {
        self.lock().values().any(|p| p.stuck.is_some())
    }

    /// How many messages are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.lock().values().map(|p| p.in_flight.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tracker() -> Arc<Tracker> {
        Arc::new(Tracker::new("t", None))
    }

    #[test]
    fn commits_only_past_messages_done_in_order() {
        let tracker = tracker();
        let a = tracker.received(0, 10, 0).unwrap();
        let b = tracker.received(0, 11, 0).unwrap();
        let c = tracker.received(0, 12, 0).unwrap();
        assert_eq!(tracker.take_commits(false), [(0, 10)]);
        b.done(); // 11 done, but 10 is not
        assert_eq!(tracker.take_commits(false), []);
        a.done();
        assert_eq!(tracker.take_commits(false), [(0, 12)]);
        c.done();
        assert_eq!(tracker.take_commits(false), [(0, 13)]);
        assert_eq!(tracker.take_commits(false), []);
        assert_eq!(tracker.in_flight(), 0);
    }

    #[test]
    fn a_message_is_done_when_every_holder_is_done() {
        let tracker = tracker();
        let ack = tracker.received(3, 0, 0).unwrap();
        let other_handler = ack.clone();
        ack.done();
        assert_eq!(tracker.in_flight(), 1);
        other_handler.done();
        assert_eq!(tracker.take_commits(false), [(3, 1)]);
    }

    #[test]
    fn a_failed_or_dropped_message_is_never_committed_past_and_not_waited_for() {
        let tracker = tracker();
        let a = tracker.received(0, 3, 0).unwrap();
        let b = tracker.received(0, 4, 0).unwrap();
        a.fail();
        b.done();
        assert_eq!(tracker.in_flight(), 0);
        assert_eq!(tracker.take_commits(false), [(0, 3)]);
        tracker.received(0, 5, 0).unwrap().done();
        assert_eq!(tracker.take_commits(false), []);
        // A seek starts the partition afresh.
        tracker.reset(0, 3);
        let now = tracker.generation();
        tracker.received(0, 3, now).unwrap().done();
        assert_eq!(tracker.take_commits(false), [(0, 4)]);
        // Dropped unhandled (its handler stopped): as failed.
        drop(tracker.received(0, 4, now).unwrap());
        tracker.received(0, 5, now).unwrap().done();
        assert_eq!(tracker.take_commits(false), []);
    }

    #[test]
    fn partitions_are_independent_and_skips_count_as_done() {
        let tracker = tracker();
        let _p0 = tracker.received(0, 5, 0).unwrap();
        tracker.received(1, 7, 0).unwrap().done();
        assert_eq!(tracker.take_commits(false), [(0, 5), (1, 8)]);
    }

    #[test]
    fn revoked_and_reset_partitions_ignore_old_acks() {
        let tracker = tracker();
        let old = tracker.received(0, 1, 0).unwrap();
        assert_eq!(tracker.revoke(&[0]), [(0, 1)]);
        assert!(old.is_withdrawn());
        let new = tracker.received(0, 1, 0).unwrap();
        old.fail(); // from before the revocation: ignored
        assert_eq!(tracker.in_flight(), 1);
        new.done();
        tracker.reset(0, 0);
        assert_eq!(tracker.take_commits(false), [(0, 0)]);
    }

    #[test]
    fn a_message_fetched_before_a_seek_is_not_delivered() {
        let tracker = tracker();
        let before = tracker.generation();
        tracker.received(0, 10, before).unwrap().done();
        tracker.begin_seek(0, 50);
        // Taken from the consumer while the seek was under way.
        assert!(tracker.received(0, 11, before).is_none());
        // The message at the position sought, even if taken then, and the ones following it.
        let sought = tracker.received(0, 50, before).unwrap();
        tracker.received(0, 51, before).unwrap().done();
        assert!(tracker.received(0, 12, before).is_none());
        tracker.end_seek(0);
        let after = tracker.generation();
        let next = tracker.received(0, 52, after).unwrap();
        assert!(!sought.is_withdrawn());
        sought.done();
        next.done();
        assert_eq!(tracker.take_commits(false), [(0, 53)]);
    }

    #[test]
    fn a_partition_resumed_after_a_failed_revocation_commit_is_committed_there() {
        let tracker = tracker();
        tracker.resume(0, 42);
        assert_eq!(tracker.take_commits(false), [(0, 42)]);
        assert_eq!(tracker.take_commits(false), []);
        let ack = tracker.received(0, 42, tracker.generation()).unwrap();
        ack.done();
        assert_eq!(tracker.take_commits(false), [(0, 43)]);
    }

    #[test]
    fn a_failed_commit_is_taken_again() {
        let tracker = tracker();
        tracker.received(0, 1, 0).unwrap().done();
        let commits = tracker.take_commits(false);
        assert_eq!(commits, [(0, 2)]);
        assert_eq!(tracker.take_commits(false), []);
        tracker.uncommitted(&commits);
        assert_eq!(tracker.take_commits(false), [(0, 2)]);
    }
}
