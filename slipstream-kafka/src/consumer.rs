//! Consuming a topic: one consumer per topic and run, its rebalance callbacks, the stream of
//! decoded messages, and the task that commits what handlers have finished.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::Stream;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol,
    StreamConsumer,
};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::metadata::Metadata;
use rdkafka::statistics::Statistics;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

use super::client;
use super::link::Link;
use super::message::{Message, header_pairs};
use super::tracker::Tracker;
use super::transaction::{Member, Transactions};
use crate::codec::Codec;
use crate::conf::Conf;
use crate::dead_letter::{DeadLetters, Raw, Reason};
use crate::start::{StartAt, start_offset};
use slipstream_core::__component::PauseChanges;
use slipstream_core::__component::lock;
use slipstream_core::__component::{ConsumerProbe, ConsumerStatus, PartitionReport, RestoreReport};
use slipstream_core::{Ack, BoxError, Error, PauseHandle};

/// How long the final commit waits for handlers still holding messages.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a revocation waits for the messages of its partitions being handled, when state
/// follows the partitions.
const REVOKE_DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refused final commit is tried again.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one attempt at the final commit waits for the broker's answer.
const FINAL_COMMIT_ATTEMPT: Duration = Duration::from_secs(3);
/// How long a report waits for the committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(2);
/// How long blocking consumer calls may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a closing consumer waits for the group to take its partitions back.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The consumer's callbacks.
pub(crate) struct Context {
    topic: String,
    tracker: Arc<Tracker>,
    pause: PauseHandle,
    group: bool,
    failed: Arc<AtomicBool>,
    /// The assignment and whether the stream has ended, as health reports them.
    status: Arc<ConsumerStatus>,
    /// Bumped by every assignment and revocation: an end-of-partition seen before does not
    /// count after it.
    rebalances: Arc<AtomicU64>,
    /// What the client knows of its brokers (its health probe).
    link: Arc<Link>,
    /// Where a group consumer starts reading each partition the group assigns it (`None`: from
    /// the committed offsets), until it has committed an offset of that partition itself.
    start: Option<StartAt>,
    /// The partitions this consumer has committed offsets of: they resume from there.
    started: Mutex<std::collections::HashSet<i32>>,
    /// Positions whose commit failed when their partitions were revoked (during a rebalance):
    /// if the next assignment gives them back, they resume there and are committed then,
    /// instead of being read again from the older committed offsets.
    resume: Mutex<HashMap<i32, i64>>,
    /// Caches that follow the topic's partitions: restored before assigned partitions are
    /// read, told when they are revoked.
    followers: Arc<dyn RebalanceListener>,
    /// Exactly-once: the transactions that carry the positions (nothing is committed to the
    /// group outside them).
    transactions: Option<Arc<Transactions>>,
    /// The consumer group, when the topic is read in one.
    group_id: Option<String>,
    /// Set once the final commit is done: a revocation after it (as the consumer closes) has
    /// nothing to commit, and must not block on a group that may be gone.
    final_committed: Arc<AtomicBool>,
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
    fn committed(&self, partitions: impl IntoIterator<Item = i32>) {
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
            self.rebalances.fetch_add(1, Ordering::SeqCst);
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
            self.rebalances.fetch_add(1, Ordering::SeqCst);
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

/// The partitions of `topic` in `list`.
fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// The partitions of `topic` in `list` that have an offset, with it.
fn positions<'a>(
    list: &'a TopicPartitionList,
    topic: &'a str,
) -> impl Iterator<Item = (i32, i64)> + 'a {
    list.elements_for_topic(topic)
        .into_iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
}

