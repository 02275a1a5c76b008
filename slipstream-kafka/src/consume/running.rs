//! A running consumer of one topic: its start, the task that commits what handlers have
//! finished, the final commit and leaving the group, and its part in exactly-once's
//! transactions. Layer: consuming (below state and the topic; names neither).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::Notify;

use super::commit::{CALL_TIMEOUT, FINAL_COMMIT_ATTEMPT, commit_within, offsets};
use super::listener::RebalanceListener;
use super::rebalance::{Context, Rebalances};
use super::start::{StartAt, start_offset};
use super::tracker::Tracker;
use crate::client;
use crate::client::Link;
use crate::conf::Conf;
use crate::exactly_once::{Member, Transactions};
use crate::produce::dead_letter::DeadLetters;
use slipstream_core::__component::ConsumerStatus;
use slipstream_core::__component::lock;
use slipstream_core::{Error, PauseHandle};

/// How long the final commit waits for handlers still holding messages.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a refused final commit is tried again.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a closing consumer waits for the group to take its partitions back.
const LEAVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long closing the consumer may take before it is left behind.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

/// A running consumer of one topic.
pub(crate) struct Running {
    pub(crate) consumer: StreamConsumer<Context>,
    /// Shared by every message read (no copy per message).
    pub(crate) topic: Arc<str>,
    pub(super) tracker: Arc<Tracker>,
    pub(super) group: bool,
    /// The consumer group, when the topic is read in one.
    pub(super) group_id: Option<String>,
    /// Set when the application stops on a failure: from then on nothing is committed, so that
    /// messages dropped unhandled are read again after a restart.
    failed: Arc<AtomicBool>,
    pub(super) status: Arc<ConsumerStatus>,
    /// The committed offsets the broker last told, kept for when it does not answer.
    pub(super) committed: Mutex<HashMap<i32, i64>>,
    /// The highest high watermark seen per partition, against which an end-of-partition report
    /// is checked (a restarted broker may report a partition's end early).
    high_seen: Mutex<HashMap<i32, i64>>,
    /// Bumped by every assignment and revocation (see `Context`).
    pub(super) rebalances: Arc<Rebalances>,
    /// How many messages could not be decoded (the topic's count).
    pub(super) undecodable: Arc<AtomicU64>,
    /// Caches that follow the topic's partitions (their restorations' reports).
    pub(super) followers: Arc<dyn RebalanceListener>,
    wake: Notify,
    /// Exactly-once: the transactions carrying this consumer's positions.
    pub(super) transactions: Option<Arc<Transactions>>,
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
        let transactions = crate::exactly_once::for_conf(effective, topic)?;
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
        let rebalances = Arc::new(Rebalances::default());
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
        // An end seen before no longer holds.
        self.rebalances.sought(&[partition]);
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
    /// watermark the broker has given (asked again now when `ask`, else as of the last fetch);
    /// `None` when either is unknown.
    pub(super) fn at_end(&self, partition: i32, ask: bool) -> Option<bool> {
        let high = if ask {
            self.consumer
                .fetch_watermarks(&self.topic, partition, Duration::from_secs(2))
                .ok()
                .map(|(_, high)| high)
        } else {
            self.cached_high_watermark(partition)
        };
        if let Some(high) = high {
            self.note_high(partition, high);
        }
        let high = lock(&self.high_seen).get(&partition).copied()?;
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
            .or_else(|| self.tracker.positions().get(&partition).copied())?;
        let at_end = position >= high;
        if !at_end {
            tracing::debug!(topic = %self.topic, partition, position, high_watermark = high, "not at the end yet");
        }
        Some(at_end)
    }

    pub(super) fn finish(&self) {
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
        // Closing the consumer, when this is the last reference, blocks, and librdkafka can
        // leave it waiting for ever (an assignment arriving as it closes, after a rejoin:
        // librdkafka issue 4884). It closes on a thread of its own, given CLOSE_TIMEOUT; past
        // it, that thread is left behind (not a blocking task, which would hold up the runtime's
        // end): what was handled is committed above, or is read again after a restart.
        let topic = Arc::clone(&self.topic);
        let (closed, close) = tokio::sync::oneshot::channel();
        // Its callbacks log where the application's do.
        let logs = tracing::dispatcher::get_default(Clone::clone);
        std::thread::spawn(move || {
            tracing::dispatcher::with_default(&logs, || drop(self));
            let _ = closed.send(());
        });
        match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
            Ok(_) => tracing::debug!(%topic, "consumer closed"),
            Err(_) => {
                tracing::warn!(%topic, timeout = ?CLOSE_TIMEOUT, "the consumer did not close in time; going on without it")
            }
        }
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
