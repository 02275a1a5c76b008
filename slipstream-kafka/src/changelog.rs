//! State that follows a topic's partitions (`Cache::follow`): its compacted changelog topic,
//! the producer recording changes, and restoration when the group assigns partitions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{BaseRecord, DeliveryResult, ProducerContext, ThreadedProducer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::__component::{HealthProbe, RestoreReport, lock};
use slipstream_core::partition::{Change, Changelog, PartitionState, Replica, Replication};
use slipstream_core::{Ack, Error};

use crate::admin::{CALL_TIMEOUT, create, partition_count};
use crate::client;
use crate::conf::{Conf, FRESH_STATE};
use crate::consumer::RebalanceListener;
use crate::fatal::Fatal;
use crate::replica::BATCH;
use crate::transaction::{Delivered, Transactions};

/// How long a full producer queue is waited for before a change fails.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition the group has committed past its start, with the offset, if any.
type CommittedPast = Option<(i32, i64)>;

/// What a changelog needs of the topic it follows.
pub(crate) trait Input: Send + Sync {
    fn name(&self) -> &str;
    fn effective_conf(&self) -> Conf;
}

/// The states following one topic, shared by the topic and its consumer.
#[derive(Default)]
pub(crate) struct Followers {
    list: Mutex<Vec<Arc<TopicChangelog>>>,
    /// The partitions the group has assigned to this instance (whether or not any state
    /// followed the topic then: a cache registering later restores only these).
    owned: Arc<Mutex<BTreeSet<i32>>>,
    /// Stops the running application (set when a handler reads the topic).
    fatal: Arc<Mutex<Option<Fatal>>>,
    progress: Arc<Progress>,
    /// A partition the group had committed past its start, with the offset, as this process's
    /// consumer of the topic started (before it committed anything); `None` until one started.
    committed_before: Arc<Mutex<Option<CommittedPast>>>,
}

impl Followers {
    pub(crate) fn add(
        &self,
        input: &'static dyn Input,
        state: Arc<dyn PartitionState>,
        name: Option<String>,
    ) -> Arc<TopicChangelog> {
        // Another state following the topic under the same name would share its changelog.
        let twin = lock(&self.list)
            .iter()
            .find(|other| match (&other.requested, &name) {
                (Some(theirs), Some(ours)) => theirs == ours,
                (None, None) => other.state.store() == state.store(),
                _ => false,
            })
            .map(|other| other.state.name());
        let changelog = Arc::new(TopicChangelog {
            input,
            state,
            twin,
            requested: name,
            ready: OnceLock::new(),
            preparing: Mutex::new(()),
            restoring: Mutex::new(()),
            owned: Arc::clone(&self.owned),
            fatal: Arc::clone(&self.fatal),
            progress: Arc::clone(&self.progress),
            committed_before: Arc::clone(&self.committed_before),
        });
        lock(&self.list).push(Arc::clone(&changelog));
        changelog
    }

    fn all(&self) -> Vec<Arc<TopicChangelog>> {
        lock(&self.list).clone()
    }

    /// Checks (or creates) every changelog: called when a consumer of the topic starts.
    pub(crate) fn prepare(&self, fatal: Option<Fatal>) -> Result<(), Error> {
        if fatal.is_some() {
            *lock(&self.fatal) = fatal;
        }
        self.all().iter().try_for_each(|c| c.prepare())
    }

    /// The restoration's health probe.
    pub(crate) fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }

    /// Stops the application, when a handler reads the topic.
    fn fail(fatal: &Mutex<Option<Fatal>>, error: Error) {
        let fatal = lock(fatal).clone();
        match fatal {
            Some(fatal) => fatal(error),
            None => tracing::error!(%error, "a changelog failed"),
        }
    }
}

impl RebalanceListener for Followers {
    /// Records where the group stood as this process's consumer of the topic starts (`conf`,
    /// its settings, names the group): a changelog found missing later is compared with it, not
    /// with what this process has committed since.
    fn note_start(&self, conf: &Conf, group: &str, topic: &str) {
        let mut before = lock(&self.committed_before);
        if before.is_some() {
            return;
        }
        match committed_past(conf, group, topic) {
            Ok(snapshot) => *before = Some(snapshot),
            Err(error) => {
                tracing::debug!(topic, %error, "cannot read the group's committed offsets at start")
            }
        }
    }