/// Commits `list` and waits for the broker's answer, at most `wait`. (librdkafka's
/// synchronous commit waits for ever: a commit left unanswered, by a group coordinator lost as
/// the consumer closes, say, would block its thread, and a runtime shutting down with it.)
fn commit_within<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    list: &TopicPartitionList,
    wait: Duration,
) -> Result<(), KafkaError> {
    use rdkafka::bindings as rd;
    use rdkafka::types::RDKafkaErrorCode;
    let rk = client.native_ptr();
    let timeout = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is a live consumer handle; librdkafka copies `list` before returning; the
    // queue is created, polled and destroyed here, and the event taken from it destroyed once
    // read (an answer arriving after the queue is gone is discarded by librdkafka).
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let scheduled =
            rd::rd_kafka_commit_queue(rk, list.ptr(), queue, None, std::ptr::null_mut());
        let result = if scheduled != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(KafkaError::ConsumerCommit(scheduled.into()))
        } else {
            let event = rd::rd_kafka_queue_poll(queue, timeout);
            if event.is_null() {
                Err(KafkaError::ConsumerCommit(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            } else {
                let error = rd::rd_kafka_event_error(event);
                rd::rd_kafka_event_destroy(event);
                match error {
                    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
                    error => Err(KafkaError::ConsumerCommit(error.into())),
                }
            }
        };
        rd::rd_kafka_queue_destroy(queue);
        result
    }
}

