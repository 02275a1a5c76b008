//! The consumer's callbacks: rebalances (start positions, restoring what follows the
//! partitions, committing before a revocation, resuming kept positions), logs and statistics.
//! Layer: consuming (below state and the topic; names neither).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};

use super::commit::{
    CALL_TIMEOUT, FINAL_COMMIT_ATTEMPT, commit_within, offsets, partitions_of, positions,
};
use super::listener::RebalanceListener;
use super::start::{StartAt, start_offset};
use super::tracker::Tracker;
use crate::client;
use crate::client::Link;
use crate::exactly_once::Transactions;
use slipstream_core::__component::ConsumerStatus;
use slipstream_core::__component::lock;
use slipstream_core::{Error, PauseHandle};

/// How long a revocation waits for the messages of its partitions being handled, when state
/// follows the partitions.
const REVOKE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The consumer's rebalances: how many, and when each partition last moved (was assigned,
/// revoked, or sought), as a stamp. An end of partition seen before its partition moved no
/// longer holds: librdkafka reports it again only once it fetches that partition anew.
/// Partitions that stay through an incremental rebalance keep theirs.
#[derive(Default)]
pub(crate) struct Rebalances {
    count: AtomicU64,
    stamp: AtomicU64,
    moved: Mutex<HashMap<i32, u64>>,
}

impl Rebalances {
    /// How many assignments and revocations there have been.
    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::SeqCst)
    }

    /// The stamp of now: bumped by every move.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp.load(Ordering::SeqCst)
    }

    /// `partitions` were assigned or revoked.
    fn moved(&self, partitions: &[i32]) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.sought(partitions);
    }

    /// `partitions` were sought (their position moved; not a rebalance).
    pub(crate) fn sought(&self, partitions: &[i32]) {
        let mut moved = lock(&self.moved);
        let now = self.stamp.fetch_add(1, Ordering::SeqCst) + 1;
        for &partition in partitions {
            moved.insert(partition, now);
        }
    }

    /// Whether `partition` has stayed put since the stamp was `seen`.
    pub(crate) fn unmoved_since(&self, partition: i32, seen: u64) -> bool {
        lock(&self.moved)
            .get(&partition)
            .is_none_or(|&moved| moved <= seen)
    }
}

/// The consumer's callbacks.
pub(crate) struct Context {
    pub(super) topic: String,
    pub(super) tracker: Arc<Tracker>,
    pub(super) pause: PauseHandle,
    pub(super) group: bool,
    pub(super) failed: Arc<AtomicBool>,
    /// The assignment and whether the stream has ended, as health reports them.
    pub(super) status: Arc<ConsumerStatus>,
    /// Counts every assignment and revocation.
    pub(super) rebalances: Arc<Rebalances>,
    /// What the client knows of its brokers (its health probe).
    pub(super) link: Arc<Link>,
    /// Where a group consumer starts reading each partition the group assigns it (`None`: from
    /// the committed offsets), until it has committed an offset of that partition itself.
    pub(super) start: Option<StartAt>,
    /// The partitions this consumer has committed offsets of: they resume from there.
    pub(super) started: Mutex<std::collections::HashSet<i32>>,
    /// Positions whose commit failed when their partitions were revoked (during a rebalance):
    /// if the next assignment gives them back, they resume there and are committed then,
    /// instead of being read again from the older committed offsets.
    pub(super) resume: Mutex<HashMap<i32, i64>>,
    /// Caches that follow the topic's partitions: restored before assigned partitions are
    /// read, told when they are revoked.
    pub(super) followers: Arc<dyn RebalanceListener>,
    /// Exactly-once: the transactions that carry the positions (nothing is committed to the
    /// group outside them).
    pub(super) transactions: Option<Arc<Transactions>>,
    /// The consumer group, when the topic is read in one.
    pub(super) group_id: Option<String>,
    /// Set once the final commit is done: a revocation after it (as the consumer closes) has
    /// nothing to commit, and must not block on a group that may be gone.
    pub(super) final_committed: Arc<AtomicBool>,
}

impl Context {
    /// Sets the start position of the partitions in `assigned` this consumer has not committed
    /// an offset of yet.
    fn apply_start(&self, assigned: &mut TopicPartitionList) {
        let Some(start) = &self.start else {
            return;
        };
        let started = lock(&self.started);
        let fresh: Vec<i32> = assigned
            .elements_for_topic(&self.topic)
            .iter()
            .map(|e| e.partition())
            .filter(|p| !started.contains(p))
            .collect();
        drop(started);
        for partition in fresh {
            let offset = start_offset(start, partition);
            if let Err(error) = assigned.set_partition_offset(&self.topic, partition, offset) {
                tracing::warn!(topic = %self.topic, partition, %error, "cannot apply the start position");
            }
        }
    }
}