    /// Whether any state follows the topic.
    fn any(&self) -> bool {
        !lock(&self.list).is_empty()
    }

    /// Restores `partitions` of every state (the group assigned them).
    fn assigned(&self, partitions: &[i32]) -> Result<(), Error> {
        lock(&self.owned).extend(partitions.iter().copied());
        self.all().iter().try_for_each(|c| c.restore(partitions))
    }

    /// `partitions` went elsewhere.
    fn revoked(&self, partitions: &[i32]) {
        {
            let mut owned = lock(&self.owned);
            for partition in partitions {
                owned.remove(partition);
            }
        }
        for changelog in self.all() {
            changelog.state.revoked(partitions);
        }
    }

    /// Every partition went (a failed rebalance unassigns them all).
    fn revoked_all(&self) {
        let owned: Vec<i32> = lock(&self.owned).iter().copied().collect();
        self.revoked(&owned);
    }

    /// Stops the application (a restoration failed).
    fn stop(&self, error: Error) {
        Followers::fail(&self.fatal, error);
    }

    fn restorations(&self) -> Vec<RestoreReport> {
        self.progress
            .report()
            .into_iter()
            .map(|(changelog, partition, restored, left)| RestoreReport {
                changelog,
                partition,
                restored,
                left,
            })
            .collect()
    }
}

/// The restorations under way, per changelog and partition: records applied and to apply.
#[derive(Default)]
pub(crate) struct Progress {
    restoring: Mutex<BTreeMap<(String, i32), (i64, i64)>>,
    /// Records restored so far, per changelog and partition.
    restored: Mutex<BTreeMap<(String, i32), u64>>,
}

impl Progress {
    fn set(&self, changelog: &str, partition: i32, done: i64, total: i64) {
        lock(&self.restoring).insert((changelog.to_owned(), partition), (done, total));
    }

    fn applied(&self, changelog: &str, partition: i32, records: u64) {
        *lock(&self.restored)
            .entry((changelog.to_owned(), partition))
            .or_default() += records;
    }

    fn end(&self, changelog: &str, partition: i32) {
        lock(&self.restoring).remove(&(changelog.to_owned(), partition));
    }

    /// Each partition restored or restoring: `(changelog, partition, records restored, records
    /// left)`.
    pub(crate) fn report(&self) -> Vec<(String, i32, u64, i64)> {
        let restoring = lock(&self.restoring);
        let restored = lock(&self.restored);
        let mut keys: Vec<&(String, i32)> = restored.keys().chain(restoring.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let left = restoring.get(key).map_or(0, |(done, total)| total - done);
                (
                    key.0.clone(),
                    key.1,
                    restored.get(key).copied().unwrap_or(0),
                    left,
                )
            })
            .collect()
    }
}

impl HealthProbe for Progress {
    fn problem(&self) -> Option<String> {
        let restoring = lock(&self.restoring);
        if restoring.is_empty() {
            return None;
        }
        let parts: Vec<String> = restoring
            .iter()
            .map(|((changelog, partition), (done, total))| {
                format!("{changelog} partition {partition}: {done} of {total} records")
            })
            .collect();
        Some(format!("restoring state: {}", parts.join(", ")))
    }
}

/// The changelog of one state following a topic.
pub(crate) struct TopicChangelog {
    input: &'static dyn Input,
    state: Arc<dyn PartitionState>,
    /// Another state following the topic under the same changelog name (an error).
    twin: Option<String>,
    /// The name the application gave it.
    requested: Option<String>,
    ready: OnceLock<Ready>,
    preparing: Mutex<()>,
    /// One restoration at a time.
    restoring: Mutex<()>,
    /// The partitions assigned to this instance.
    owned: Arc<Mutex<BTreeSet<i32>>>,
    fatal: Arc<Mutex<Option<Fatal>>>,
    progress: Arc<Progress>,
    /// See [`Followers::note_start`].
    committed_before: Arc<Mutex<Option<CommittedPast>>>,
}

/// A checked changelog topic and its producer.
struct Ready {
    name: String,
    /// Exactly-once: changes go in the instance's transactions instead.
    producer: Option<ThreadedProducer<Deliveries>>,
    transactions: Option<Arc<Transactions>>,
    /// Settings of the consumers that restore it.
    restore_conf: Conf,
}