fn offsets(topic: &str, commits: &[(i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(commits.len());
    for &(partition, offset) in commits {
        // Only fails for an invalid offset, which the tracker never produces.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    list
}

/// What follows the consumer's assignment (the state of caches that follow its topic):
/// implemented by the changelogs, above this module, which names none of them.
pub(crate) trait RebalanceListener: Send + Sync {
    /// Whether any state follows the topic.
    fn any(&self) -> bool;
    /// Records where the group stood as this process's consumer of the topic starts (`conf`,
    /// its settings, names the group).
    fn note_start(&self, conf: &Conf, group: &str, topic: &str);
    /// Restores `partitions` (the group assigned them) before any of their messages is read.
    fn assigned(&self, partitions: &[i32]) -> Result<(), Error>;
    /// `partitions` went elsewhere.
    fn revoked(&self, partitions: &[i32]);
    /// Every partition went (a failed rebalance unassigns them all).
    fn revoked_all(&self);
    /// Stops the application (the state cannot follow the partitions).
    fn stop(&self, error: Error);
    /// The restorations under way, for health.
    fn restorations(&self) -> Vec<RestoreReport>;
}

/// A running consumer of one topic.
pub(crate) struct Running {
    pub(crate) consumer: StreamConsumer<Context>,
    /// Shared by every message read (no copy per message).
    pub(crate) topic: Arc<str>,
    tracker: Arc<Tracker>,
    group: bool,
    /// The consumer group, when the topic is read in one.
    group_id: Option<String>,
    /// Set when the application stops on a failure: from then on nothing is committed, so that
    /// messages dropped unhandled are read again after a restart.
    failed: Arc<AtomicBool>,
    status: Arc<ConsumerStatus>,
    /// The committed offsets the broker last told, kept for when it does not answer.
    committed: Mutex<HashMap<i32, i64>>,
    /// The highest high watermark seen per partition, against which an end-of-partition report
    /// is checked (a restarted broker may report a partition's end early).
    high_seen: Mutex<HashMap<i32, i64>>,
    /// Bumped by every assignment and revocation (see `Context`).
    rebalances: Arc<AtomicU64>,
    /// How many messages could not be decoded (the topic's count).
    undecodable: Arc<AtomicU64>,
    /// Caches that follow the topic's partitions (their restorations' reports).
    followers: Arc<dyn RebalanceListener>,
    wake: Notify,
    /// Exactly-once: the transactions carrying this consumer's positions.
    transactions: Option<Arc<Transactions>>,
    /// Set once the final commit is done (see `Context`).
    final_committed: Arc<AtomicBool>,
    /// A static member of a classic group (`group.instance.id`): leaving the group before
    /// closing would cost it the rebalances static membership saves.
    static_member: bool,
}

/// What a consumer shares with its topic and its application.
pub(crate) struct Shared {
    /// Set when the application stops on a failure (nothing is committed from then on).
    pub(crate) failed: Arc<AtomicBool>,
    /// Forwards failed messages to dead-letter topics.
    pub(crate) letters: Arc<DeadLetters>,
    /// The topic's count of undecodable messages.
    pub(crate) undecodable: Arc<AtomicU64>,
    /// How long start-up waits for a broker to answer.
    pub(crate) connect_timeout: Duration,
    /// Caches that follow the topic's partitions: restored on assignment.
    pub(crate) followers: Arc<dyn RebalanceListener>,
    /// Stops the application (a transaction failed).
    pub(crate) fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
}

/// Asks for `topic`'s metadata with a client of its own (see [`client::Probe`]), polled
/// here so that its logs and errors reach `link` meanwhile (a stream consumer's are served only
/// once it is read).
fn connect(
    topic: &str,
    conf: &Conf,
    link: &Arc<Link>,
    timeout: Duration,
) -> Result<Metadata, Error> {
    let probe: BaseConsumer<client::Linked> = client::consumer_config(conf)
        .create_with_context(client::Linked(Arc::clone(link)))
        .map_err(|e| client::creation_error(topic, e))?;
    // It reads nothing (it subscribes to nothing): polling serves its callbacks.
    let servers = conf.get("bootstrap.servers").unwrap_or_default();
    let asked = client::Probe {
        topic,
        name_it: true,
        servers,
        link,
        timeout,
    };
    asked.connect(probe.client(), || {
        let _ = probe.poll(client::PROBE_POLL);
    })
}

impl Running {
    /// Creates the consumer and subscribes it (or assigns it every partition, for explicit start
    /// positions or without a group).
    pub(crate) fn start(
        topic: &str,
        effective: &Conf,
        start: &StartAt,
        stop_at_end: bool,
        pause: PauseHandle,
        shared: Shared,
    ) -> Result<Arc<Running>, Error> {
        let Shared {
            failed,
            letters,
            undecodable,
            connect_timeout,
            followers,
            fatal,
        } = shared;
        let mut conf = client::resolve_consumer(topic, effective)?;
        let transactions = super::transaction::for_conf(effective, topic)?;
        if transactions.is_some() {
            // Records of transactions not committed (yet, or ever) are not read.
            conf.insert("isolation.level", "read_committed");
        }
        // slipstream commits what handlers have finished; librdkafka must not commit on its own.
        conf.insert("enable.auto.commit", "false");
        conf.insert("enable.auto.offset.store", "false");
        if stop_at_end {
            conf.insert("enable.partition.eof", "true");
        }
        let group = conf.get("group.id").is_some_and(|g| !g.is_empty());
        if transactions.is_some() && !group {
            return Err(Error::Conf {
                topic: topic.to_owned(),
                key: "group.id".to_owned(),
                message: "exactly-once reads topics in a consumer group: set `group.id`".to_owned(),
            });
        }
        if !group {
            // librdkafka's consumer needs a group even to be assigned partitions; this one is
            // private to the process and nothing is committed for it.
            conf.insert(
                "group.id",
                format!("slipstream-{topic}-{}", std::process::id()),
            );
        }
        let tracker = Arc::new(Tracker::new(topic, Some(letters)));
        let status = Arc::new(ConsumerStatus::new(topic));
        let rebalances = Arc::new(AtomicU64::new(0));
        let final_committed = Arc::new(AtomicBool::new(false));
        client::ask_statistics(&mut conf);
        let link = Arc::new(Link::new(format!("topic `{topic}`"), connect_timeout));
        let context = Context {
            link: Arc::clone(&link),
            rebalances: Arc::clone(&rebalances),
            topic: topic.to_owned(),
            tracker: Arc::clone(&tracker),
            pause,
            group,
            failed: Arc::clone(&failed),
            status: Arc::clone(&status),
            start: (group && !matches!(start, StartAt::Committed)).then(|| start.clone()),
            started: Mutex::default(),
            resume: Mutex::default(),
            followers: Arc::clone(&followers),
            transactions: transactions.clone(),
            group_id: conf.get("group.id").filter(|_| group).map(str::to_owned),
            final_committed: Arc::clone(&final_committed),
        };
        // A broker must answer before the application counts as started: an unreachable one is
        // an error now, not a consumer retrying in the background forever.
        let metadata = connect(topic, &conf, &link, connect_timeout)?;
        if group && let Some(group_id) = conf.get("group.id") {
            // Before this consumer commits anything: what a state's missing changelog is
            // compared with.
            followers.note_start(&conf, group_id, topic);
        }
        let consumer: StreamConsumer<Context> = client::consumer_config(&conf)
            .create_with_context(context)
            .map_err(|e| client::creation_error(topic, e))?;
        let kafka_error = |e: KafkaError| Error::kafka(topic, e);
        if group {
            // In the group: the start position, if any, is applied as it assigns partitions.
            consumer.subscribe(&[topic]).map_err(kafka_error)?;
        } else {
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic)
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            if partitions.is_empty() {
                return Err(Error::kafka(
                    topic,
                    "the topic does not exist (or has no partitions)",
                ));
            }
            let mut list = TopicPartitionList::with_capacity(partitions.len());
            for partition in partitions {
                list.add_partition_offset(topic, partition, start_offset(start, partition))
                    .map_err(kafka_error)?;
            }
            consumer.assign(&list).map_err(kafka_error)?;
            status.assign(list.elements().iter().map(|e| e.partition()));
        }
        let running = Arc::new(Running {
            consumer,
            topic: topic.into(),
            tracker,
            group,
            group_id: conf.get("group.id").filter(|_| group).map(str::to_owned),
            failed,
            status,
            committed: Mutex::default(),
            high_seen: Mutex::default(),
            rebalances,
            undecodable,
            followers,
            wake: Notify::new(),
            transactions,
            final_committed,
            static_member: conf.get("group.instance.id").is_some()
                && conf.get("group.protocol") != Some("consumer"),
        });
        if let Some(transactions) = &running.transactions {
            transactions.register(running.clone(), fatal)?;
        }
        Ok(running)
    }

    /// Moves a partition's position: the next message read from it is at `offset`.
    pub(crate) fn seek(&self, partition: i32, offset: i64) -> Result<(), Error> {
        // Forget what is in flight first, so that a message at the new position is not taken
        // for one from before the seek.
        // The tracker withdraws what was delivered before; the consumer discards what it had
        // fetched; a message taken from the consumer meanwhile is told apart by its offset.
        self.tracker.begin_seek(partition, offset);
        let sought = self
            .consumer
            .seek(&self.topic, partition, Offset::Offset(offset), CALL_TIMEOUT)
            .map_err(|e| Error::kafka(&self.topic, e));
        self.tracker.end_seek(partition);
        sought
    }

    /// The partitions assigned to this consumer, in order (as the rebalance callbacks left
    /// them: no call into librdkafka).
    pub(crate) fn assignment(&self) -> Vec<i32> {
        self.status.assignment()
    }

    /// What its client knows of the brokers (its health probe).
    pub(crate) fn link(&self) -> Arc<Link> {
        Arc::clone(&self.consumer.context().link)
    }

    /// What health reports of this consumer.
    pub(crate) fn status(&self) -> Arc<ConsumerStatus> {
        Arc::clone(&self.status)
    }

    /// Commits what handlers have finished, waiting for the broker's answer at most `wait`
    /// (not at all without); false if the broker refused or did not answer in time (it is
    /// taken again next time).
    fn commit(&self, wait: Option<Duration>, all: bool) -> bool {
        if !self.group || self.failed.load(Ordering::SeqCst) || self.transactions.is_some() {
            return true;
        }
        let commits = self.tracker.take_commits(all);
        if commits.is_empty() {
            return true;
        }
        tracing::debug!(topic = %self.topic, ?commits, "committing");
        let list = offsets(&self.topic, &commits);
        let committed = match wait {
            Some(wait) => commit_within(self.consumer.client(), &list, wait),
            None => self.consumer.commit(&list, CommitMode::Async),
        };
        match committed {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(topic = %self.topic, %error, "commit failed; it will be retried");
                self.tracker.uncommitted(&commits);
                false
            }
        }
    }

    /// Records the high watermarks of the assigned partitions as of the last fetch.
    fn note_high_watermarks(&self) {
        for partition in self.assignment() {
            if let Some(high) = self.cached_high_watermark(partition) {
                self.note_high(partition, high);
            }
        }
    }

    fn note_high(&self, partition: i32, high: i64) {
        let mut seen = lock(&self.high_seen);
        let entry = seen.entry(partition).or_insert(high);
        *entry = (*entry).max(high);
    }

    /// Whether `partition` is really at its end: its read position is at the highest high
    /// watermark the broker has given (asked again now).
    fn at_end(&self, partition: i32) -> bool {
        if let Ok((_, high)) =
            self.consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(2))
        {
            self.note_high(partition, high);
        }
        let Some(high) = lock(&self.high_seen).get(&partition).copied() else {
            return true;
        };
        let position = self
            .consumer
            .position()
            .ok()
            .and_then(|list| {
                list.find_partition(&self.topic, partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(offset) => Some(offset),
                        _ => None,
                    })
            })
            .or_else(|| self.tracker.positions().get(&partition).copied());
        match position {
            Some(position) if position < high => {
                tracing::warn!(topic = %self.topic, partition, position, high_watermark = high, "the broker reported the end of a partition before its high watermark; reading on");
                false
            }
            _ => true,
        }
    }

    fn finish(&self) {
        self.status.finish();
        self.wake.notify_one();
    }

    /// Commits what handlers have finished every `interval`; once the stream has ended, waits
    /// for the messages still in flight and commits a last time; dropping its reference then
    /// closes the consumer (leaving the group) unless a metrics report still holds one.
    pub(crate) async fn commit_loop(self: Arc<Self>, interval: Duration) {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = self.wake.notified() => {}
            }
            self.commit(None, false);
            self.note_high_watermarks();
            if self.status.is_finished() {
                break;
            }
        }
        let deadline = Instant::now() + DRAIN_TIMEOUT;
        while self.tracker.in_flight() > 0 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let left = self.tracker.in_flight();
        if left > 0 {
            tracing::warn!(topic = %self.topic, left, "closing with messages still in flight; they will be read again");
        }
        if let Some(transactions) = self.transactions.clone() {
            // The last transaction (aborted when the application stops on a failure).
            if let Err(error) = transactions.commit().await {
                tracing::error!(topic = %self.topic, %error, "the last transaction did not commit");
                if !self.has_failed() {
                    transactions.stop(error);
                }
            }
            transactions.unregister(&*self);
        }
        // The final commit, and closing the consumer when this is the last reference, block.
        // A final commit refused (the group rebalancing as another member leaves, say) is tried
        // again, the consumer taking part in the rebalance meanwhile (its revocation commits
        // too); given up, its messages are read again after a restart.
        // Each attempt waits a few seconds at most, and none past the deadline: between them
        // the consumer is polled, so that a rebalance the commit waits for can go on.
        let deadline = Instant::now() + FINAL_COMMIT_TIMEOUT;
        loop {
            let running = Arc::clone(&self);
            let wait = deadline
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(100), FINAL_COMMIT_ATTEMPT);
            let committed = tokio::task::spawn_blocking(move || running.commit(Some(wait), true))
                .await
                .unwrap_or(false);
            if committed || Instant::now() >= deadline {
                break;
            }
            // Messages it may still return are not delivered (nor committed).
            let until = tokio::time::Instant::now() + Duration::from_millis(200);
            while tokio::time::timeout_at(until, self.consumer.recv())
                .await
                .is_ok()
            {}
        }
        self.final_committed.store(true, Ordering::SeqCst);
        self.leave().await;
        // Closing the consumer, when this is the last reference, blocks.
        let topic = Arc::clone(&self.topic);
        let _ = tokio::task::spawn_blocking(move || drop(self)).await;
        tracing::debug!(%topic, "consumer closed");
    }
}