impl Context {
    /// Sets the offset of the partitions in `assigned` that resume where a failed revocation
    /// commit left them, and returns them; positions of partitions not given back are dropped,
    /// and so are those the group's committed offset has reached meanwhile (another member
    /// held the partition in between: resuming would commit over its progress).
    fn take_resumed(
        &self,
        consumer: &BaseConsumer<Self>,
        assigned: &mut TopicPartitionList,
    ) -> Vec<(i32, i64)> {
        let resume = std::mem::take(&mut *lock(&self.resume));
        let back: HashMap<i32, i64> = assigned
            .elements_for_topic(&self.topic)
            .iter()
            .filter_map(|e| resume.get(&e.partition()).map(|o| (e.partition(), *o)))
            .collect();
        if back.is_empty() {
            return Vec::new();
        }
        let mut asked = TopicPartitionList::new();
        for partition in back.keys() {
            asked.add_partition(&self.topic, *partition);
        }
        let committed = match client::blocking(|| consumer.committed_offsets(asked, CALL_TIMEOUT)) {
            // A partition the broker answered with an error is read from its committed offset.
            Ok(list) => list
                .elements_for_topic(&self.topic)
                .iter()
                .filter_map(|e| match (e.error(), e.offset()) {
                    (Err(_), _) => Some((e.partition(), i64::MAX)),
                    (Ok(()), Offset::Offset(offset)) => Some((e.partition(), offset)),
                    (Ok(()), _) => None,
                })
                .collect(),
            Err(error) => {
                tracing::info!(topic = %self.topic, %error, "cannot read the group's committed offsets: the partitions resume from them, not from this instance's positions");
                return Vec::new();
            }
        };
        let back = ahead_of(&back, &committed);
        for (partition, position) in &back {
            let offset = Offset::Offset(*position);
            if let Err(error) = assigned.set_partition_offset(&self.topic, *partition, offset) {
                tracing::warn!(topic = %self.topic, partition, %error, "cannot resume the partition");
            }
        }
        self.committed(back.iter().map(|(p, _)| *p));
        back
    }

    /// Records that this consumer committed offsets of `partitions`.
    pub(super) fn committed(&self, partitions: impl IntoIterator<Item = i32>) {
        if self.start.is_some() {
            lock(&self.started).extend(partitions);
        }
    }
}

impl ClientContext for Context {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.link.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Reaching the end of a partition is news, not trouble.
        if matches!(&error, KafkaError::Global(code) if *code == rdkafka::types::RDKafkaErrorCode::PartitionEOF)
        {
            tracing::debug!(target: "librdkafka", topic = %self.topic, "{reason}");
            return;
        }
        self.link.error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.link.statistics(&statistics);
    }
}

impl ConsumerContext for Context {
    fn commit_callback(
        &self,
        result: rdkafka::error::KafkaResult<()>,
        offsets: &TopicPartitionList,
    ) {
        if result.is_ok() {
            self.committed(positions(offsets, &self.topic).map(|(p, _)| p));
        }
        if let Err(error) = result {
            // Taken again on the next occasion (a commit refused during a rebalance, say).
            let failed: Vec<(i32, i64)> = positions(offsets, &self.topic).collect();
            tracing::warn!(topic = %self.topic, %error, ?failed, "commit failed; it will be retried");
            self.tracker.uncommitted(&failed);
        }
    }