/// The changelog producer's callbacks: a delivered change brings its partition's position
/// forward and releases the item it was made for; a refused one fails it and stops the
/// application.
struct Deliveries {
    changelog: String,
    state: Arc<dyn PartitionState>,
    fatal: Arc<Mutex<Option<Fatal>>>,
}

impl ClientContext for Deliveries {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        client::log(level, fac, log_message);
    }
}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = Box<Option<Ack>>;

    fn delivery(&self, result: &DeliveryResult<'_>, ack: Self::DeliveryOpaque) {
        let outcome = match result {
            Ok(message) => Ok((message.partition(), message.offset())),
            Err((error, message)) => Err((error.clone(), message.partition())),
        };
        let refused = |error| Error::kafka(&self.changelog, error);
        settle(
            &self.changelog,
            &*self.state,
            &self.fatal,
            outcome,
            *ack,
            &refused,
        );
    }
}

/// A delivered change brings its partition's position forward and releases the item it was
/// made for; a refused one fails it and stops the application.
fn settle(
    changelog: &str,
    state: &dyn PartitionState,
    fatal: &Mutex<Option<Fatal>>,
    outcome: Result<(i32, i64), (KafkaError, i32)>,
    ack: Option<Ack>,
    refused: &dyn Fn(KafkaError) -> Error,
) {
    match outcome {
        Ok((partition, offset)) => {
            state.delivered(partition, offset);
            if let Some(ack) = ack {
                ack.done();
            }
        }
        Err((error, partition)) => {
            state.refused(partition);
            if let Some(ack) = ack {
                ack.fail();
            }
            let error = refused(error);
            tracing::error!(changelog, partition, %error, "the changelog refused a change; stopping");
            Followers::fail(fatal, error);
        }
    }
}

impl TopicChangelog {
    fn ready(&self) -> Result<&Ready, Error> {
        if let Some(ready) = self.ready.get() {
            return Ok(ready);
        }
        let _one = lock(&self.preparing);
        if let Some(ready) = self.ready.get() {
            return Ok(ready);
        }
        let ready = self.check()?;
        Ok(self.ready.get_or_init(|| ready))
    }