impl Running {
    /// Leaves the group before the consumer closes: its partitions are revoked here, served
    /// by this loop, rather than inside the close, where librdkafka can leave the revocation's
    /// unassignment unanswered for ever (librdkafka issue 4884: the close, and the
    /// application's shutdown, then hang). Messages still returned are not delivered. A
    /// static member stays (its close does not leave the group, which is the point of it).
    async fn leave(&self) {
        if !self.group || self.static_member {
            return;
        }
        self.consumer.unsubscribe();
        let deadline = tokio::time::Instant::now() + LEAVE_TIMEOUT;
        while self
            .consumer
            .assignment()
            .is_ok_and(|assigned| assigned.count() > 0)
            && tokio::time::Instant::now() < deadline
        {
            let until = tokio::time::Instant::now() + Duration::from_millis(100);
            let _ = tokio::time::timeout_at(until, self.consumer.recv()).await;
        }
    }
}

/// The transactions carry this consumer's positions (exactly-once).
impl Member for Running {
    fn topic(&self) -> &str {
        &self.topic
    }

    /// Whether the application is stopping on a failure, or a message failed for good: the
    /// open transaction may hold part of its work (exactly-once then aborts).
    fn has_failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst) || self.tracker.any_stuck()
    }

    /// Waits until no message is in flight, at most until `deadline`; whether none is.
    fn settle(&self, deadline: Instant) -> bool {
        self.tracker
            .wait_all_settled(deadline.saturating_duration_since(Instant::now()))
    }

    /// The positions that advanced since last taken (every position when `all`), for the next
    /// transaction.
    fn take_positions(&self, all: bool) -> Vec<(i32, i64)> {
        self.tracker.take_commits(all)
    }

    /// The consumer group (empty without one).
    fn group_id(&self) -> &str {
        self.group_id.as_deref().unwrap_or_default()
    }

    /// A transaction committed `positions`: the partitions resume there (not at the topic's
    /// start position) when the group gives them back.
    fn note_committed(&self, positions: &[(i32, i64)]) {
        self.consumer
            .context()
            .committed(positions.iter().map(|(p, _)| *p));
    }

    /// The group membership a transaction's positions are committed for.
    fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata> {
        if self.group {
            self.consumer.group_metadata()
        } else {
            None
        }
    }
}

