//! State that follows a topic's partitions (`Cache::follow`): its compacted changelog topic,
//! the producer recording changes, and restoration when the group assigns partitions.
//!
//! Layer: state (above consuming and exactly-once; below the topic).

use std::collections::BTreeSet;
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

use slipstream_core::__component::lock;
use slipstream_core::partition::{Change, Changelog, PartitionState, Replica, Replication};
use slipstream_core::{Ack, Error};

use crate::client;
use crate::client::admin::{CALL_TIMEOUT, create, partition_count};
use crate::conf::{Conf, FRESH_STATE};
use crate::exactly_once::{Delivered, Transactions};
use crate::fatal::Fatal;

use super::progress::Progress;
use super::restore::Restore;

/// How long a full producer queue is waited for before a change fails.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// A partition the group has committed past its start, with the offset, if any.
pub(super) type CommittedPast = Option<(i32, i64)>;

/// What a changelog needs of the topic it follows.
pub(crate) trait Input: Send + Sync {
    fn name(&self) -> &str;
    fn effective_conf(&self) -> Conf;
}

/// The changelog of one state following a topic.
pub(crate) struct TopicChangelog {
    pub(super) input: &'static dyn Input,
    pub(super) state: Arc<dyn PartitionState>,
    /// Another state following the topic under the same changelog name (an error).
    pub(super) twin: Option<String>,
    /// The name the application gave it.
    pub(super) requested: Option<String>,
    pub(super) ready: OnceLock<Ready>,
    pub(super) preparing: Mutex<()>,
    /// One restoration at a time.
    pub(super) restoring: Mutex<()>,
    /// The partitions assigned to this instance.
    pub(super) owned: Arc<Mutex<BTreeSet<i32>>>,
    pub(super) fatal: Arc<Mutex<Option<Fatal>>>,
    pub(super) progress: Arc<Progress>,
    /// Where the group stood as the topic's consumer started (told by the followers).
    pub(super) committed_before: Arc<Mutex<Option<CommittedPast>>>,
}

/// A checked changelog topic and its producer.
pub(super) struct Ready {
    pub(super) name: String,
    /// Exactly-once: changes go in the instance's transactions instead.
    producer: Option<ThreadedProducer<Deliveries>>,
    pub(super) transactions: Option<Arc<Transactions>>,
    /// Settings of the consumers that restore it.
    pub(super) restore_conf: Conf,
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
            fail(fatal, error);
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
        let transactions = crate::exactly_once::for_conf(&effective, input)?;
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
pub(super) fn committed_past(
    conf: &Conf,
    group: &str,
    input: &str,
) -> Result<CommittedPast, Error> {
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
        let connect: super::replica::Connect = Box::new(move || {
            let ready = changelog.ready()?;
            Ok((ready.name.clone(), ready.restore_conf.clone()))
        });
        let decode: super::replica::Decode = Box::new(|message| {
            Ok(message.key().map(|key| Change {
                key: key.to_vec(),
                value: message.payload().map(<[u8]>::to_vec),
            }))
        });
        super::replica::start(label, connect, replica, decode)
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
        fail(
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
            name: &ready.name,
            restore_conf: &ready.restore_conf,
            transactions: ready.transactions.as_ref(),
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

/// Stops the application, when a handler reads the topic.
pub(super) fn fail(fatal: &Mutex<Option<Fatal>>, error: Error) {
    let fatal = lock(fatal).clone();
    match fatal {
        Some(fatal) => fatal(error),
        None => tracing::error!(%error, "a changelog failed"),
    }
}