    /// Checks (or creates) the changelog topic and creates its producer.
    fn check(&self) -> Result<Ready, Error> {
        let input = self.input.name();
        let effective = self.input.effective_conf();
        let Some(group) = effective.get("group.id") else {
            return Err(Error::kafka(
                input,
                format!(
                    "the cache `{}` follows the topic's partitions, so the topic must be read in a consumer group: set its `group.id`",
                    self.state.name()
                ),
            ));
        };
        let name = self.requested.clone().unwrap_or_else(|| {
            let store = self
                .state
                .store()
                .map(|s| format!("-{s}"))
                .unwrap_or_default();
            format!("{group}-{input}{store}-changelog")
        });
        if let Some(twin) = &self.twin {
            return Err(Error::kafka(
                input,
                format!(
                    "the caches `{twin}` and `{}` both follow the topic under one changelog name, `{name}`, so they would share it: name one's with `follow_with_changelog` (or make them column families of one cache)",
                    self.state.name()
                ),
            ));
        }
        let resolved = client::resolve(input, &effective)?;
        let mut conf = resolved.clone();
        client::without_consumer_settings(&mut conf);
        let mut metadata_conf = conf.clone();
        metadata_conf.insert("allow.auto.create.topics", "false");
        let metadata: BaseConsumer<client::Logging> = client::consumer_config(&metadata_conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(input, e))?;
        let partitions = match partition_count(&metadata, input)? {
            Some(count) => count,
            None => {
                return Err(Error::kafka(
                    input,
                    "the topic does not exist: create it before its changelog can be",
                ));
            }
        };
        match partition_count(&metadata, &name)? {
            Some(count) if count != partitions => {
                return Err(Error::kafka(
                    &name,
                    format!(
                        "the changelog of the cache `{}` has {count} partitions but `{input}` has {partitions}: they must match (delete the changelog topic, or name another with `follow_with_changelog`)",
                        self.state.name()
                    ),
                ));
            }
            Some(_) => {}
            None => {
                let fresh = effective.get(FRESH_STATE).map(str::trim) == Some("true");
                // Where the group stood before this process committed anything (a cache first
                // used after this process's first commits is no sign of lost state).
                let before = *lock(&self.committed_before);
                let committed = match before {
                    Some(snapshot) => snapshot,
                    None if fresh => None,
                    None => committed_past(&conf, group, input)?,
                };
                if !fresh && let Some((partition, offset)) = committed {
                    return Err(Error::kafka(
                        &name,
                        format!(
                            "the changelog of the cache `{}` does not exist, but the group `{group}` has already committed `{input}` past its start (partition {partition} at offset {offset}): the state those messages built would be lost without a word. If it was kept under another changelog name (before this version, `{{group.id}}-{{directory name}}-changelog`), name that one with `follow_with_changelog`; to start from empty state on purpose, set `{FRESH_STATE}=true` on the topic (or SLIPSTREAM_STATE_FRESH=true for one run)",
                            self.state.name()
                        ),
                    ));
                }
                create(&name, partitions, &conf, &effective)?;
            }
        }
        let transactions = crate::transaction::for_conf(&effective, input)?;
        let producer = if transactions.is_some() {
            None
        } else {
            let mut producer_conf = conf.clone();
            if producer_conf.get("enable.idempotence").is_none() {
                // Keeps each partition's changes in order through retries.
                producer_conf.insert("enable.idempotence", "true");
            }
            let producer = client::client_config(&producer_conf)
                .create_with_context(Deliveries {
                    changelog: name.clone(),
                    state: Arc::clone(&self.state),
                    fatal: Arc::clone(&self.fatal),
                })
                .map_err(|e| client::creation_error(&name, e))?;
            Some(producer)
        };
        // Restoring reads as the topic's consumer does (its fetch and queue settings), outside
        // its group.
        let mut restore_conf = resolved;
        client::without_group_settings(&mut restore_conf);
        // Changes of transactions not committed (yet, or ever) are not restored.
        restore_conf.insert("isolation.level", "read_committed");
        restore_conf.insert("enable.auto.commit", "false");
        restore_conf.insert("enable.partition.eof", "true");
        // A position before what the changelog still holds reads from its start.
        restore_conf.insert("auto.offset.reset", "earliest");
        // librdkafka assigns partitions only to consumers with a group; this one never joins
        // it nor commits.
        restore_conf.insert("group.id", format!("{group}-restore"));
        tracing::debug!(changelog = %name, partitions, "changelog ready");
        Ok(Ready {
            name,
            producer,
            transactions,
            restore_conf,
        })
    }
}

/// How long asking a group's committed offsets waits before asking again, while its
/// coordinator is moving or loading.
const COORDINATOR_RETRY: Duration = Duration::from_millis(200);

/// A partition of `input` whose committed offset in `group` is past the start, with the offset,
/// if any.
fn committed_past(conf: &Conf, group: &str, input: &str) -> Result<CommittedPast, Error> {
    let mut conf = conf.clone();
    conf.insert("group.id", group);
    conf.insert("enable.auto.commit", "false");
    let consumer: BaseConsumer<client::Logging> = client::consumer_config(&conf)
        .create_with_context(client::Logging)
        .map_err(|e| client::creation_error(input, e))?;
    let Some(partitions) = partition_count(&consumer, input)? else {
        return Ok(None);
    };
    let mut list = TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition(input, partition);
    }
    // The group's coordinator may be moving or loading (a cluster just started, a broker
    // failing over): asked again until it answers.
    let deadline = Instant::now() + CALL_TIMEOUT * 3;
    let committed = loop {
        match consumer.committed_offsets(list.clone(), CALL_TIMEOUT) {
            Ok(committed) => break committed,
            Err(error)
                if Instant::now() < deadline
                    && matches!(
                        error.rdkafka_error_code(),
                        Some(
                            RDKafkaErrorCode::NotCoordinator
                                | RDKafkaErrorCode::CoordinatorLoadInProgress
                                | RDKafkaErrorCode::CoordinatorNotAvailable
                        )
                    ) =>
            {
                std::thread::sleep(COORDINATOR_RETRY);
            }
            Err(error) => {
                return Err(Error::kafka(
                    input,
                    format!("cannot read the group's committed offsets: {error}"),
                ));
            }
        }
    };
    Ok(committed
        .elements_for_topic(input)
        .iter()
        .find_map(|e| match e.offset() {
            Offset::Offset(offset) if offset > 0 => Some((e.partition(), offset)),
            _ => None,
        }))
}