impl ConsumerProbe for Running {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn group(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    fn rebalances(&self) -> u64 {
        self.rebalances.load(Ordering::SeqCst)
    }

    fn restorations(&self) -> Vec<RestoreReport> {
        self.followers.restorations()
    }

    fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    fn partitions(&self, deadline: Instant) -> Vec<PartitionReport> {
        let positions = self.tracker.positions();
        let committed = self.committed(deadline);
        self.assignment()
            .into_iter()
            .map(|partition| PartitionReport {
                partition,
                position: positions.get(&partition).copied(),
                committed: committed.get(&partition).copied(),
                high_watermark: self.high_watermark(partition, deadline),
            })
            .collect()
    }
}

impl Running {
    /// The group's committed offsets of the assigned partitions, as the broker has them, or as
    /// it last told them when it does not answer before `deadline` (empty without a group).
    fn committed(&self, deadline: Instant) -> HashMap<i32, i64> {
        if !self.group {
            return HashMap::new();
        }
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(COMMITTED_TIMEOUT);
        // Asked without holding the lock, so that concurrent reports do not queue up.
        let answer = (!timeout.is_zero()).then(|| self.consumer.committed(timeout));
        let mut known = lock(&self.committed);
        match answer {
            // The broker's answer replaces what was known (offsets deleted, partitions gone).
            Some(Ok(list)) => {
                *known = positions(&list, &self.topic).collect();
            }
            Some(Err(error)) => {
                tracing::debug!(topic = %self.topic, %error, "cannot read the committed offsets")
            }
            None => {}
        }
        known.clone()
    }