    /// rdkafka's rebalance, with the start position applied to newly assigned partitions.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let outcome = match err {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                // Closing (an assignment on its way as the consumer left): taken without
                // restoring or resuming anything, and revoked next.
                if !self.final_committed.load(Ordering::SeqCst)
                    && !self.prepare_assigned(consumer, partitions)
                {
                    return;
                }
                self.pre_rebalance(consumer, &Rebalance::Assign(partitions));
                let assigned = if cooperative {
                    consumer.incremental_assign(partitions)
                } else {
                    consumer.assign(partitions)
                };
                self.post_rebalance(consumer, &Rebalance::Assign(partitions));
                assigned
            }
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => {
                self.pre_rebalance(consumer, &Rebalance::Revoke(partitions));
                let revoked = if cooperative {
                    consumer.incremental_unassign(partitions)
                } else {
                    consumer.unassign()
                };
                self.post_rebalance(consumer, &Rebalance::Revoke(partitions));
                let gone = partitions_of(partitions, &self.topic);
                self.followers.revoked(&gone);
                revoked
            }
            other => {
                let error = KafkaError::Rebalance(other.into());
                self.pre_rebalance(consumer, &Rebalance::Error(error.clone()));
                if self.transactions.is_some() {
                    // What is still being handled no longer counts towards any position.
                    self.tracker.revoke(&self.status.assignment());
                }
                let unassigned = consumer.unassign();
                self.followers.revoked_all();
                self.post_rebalance(consumer, &Rebalance::Error(error));
                unassigned
            }
        };
        if let Err(error) = outcome {
            tracing::warn!(topic = %self.topic, %error, "cannot apply the group's assignment");
        }
    }

    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(revoked) = rebalance {
            let partitions = partitions_of(revoked, &self.topic);
            tracing::info!(topic = %self.topic, ?partitions, "partitions revoked");
            self.rebalances.moved(&partitions);
            self.status.revoke(&partitions);
            let commit = self.group && !self.failed.load(Ordering::SeqCst);
            if let Some(transactions) = &self.transactions {
                // The open transaction carries what was done with the partitions: it commits
                // before another instance takes them (unless closing: the last commit is done).
                let lost = consumer.assignment_lost();
                if self.final_committed.load(Ordering::SeqCst) {
                    // Nothing is left to commit, nor to lose.
                } else if lost && commit {
                    let error = Error::kafka(
                        &self.topic,
                        "the group took this instance's partitions (it missed its session or poll timeout): the open transaction is not committed; restart the instance",
                    );
                    tracing::error!(topic = %self.topic, %error, "stopping");
                    self.failed.store(true, Ordering::SeqCst);
                    self.followers.stop(error);
                } else if commit
                    && !self.status.is_finished()
                    && let Err(error) = client::blocking(|| transactions.commit_revoking())
                {
                    tracing::error!(topic = %self.topic, %error, "cannot commit the transaction on revocation; stopping");
                    self.failed.store(true, Ordering::SeqCst);
                    self.followers.stop(error);
                }
                self.tracker.revoke(&partitions);
                return;
            }
            if self.final_committed.load(Ordering::SeqCst) {
                self.tracker.revoke(&partitions);
                return;
            }
            // A lost assignment (the session ran out while the coordinator was unreachable, say)
            // cannot be committed: the group has left this member behind, and a commit would
            // wait for an answer that is a refusal at best.
            let lost = consumer.assignment_lost();
            if self.status.is_finished() {
                // Closing: what the revocation cannot commit stays for the final commit, which
                // the consumer retries once it is in the group again.
                let commits = self.tracker.committable(&partitions);
                let committed = !commit
                    || commits.is_empty()
                    || (!lost
                        && commit_within(
                            consumer.client(),
                            &offsets(&self.topic, &commits),
                            FINAL_COMMIT_ATTEMPT,
                        )
                        .is_ok());
                if committed {
                    self.tracker.revoke(&partitions);
                }
                return;
            }
            // State following the partitions holds the changes of messages being handled: they
            // are finished and committed before another instance restores that state, which
            // would otherwise hold changes of messages it then handles again.
            if self.followers.any()
                && !lost
                && !self.failed.load(Ordering::SeqCst)
                && !client::blocking(|| {
                    self.tracker.wait_settled(&partitions, REVOKE_DRAIN_TIMEOUT)
                })
            {
                tracing::warn!(topic = %self.topic, ?partitions, "messages of revoked partitions were still being handled after {REVOKE_DRAIN_TIMEOUT:?}: their new owner handles them again");
            }
            let commits = self.tracker.revoke(&partitions);
            if commit && lost && !commits.is_empty() {
                tracing::info!(topic = %self.topic, ?partitions, "assignment lost: its positions are kept for the next assignment, not committed");
                lock(&self.resume).extend(commits.iter().copied());
            } else if commit && !commits.is_empty() {
                let list = offsets(&self.topic, &commits);
                match commit_within(consumer.client(), &list, CALL_TIMEOUT) {
                    Ok(()) => self.committed(commits.iter().map(|(p, _)| *p)),
                    // Kept for when the partitions come back (the commit is refused while the
                    // group rebalances); a new owner reads them again (at-least-once).
                    Err(error) => {
                        tracing::info!(topic = %self.topic, %error, "commit on revocation failed; kept for the next assignment");
                        lock(&self.resume).extend(commits.iter().copied());
                    }
                }
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Error(error) = rebalance {
            // rdkafka unassigns everything after a failed rebalance.
            tracing::warn!(topic = %self.topic, %error, "rebalance failed");
            self.status.clear();
        }
        if let Rebalance::Assign(assigned) = rebalance {
            let partitions = partitions_of(assigned, &self.topic);
            tracing::info!(topic = %self.topic, ?partitions, "partitions assigned");
            self.rebalances.moved(&partitions);
            self.status.assign(partitions);
            if self.pause.is_paused()
                && let Err(error) = consumer.pause(assigned)
            {
                tracing::warn!(topic = %self.topic, %error, "cannot pause new partitions");
            }
        }
    }
}