impl Changelog for TopicChangelog {
    fn name(&self) -> Result<String, Error> {
        Ok(self.ready()?.name.clone())
    }

    fn prepare(&self) -> Result<(), Error> {
        self.ready().map(drop)
    }

    fn append(&self, partition: i32, change: Change, ack: Option<Ack>) -> Result<(), Error> {
        let ready = self.ready().inspect_err(|e| self.fatal(e))?;
        let Some(producer) = &ready.producer else {
            return self.append_in_transaction(ready, partition, change, ack);
        };
        let mut record = BaseRecord::with_opaque_to(&ready.name, Box::new(ack))
            .partition(partition)
            .key(&change.key[..]);
        if let Some(value) = &change.value {
            record = record.payload(&value[..]);
        }
        let deadline = Instant::now() + QUEUE_TIMEOUT;
        loop {
            match producer.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if Instant::now() < deadline =>
                {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, returned)) => {
                    self.state.refused(partition);
                    if let Some(ack) = *returned.delivery_opaque {
                        ack.fail();
                    }
                    // A change the local state holds and the changelog does not: nothing may
                    // run on (whatever the handler's error policy).
                    let error = Error::kafka(&ready.name, error);
                    self.fatal(&error);
                    return Err(error);
                }
            }
        }
    }

    fn owns(&self, partition: i32) -> bool {
        lock(&self.owned).contains(&partition)
    }

    fn restore(&self, partitions: &[i32]) -> Result<(), Error> {
        // Every partition this instance owns and has not restored goes in the same pass: a
        // cache first used in a handler would otherwise restore them one at a time, each as its
        // first item arrives (a pass costs a consumer and a read to each end).
        let mut all: BTreeSet<i32> = partitions.iter().copied().collect();
        all.extend(lock(&self.owned).iter().copied());
        let all: Vec<i32> = all.into_iter().collect();
        client::blocking(|| self.restore_now(&all)).inspect_err(|e| self.fatal(e))
    }

    fn replicate(self: Arc<Self>, replica: Arc<dyn Replica>) -> Arc<dyn Replication> {
        let label = format!("the changelog of the cache `{}`", self.state.name());
        let changelog = Arc::clone(&self);
        let connect: crate::replica::Connect = Box::new(move || {
            let ready = changelog.ready()?;
            Ok((ready.name.clone(), ready.restore_conf.clone()))
        });
        let decode: crate::replica::Decode = Box::new(|message| {
            Ok(message.key().map(|key| Change {
                key: key.to_vec(),
                value: message.payload().map(<[u8]>::to_vec),
            }))
        });
        crate::replica::start(label, connect, replica, decode)
    }
}

impl TopicChangelog {
    /// Exactly-once: produces the change in the open transaction.
    fn append_in_transaction(
        &self,
        ready: &Ready,
        partition: i32,
        change: Change,
        ack: Option<Ack>,
    ) -> Result<(), Error> {
        let transactions = ready
            .transactions
            .as_ref()
            .expect("a changelog has a producer or transactions");
        let (name, state, fatal, explain) = (
            ready.name.clone(),
            Arc::clone(&self.state),
            Arc::clone(&self.fatal),
            Arc::clone(transactions),
        );
        let delivered: Delivered = Box::new(move |outcome| {
            let refused = |error| explain.undelivered(&name, error);
            settle(&name, &*state, &fatal, outcome, ack, &refused);
        });
        transactions
            .send_change(
                &ready.name,
                &self.state,
                partition,
                &change.key,
                change.value.as_deref(),
                delivered,
            )
            .map_err(|error| {
                self.state.refused(partition);
                let error = transactions.refused(&ready.name, error);
                self.fatal(&error);
                error
            })
    }

    /// Stops the application: the state cannot follow the partitions.
    fn fatal(&self, error: &Error) {
        Followers::fail(
            &self.fatal,
            Error::kafka(self.input.name(), error.to_string()),
        );
    }