    /// The partition's high watermark: asked of the broker until `deadline` (the consumer's
    /// cached value stops moving while the partition is paused or its queue is full), else as
    /// of the consumer's last fetch.
    fn high_watermark(&self, partition: i32, deadline: Instant) -> Option<i64> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if !timeout.is_zero()
            && let Ok((_, high)) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, timeout)
        {
            return Some(high);
        }
        self.cached_high_watermark(partition)
    }

    /// The partition's high watermark as of the consumer's last fetch (no request is made).
    fn cached_high_watermark(&self, partition: i32) -> Option<i64> {
        let topic = CString::new(&*self.topic).ok()?;
        let (mut low, mut high) = (-1_i64, -1_i64);
        // SAFETY: the client handle lives as long as `self.consumer`; librdkafka only reads the
        // topic name and writes the two offsets, which outlive the call.
        let code = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some(high)
    }
}

/// What the consumer does with a message its codecs cannot read (after logging and counting
/// it).
pub(crate) enum OnUndecodable {
    /// Skip it (it is committed past).
    Skip,
    /// Stop the application: it is never committed past and nothing after it is delivered.
    Stop(Arc<dyn Fn(Error) + Send + Sync>),
    /// Forward it to this topic, then skip it; if that fails, stop the application (when
    /// there is one to stop).
    DeadLetter(String, Option<Arc<dyn Fn(Error) + Send + Sync>>),
}

/// Messages that cannot be decoded: how many, and what to do with them.
pub(crate) struct Undecodable {
    pub(crate) count: Arc<AtomicU64>,
    pub(crate) policy: OnUndecodable,
    pub(crate) letters: Arc<DeadLetters>,
}