impl Context {
    /// Sets where the newly assigned `partitions` start (resumed positions, the topic's start
    /// position, the last committed transaction) and restores the state that follows them;
    /// false when that failed and the application is stopping.
    fn prepare_assigned(
        &self,
        consumer: &BaseConsumer<Context>,
        partitions: &mut TopicPartitionList,
    ) -> bool {
        let resumed = self.take_resumed(consumer, partitions);
        for (partition, position) in &resumed {
            self.tracker.resume(*partition, *position);
        }
        self.apply_start(partitions);
        let assigned = partitions_of(partitions, &self.topic);
        if let Err(error) = self.resume_committed(partitions, &assigned) {
            tracing::error!(topic = %self.topic, %error, "cannot read where the assigned partitions resume; stopping");
            self.failed.store(true, Ordering::SeqCst);
            self.followers.stop(error);
            return false;
        }
        // State following the partitions is restored before any of their messages is read.
        if let Err(error) = self.followers.assigned(&assigned) {
            tracing::error!(topic = %self.topic, %error, "cannot restore the state of the assigned partitions; stopping");
            self.failed.store(true, Ordering::SeqCst);
            self.followers.stop(error);
            return false;
        }
        true
    }

    /// Exactly-once: sets the offset of the `assigned` partitions to where the last committed
    /// transaction left them.
    fn resume_committed(
        &self,
        list: &mut TopicPartitionList,
        assigned: &[i32],
    ) -> Result<(), Error> {
        let Some(transactions) = &self.transactions else {
            return Ok(());
        };
        // A topic's start position applies to a partition until this run has committed it.
        let resuming: Vec<i32> = match &self.start {
            None => assigned.to_vec(),
            Some(_) => {
                let started = lock(&self.started);
                assigned
                    .iter()
                    .copied()
                    .filter(|p| started.contains(p))
                    .collect()
            }
        };
        let group = self.group_id.as_deref().unwrap_or_default();
        let positions = client::blocking(|| transactions.positions(group, &self.topic, &resuming))?;
        tracing::debug!(topic = %self.topic, ?positions, "resuming from the committed transaction");
        for (partition, offset) in positions {
            list.set_partition_offset(&self.topic, partition, Offset::Offset(offset))
                .map_err(|e| Error::kafka(&self.topic, e))?;
        }
        Ok(())
    }
}

/// The positions in `resumed` past the group's `committed` offset of their partition (all of
/// them where none is committed), by partition.
fn ahead_of(resumed: &HashMap<i32, i64>, committed: &HashMap<i32, i64>) -> Vec<(i32, i64)> {
    let mut ahead: Vec<(i32, i64)> = resumed
        .iter()
        .filter(|(partition, position)| committed.get(partition).is_none_or(|c| *position > c))
        .map(|(p, o)| (*p, *o))
        .collect();
    ahead.sort_unstable();
    ahead
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_position_the_group_has_reached_is_dropped() {
        let resumed = HashMap::from([(0, 10), (1, 10), (2, 10), (3, 10)]);
        // Partition 1: another member committed further meanwhile; 2: exactly there; 3: none
        // committed.
        let committed = HashMap::from([(0, 7), (1, 12), (2, 10)]);
        assert_eq!(ahead_of(&resumed, &committed), [(0, 10), (3, 10)]);
    }

    #[test]
    fn an_end_holds_until_its_own_partition_moves() {
        let rebalances = Rebalances::default();
        rebalances.moved(&[0, 1, 2]);
        let seen = rebalances.stamp();
        assert!((0..3).all(|p| rebalances.unmoved_since(p, seen)));
        // An incremental rebalance takes partition 2 away: the ends of 0 and 1 still hold.
        rebalances.moved(&[2]);
        assert!(rebalances.unmoved_since(0, seen) && rebalances.unmoved_since(1, seen));
        assert!(!rebalances.unmoved_since(2, seen));
        // Partition 1 comes back (assigned anew): its end must be seen again.
        rebalances.moved(&[1]);
        assert!(!rebalances.unmoved_since(1, seen));
        assert!(rebalances.unmoved_since(1, rebalances.stamp()));
        // A seek moves a partition too, but is no rebalance.
        rebalances.sought(&[0]);
        assert!(!rebalances.unmoved_since(0, seen));
        assert_eq!(rebalances.count(), 3);
        assert_eq!(rebalances.stamp(), 4);
    }
}