    fn restore_now(&self, partitions: &[i32]) -> Result<(), Error> {
        let ready = self.ready()?;
        let _one = lock(&self.restoring);
        // Restored meanwhile (by the handler or the rebalance that was waiting for the lock):
        // done again, it would apply older records over newer local changes.
        let partitions: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| !self.state.is_ready(*p))
            .collect();
        let partitions = &partitions[..];
        let restored = Restore {
            ready,
            state: &*self.state,
            progress: &self.progress,
        }
        .run(partitions);
        for &partition in partitions {
            self.progress.end(&ready.name, partition);
        }
        restored?;
        // Only what this instance still owns is ready: a restoration a handler started (its
        // first use of the cache) may end after a revocation took some of its partitions. One
        // marked ready here would count as restored when it came back, and keep the state of
        // this restoration while other instances moved it on.
        let owned = lock(&self.owned);
        let still: Vec<i32> = partitions
            .iter()
            .copied()
            .filter(|p| owned.contains(p))
            .collect();
        self.state.ready(&still);
        Ok(())
    }
}

/// One restoration of some partitions of a changelog.
struct Restore<'a> {
    ready: &'a Ready,
    state: &'a dyn PartitionState,
    progress: &'a Progress,
}

/// A partition being restored.
struct Pending {
    from: i64,
    high: i64,
    /// The high watermark when the restoration began.
    end: i64,
    /// Whether the end-of-partition event came.
    eof: bool,
    next: i64,
    batch: Vec<Change>,
}