/// Ends the stream's bookkeeping when it is dropped.
struct Finish(Arc<Running>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

struct State<K, V> {
    running: Arc<Running>,
    _finish: Finish,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    undecodable: Undecodable,
    pause: PauseHandle,
    changes: PauseChanges,
    paused: bool,
    stop_at_end: bool,
    /// The partitions seen at their end, with the rebalance count then.
    at_end: HashMap<i32, u64>,
    /// Stops the application when the consumer fails for good (for handlers' topics).
    fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
    /// The headers of every message without any (no allocation per message).
    no_headers: Arc<[(String, Vec<u8>)]>,
}

/// The decoded messages of a running consumer. Pausing `pause` pauses the consumer's
/// assignment (it keeps polling, so it stays in its group).
pub(crate) fn messages<K, V>(
    running: Arc<Running>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    undecodable: Undecodable,
    pause: PauseHandle,
    stop_at_end: bool,
    fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
) -> impl Stream<Item = (Message<K, V>, Ack)> + Send + 'static
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let state = State {
        _finish: Finish(Arc::clone(&running)),
        running,
        key_codec,
        value_codec,
        undecodable,
        changes: pause.changes(),
        pause,
        paused: false,
        stop_at_end,
        at_end: HashMap::new(),
        fatal,
        no_headers: Arc::from(Vec::new()),
    };
    futures::stream::unfold(state, |mut state| async move {
        let message = state.next().await?;
        Some((message, state))
    })
}

impl<K: 'static, V: 'static> State<K, V> {
    /// The next decodable message and its acknowledgement; `None` at the end (every assigned
    /// partition at its end, when asked to stop there), or after an undecodable message that
    /// stops the application.
    async fn next(&mut self) -> Option<(Message<K, V>, Ack)> {
        let running = Arc::clone(&self.running);
        loop {
            self.apply_pause();
            let generation = running.tracker.generation();
            let transactions = running.transactions.clone();
            let failed = async move {
                match transactions {
                    Some(transactions) => transactions.failure().await,
                    None => std::future::pending().await,
                }
            };
            let received = tokio::select! {
                biased;
                error = failed => {
                    // Nothing read from now on could commit: the stream ends (the failed commit
                    // stops an application; a `Topic::stream()` just ends).
                    tracing::error!(topic = %running.topic, %error, "the transaction failed: no more messages");
                    running.status.clear();
                    return None;
                }
                _ = self.changes.changed() => continue,
                received = running.consumer.recv() => received,
            };
            match received {
                Ok(borrowed) => {
                    if self.stop_at_end {
                        self.at_end.remove(&borrowed.partition());
                    }
                    // Exactly-once: held back while a transaction commits.
                    let _passing = match &running.transactions {
                        Some(transactions) => Some(transactions.pass().await),
                        None => None,
                    };
                    match self.decode(&borrowed, generation).await {
                        Decoded::Message(message, ack) => return Some((message, ack)),
                        Decoded::Skipped => {}
                        Decoded::Stop => return None,
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    if !running.at_end(partition) {
                        continue;
                    }
                    self.at_end
                        .insert(partition, running.rebalances.load(Ordering::SeqCst));
                    if self.stop_at_end && self.all_at_end() {
                        tracing::info!(topic = %self.running.topic, "every partition is at its end");
                        return None;
                    }
                }
                Err(error @ KafkaError::MessageConsumptionFatal(_)) => {
                    // The consumer cannot go on (fenced, say): it has no partitions any more,
                    // and the application stops rather than idle unhealthy.
                    let topic: &str = &self.running.topic;
                    tracing::error!(topic, %error, "the consumer failed");
                    self.running.status.clear();
                    if let Some(fatal) = &self.fatal {
                        fatal(Error::kafka(topic, error));
                    }
                    return None;
                }
                Err(error) => {
                    // The client's error callback has had it too, and logs it (without
                    // repeating it every time it comes).
                    tracing::debug!(topic = %self.running.topic, %error, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    fn all_at_end(&self) -> bool {
        let assigned = self.running.assignment();
        let now = self.running.rebalances.load(Ordering::SeqCst);
        !assigned.is_empty() && assigned.iter().all(|p| self.at_end.get(p) == Some(&now))
    }

    fn apply_pause(&mut self) {
        let paused = self.pause.is_paused();
        if paused == self.paused {
            return;
        }
        let consumer = &self.running.consumer;
        let result = consumer.assignment().and_then(|assigned| {
            if paused {
                consumer.pause(&assigned)
            } else {
                consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                tracing::info!(topic = %self.running.topic, paused, "consumer {}", if paused { "paused" } else { "resumed" });
                self.paused = paused;
            }
            Err(error) => {
                tracing::warn!(topic = %self.running.topic, %error, "cannot pause or resume")
            }
        }
    }

    /// Decodes a message taken from the consumer at `generation` (of the tracker's seeks).
    async fn decode(&mut self, borrowed: &BorrowedMessage<'_>, generation: u64) -> Decoded<K, V> {
        let (partition, offset) = (borrowed.partition(), borrowed.offset());
        let Some(ack) = self.running.tracker.received(partition, offset, generation) else {
            // Fetched before its partition was sought: not delivered.
            return Decoded::Skipped;
        };
        let key = borrowed.key().map(|k| self.key_codec.decode(k)).transpose();
        let value = self.value_codec.decode_nullable(borrowed.payload());
        let headers: Arc<[(String, Vec<u8>)]> = borrowed
            .headers()
            .map(|headers| header_pairs(headers).collect::<Arc<[_]>>())
            .unwrap_or_else(|| Arc::clone(&self.no_headers));
        match (key, value) {
            (Ok(key), Ok(value)) => {
                let message = Message {
                    key,
                    value,
                    topic: Arc::clone(&self.running.topic),
                    partition,
                    offset,
                    timestamp: borrowed.timestamp().to_millis(),
                    headers,
                    done: None,
                };
                Decoded::Message(message, ack)
            }
            (Err(error), _) | (_, Err(error)) => {
                self.undecodable(borrowed, &headers, error, ack).await
            }
        }
    }

    async fn undecodable(
        &self,
        borrowed: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        error: BoxError,
        ack: Ack,
    ) -> Decoded<K, V> {
        let topic: &str = &self.running.topic;
        let (partition, offset) = (borrowed.partition(), borrowed.offset());
        let count = self.undecodable.count.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.undecodable.policy {
            OnUndecodable::Skip => {
                tracing::error!(topic, partition, offset, %error, count, "cannot decode a message; skipping it");
                ack.done();
                Decoded::Skipped
            }
            OnUndecodable::Stop(stop) => {
                tracing::error!(topic, partition, offset, %error, count, "cannot decode a message; stopping");
                ack.fail();
                stop(Error::Codec {
                    topic: format!("{topic} (partition {partition}, offset {offset})"),
                    source: error,
                });
                Decoded::Stop
            }
            OnUndecodable::DeadLetter(destination, stop) => {
                tracing::error!(topic, partition, offset, %error, count, destination, "cannot decode a message; forwarding it to the dead-letter topic");
                let record = Raw {
                    key: borrowed.key().map(<[u8]>::to_vec),
                    payload: borrowed.payload().map(<[u8]>::to_vec),
                    headers: headers.to_vec(),
                };
                let error = error.to_string();
                let reason = Reason {
                    handler: None,
                    error: &error,
                    partition,
                    offset,
                };
                match self
                    .undecodable
                    .letters
                    .send(destination, &record, &reason)
                    .await
                {
                    Ok(()) => {
                        ack.done();
                        Decoded::Skipped
                    }
                    Err(forwarding) => {
                        // Not forwarded: never committed past (read again after a restart), and
                        // the application stops rather than run on with the partition stuck.
                        tracing::error!(topic, partition, offset, error = %forwarding, "cannot forward the undecodable message to its dead-letter topic");
                        ack.fail();
                        match stop {
                            Some(stop) => {
                                stop(Error::Codec {
                                    topic: format!(
                                        "{topic} (partition {partition}, offset {offset})"
                                    ),
                                    source: format!(
                                        "{error}; forwarding it to `{destination}` failed: {forwarding}"
                                    )
                                    .into(),
                                });
                                Decoded::Stop
                            }
                            None => Decoded::Skipped,
                        }
                    }
                }
            }
        }
    }
}

/// What reading one record came to.
// Not boxed: one allocation per message would cost more than moving it.
#[allow(clippy::large_enum_variant)]
enum Decoded<K, V> {
    Message(Message<K, V>, Ack),
    Skipped,
    Stop,
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
}