impl Restore<'_> {
    /// The changelog partition's high watermark, open and aborted transactions included (the
    /// restoring consumer, `read_committed`, sees the last stable offset instead), if known.
    fn high_watermark(&self, partition: i32) -> Result<Option<i64>, Error> {
        let name = &self.ready.name;
        let mut conf = self.ready.restore_conf.clone();
        conf.insert("isolation.level", "read_uncommitted");
        let consumer: BaseConsumer<client::Logging> = client::consumer_config(&conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(name, e))?;
        Ok(consumer
            .fetch_watermarks(name, partition, CALL_TIMEOUT)
            .ok()
            .map(|(_, high)| high))
    }

    fn run(&self, partitions: &[i32]) -> Result<(), Error> {
        let name = &self.ready.name;
        let consumer: BaseConsumer<client::Logging> =
            client::consumer_config(&self.ready.restore_conf)
                .create_with_context(client::Logging)
                .map_err(|e| client::creation_error(name, e))?;
        let mut pending = HashMap::new();
        let mut list = TopicPartitionList::new();
        let transactional = self.ready.transactions.is_some();
        for &partition in partitions {
            // Where the local copy stands: a restart with its directory reads only the tail. The
            // end is the end-of-partition event (some brokers' watermarks are not to be trusted:
            // the high watermark serves the progress report only).
            let mut position = self.state.position(partition)?;
            // The restoring consumer reads `read_committed`: its watermark is the last stable
            // offset, which a transaction still open (a killed instance's) holds back.
            let watermark = consumer.fetch_watermarks(name, partition, CALL_TIMEOUT);
            // Exactly-once: records other instances committed after such a transaction lie past
            // the last stable offset; the restoration reads to the high watermark, past that
            // transaction once the broker has ended it. (Stopping at the last stable offset, an
            // instance restored the state of before that transaction, and counted again.)
            let full = if transactional {
                let full = self.high_watermark(partition)?;
                if full.is_none() {
                    tracing::warn!(changelog = %name, partition, "cannot read the changelog's high watermark: restoring to its last stable offset");
                }
                full
            } else {
                None
            };
            if let (Some(at), Ok((_, stable))) = (position, &watermark)
                && at > *stable
                && let Some(high) = match full {
                    Some(full) => Some(full),
                    None => self.high_watermark(partition)?,
                }
                && at > high
            {
                // The copy applied records this changelog never held: it followed another one
                // (renamed, or deleted and created again). It is not to be trusted.
                tracing::warn!(changelog = %name, partition, position = at, high, "the local copy is ahead of its changelog (it followed another one): it is dropped and restored from the changelog's start");
                self.state.reset(partition)?;
                position = None;
            }
            let from = position.unwrap_or(0);
            let stable = watermark.map_or(from, |(_, high)| high.max(from));
            let high = full.map_or(stable, |full| full.max(stable));
            tracing::info!(changelog = %name, partition, from, high, "restoring");
            self.progress.set(name, partition, 0, high - from);
            let offset = position.map_or(Offset::Beginning, Offset::Offset);
            let _ = list.add_partition_offset(name, partition, offset);
            pending.insert(
                partition,
                Pending {
                    from,
                    high,
                    end: high,
                    eof: false,
                    next: from,
                    batch: Vec::new(),
                },
            );
        }
        if pending.is_empty() {
            return Ok(());
        }
        consumer.assign(&list).map_err(|e| Error::kafka(name, e))?;
        // Exactly-once: waiting for a killed instance's open transaction to end reads nothing.
        let stall = match &self.ready.transactions {
            Some(transactions) => {
                (CALL_TIMEOUT * 3).max(transactions.open_for_at_most() + CALL_TIMEOUT)
            }
            None => CALL_TIMEOUT * 3,
        };
        let mut heard = Instant::now();
        // Exactly-once: the end-of-partition event comes at the last stable offset, which a
        // transaction still open (a killed instance's) holds back: the restoration goes on to
        // the high watermark, past that transaction once it has ended.
        while !pending.is_empty() {
            if transactional {
                self.finish_transactional(&consumer, &mut pending)?;
                if pending.is_empty() {
                    break;
                }
            }
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
                if heard.elapsed() > stall {
                    return Err(Error::kafka(
                        name,
                        format!("restoring stalled: nothing read for {stall:?}"),
                    ));
                }
                continue;
            };
            heard = Instant::now();
            let (partition, end) = match polled {
                Ok(message) => {
                    let partition = message.partition();
                    let Some(p) = pending.get_mut(&partition) else {
                        continue;
                    };
                    p.batch.push(Change {
                        key: message.key().unwrap_or_default().to_vec(),
                        value: message.payload().map(<[u8]>::to_vec),
                    });
                    p.next = message.offset() + 1;
                    p.high = p.high.max(p.next);
                    if p.batch.len() >= BATCH {
                        self.apply(partition, p)?;
                    }
                    (partition, false)
                }
                Err(KafkaError::PartitionEOF(partition)) => (partition, true),
                Err(error) => return Err(Error::kafka(name, error)),
            };
            if end && transactional {
                if let Some(p) = pending.get_mut(&partition) {
                    p.eof = true;
                }
            } else if end && let Some(mut p) = pending.remove(&partition) {
                self.apply(partition, &mut p)?;
                tracing::info!(changelog = %name, partition, from = p.from, to = p.next, "restored");
            }
        }
        Ok(())
    }

    /// Finishes the partitions at their end-of-partition event and at the high watermark seen
    /// when the restoration began.
    fn finish_transactional(
        &self,
        consumer: &BaseConsumer<client::Logging>,
        pending: &mut HashMap<i32, Pending>,
    ) -> Result<(), Error> {
        let name = &self.ready.name;
        let positions = consumer.position().map_err(|e| Error::kafka(name, e))?;
        let done: Vec<i32> = pending
            .iter()
            .filter(|(partition, p)| {
                let at = positions
                    .find_partition(name, **partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(at) => Some(at),
                        _ => None,
                    })
                    .unwrap_or(p.next);
                p.eof && at >= p.end
            })
            .map(|(partition, _)| *partition)
            .collect();
        for partition in done {
            if let Some(mut p) = pending.remove(&partition) {
                self.apply(partition, &mut p)?;
                tracing::info!(changelog = %name, partition, from = p.from, to = p.next, "restored");
            }
        }
        Ok(())
    }

    fn apply(&self, partition: i32, p: &mut Pending) -> Result<(), Error> {
        if p.batch.is_empty() {
            return Ok(());
        }
        self.state.apply(partition, &p.batch, p.next)?;
        let name = &self.ready.name;
        self.progress.applied(name, partition, p.batch.len() as u64);
        self.progress
            .set(name, partition, p.next - p.from, p.high - p.from);
        p.batch.clear();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_restoring_with_progress_until_each_partition_is_done() {
        let progress = Progress::default();
        assert_eq!(progress.problem(), None);
        progress.set("counts", 3, 0, 5000);
        progress.applied("counts", 3, 1200);
        progress.set("counts", 3, 1200, 5000);
        assert_eq!(
            progress.problem().as_deref(),
            Some("restoring state: counts partition 3: 1200 of 5000 records")
        );
        assert_eq!(progress.report(), [("counts".to_owned(), 3, 1200, 3800)]);
        progress.end("counts", 3);
        assert_eq!(progress.problem(), None);
        // What was restored stays reported, with nothing left.
        assert_eq!(progress.report(), [("counts".to_owned(), 3, 1200, 0)]);
    }
}
