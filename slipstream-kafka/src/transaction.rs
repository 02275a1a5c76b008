//! Exactly-once (`processing.guarantee = exactly_once`): one transactional producer per
//! instance, shared by every topic sink, dead-letter topic and changelog. Every commit interval
//! handing out new messages pauses, the messages being handled finish, and one transaction
//! commits what they produced together with the input positions.
//!
//! The positions go to the consumer group inside the transaction
//! (`send_offsets_to_transaction`, with the consumer's group metadata, so that a member the
//! group has left behind is fenced: KIP-447). A new owner reads them `read_committed`, which
//! makes the broker hold the answer back while a transaction with offsets for the partition is
//! still open (`require_stable`). A broker fences an older producer with the same
//! `transactional.id` when a new one starts.
//!
//! librdkafka's mock cluster (the embedded broker) does neither: it takes offsets sent in a
//! transaction without recording them, and fences no one. On it only (its cluster id says so),
//! the positions also travel as records of a compacted topic, `{group.id}-slipstream-offsets`,
//! read when the group assigns partitions, and each instance writes a start record there that
//! tells an older one with its id that it was replaced. A real broker gets no such topic.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::__component::lock;
use slipstream_core::Error;
use slipstream_core::partition::PartitionState;

use crate::admin;
use crate::client::{self, Linked};
use crate::conf::{COMMIT_INTERVAL, Conf, GUARANTEE, exactly_once};
use crate::fatal::Fatal;
use crate::link::Link;

/// How long a transaction call (init, commit, abort) may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit waits for the messages being handled, at most (and less than the
/// transaction timeout, leaving it this margin to commit).
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
const COMMIT_MARGIN: Duration = Duration::from_secs(3);
/// The commit interval unless `commit.interval.ms` says.
const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// `transaction.timeout.ms` unless set: how long a transaction may stay open, and how long one
/// left open by a killed instance holds back `read_committed` readers and the next owner's
/// positions (when no instance with its `transactional.id` comes back to abort it sooner).
/// Kafka Streams' default. A commit waits for the records sent to a killed node's partitions
/// until the controller has fenced the node (`broker.session.timeout.ms`, 9 s by default) and
/// moved its leaders, so where nodes may be killed, more is safer (the failover test runs at
/// 30 s; at 10 s a leader killed stopped the instance).
const DEFAULT_TRANSACTION_TIMEOUT_MS: &str = "10000";

/// The instance's transactions, once a component asked for them.
static TRANSACTIONS: Mutex<Option<Arc<Transactions>>> = Mutex::new(None);

/// The instance's transactions when `effective` asks for exactly-once (created, and checked
/// against the broker, the first time).
pub(crate) fn for_conf(effective: &Conf, what: &str) -> Result<Option<Arc<Transactions>>, Error> {
    if !exactly_once(effective, what)? {
        return Ok(None);
    }
    let mut slot = lock(&TRANSACTIONS);
    if let Some(transactions) = &*slot {
        return Ok(Some(Arc::clone(transactions)));
    }
    let transactions = Arc::new(client::blocking(|| Transactions::start(effective, what))?);
    *slot = Some(Arc::clone(&transactions));
    Ok(Some(transactions))
}

/// Called with the outcome of a record produced in a transaction: its partition and offset, or
/// why the broker refused it.
pub(crate) type Delivered = Box<dyn FnOnce(Result<(i32, i64), (KafkaError, i32)>) + Send>;

/// A changelog's state and the partitions of it the open transaction wrote.
type Written = (Arc<dyn PartitionState>, BTreeSet<i32>);

/// A consumer whose positions the transactions carry: implemented by the consumer (above this
/// module, which names no consumer).
pub(crate) trait Member: Send + Sync {
    /// The topic it reads.
    fn topic(&self) -> &str;
    /// The consumer group (empty without one).
    fn group_id(&self) -> &str;
    /// Whether the application is stopping on a failure, or a message failed for good: the
    /// open transaction may hold part of its work (it then aborts).
    fn has_failed(&self) -> bool;
    /// Waits until no message is in flight, at most until `deadline`; whether none is.
    fn settle(&self, deadline: Instant) -> bool;
    /// The positions that advanced since last taken (every position when `all`), for the next
    /// transaction.
    fn take_positions(&self, all: bool) -> Vec<(i32, i64)>;
    /// A transaction committed `positions`.
    fn note_committed(&self, positions: &[(i32, i64)]);
    /// The group membership a transaction's positions are committed for.
    fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata>;
}

/// One transactional producer and the commits of its transactions.
pub(crate) struct Transactions {
    producer: FutureProducer<Linked>,
    link: Arc<Link>,
    id: String,
    /// What errors name: the topic whose start created the transactions.
    name: String,
    /// On librdkafka's mock cluster only: the topic the positions are recorded in.
    recorded: Option<Recorded>,
    interval: Duration,
    /// `transaction.timeout.ms`.
    timeout: Duration,
    /// Closed while a commit waits for the messages being handled.
    inputs: Gate,
    /// Taken for writing while a transaction commits: records are produced under a read lock.
    producing: RwLock<()>,
    /// One commit at a time.
    committing: Mutex<()>,
    /// The consumers whose positions each transaction carries.
    members: Mutex<Vec<Weak<dyn Member>>>,
    /// The changelog partitions written in the open transaction, by changelog.
    written: Mutex<HashMap<String, Written>>,
    /// Why transactions cannot go on (fenced, aborted): every later commit fails with it.
    failure: Mutex<Option<String>>,
    /// The open transaction failed where it could not be aborted (a delivery's outcome): the
    /// next commit aborts it, so that readers and the partitions' next owners need not wait
    /// for the broker to time it out.
    abort_owed: AtomicBool,
    /// Stop the running applications.
    stops: Mutex<Vec<Fatal>>,
    /// How many transactions have committed.
    committed: tokio::sync::watch::Sender<u64>,
    /// When the open transaction began (a monotonic clock: it runs while the process is
    /// stopped, so a stall shows).
    opened: Mutex<Instant>,
    /// Settles changelog records in the order they were produced.
    settler: Mutex<std::sync::mpsc::Sender<(DeliveryFuture, i32, Delivered)>>,
    /// The task committing every interval, on the runtime that started it.
    driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// The positions topic of an application on librdkafka's mock cluster, which takes offsets sent
/// in a transaction without recording them and fences no producer.
struct Recorded {
    /// `{group.id}-slipstream-offsets`.
    topic: String,
    /// How the topic is read (`read_committed`).
    reader_conf: Conf,
    /// Reads the positions topic after this instance's start record: another start record
    /// with its id means another instance replaced it.
    replaced: Mutex<BaseConsumer<client::Logging>>,
    /// The key of the start records of instances with this id.
    started_key: String,
}

/// The key prefix of the record each instance writes to the positions topic as it starts.
const STARTED: &str = "slipstream.started/";

impl Transactions {
    /// Creates the transactional producer, fences any earlier producer with its id (on the mock
    /// cluster: records its start and checks that the broker commits transactions), and opens
    /// the first transaction. A broker that does not commit transactions fails the start here,
    /// or the first commit.
    fn start(effective: &Conf, what: &str) -> Result<Transactions, Error> {
        // A sink's topic may name no group: the application's global one serves.
        let global = Conf::global().effective(&Conf::new());
        let group = [effective.get("group.id"), global.get("group.id")]
            .into_iter()
            .flatten()
            .find(|g| !g.is_empty());
        let Some(group) = group else {
            return Err(Error::Conf {
                topic: what.to_owned(),
                key: "group.id".to_owned(),
                message: "exactly-once commits input positions with the consumer group: set `group.id` (with Conf::set, or on the topic that starts the transactions)".to_owned(),
            });
        };
        let group = group.to_owned();
        let interval = match effective.get(COMMIT_INTERVAL) {
            None => DEFAULT_INTERVAL,
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(Error::Conf {
                        topic: what.to_owned(),
                        key: COMMIT_INTERVAL.to_owned(),
                        message: format!("`{ms}` is not a positive number of milliseconds"),
                    });
                }
            },
        };
        let mut conf = client::resolve(what, effective)?;
        client::without_consumer_settings(&mut conf);
        let id = match conf.get("transactional.id") {
            Some(id) => id.to_owned(),
            None => {
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                format!("{group}-{}-{started:x}", std::process::id())
            }
        };
        conf.insert("transactional.id", id.clone());
        if conf.get("transaction.timeout.ms").is_none() {
            conf.insert("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS);
        }
        let timeout = Duration::from_millis(
            conf.get("transaction.timeout.ms")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(60_000),
        );
        let link = Arc::new(Link::new(
            format!("transactions `{id}`"),
            Duration::from_secs(30),
        ));
        let producer: FutureProducer<Linked> = client::client_config(&conf)
            .create_with_context(Linked(Arc::clone(&link)))
            .map_err(|e| client::creation_error(what, e))?;
        // An unreachable broker, or refused credentials, are said as such (not as a broker
        // without transactions).
        let probe = client::Probe {
            topic: what,
            name_it: false,
            servers: conf.get("bootstrap.servers").unwrap_or_default(),
            link: &link,
            timeout: client::CONNECT_TIMEOUT,
        };
        probe.connect(producer.client(), || std::thread::sleep(client::PROBE_POLL))?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| unsupported(what, e))?;
        let mock = producer
            .client()
            .fetch_cluster_id(CALL_TIMEOUT)
            .is_some_and(|cluster| cluster.starts_with("mockCluster"));
        let recorded = if mock {
            Some(Recorded::start(&group, &id, &conf, effective, &producer)?)
        } else {
            None
        };
        producer
            .begin_transaction()
            .map_err(|e| unsupported(what, e))?;
        tracing::info!(
            transactional_id = %id,
            ?interval,
            "exactly-once: what handlers produce to Kafka topics (and the changelogs of caches that follow a topic) commits in one transaction with the input positions; other sinks (functions, print, caches that follow no topic) are outside the guarantee and may see an item again after a crash"
        );
        let (settler, settling) = std::sync::mpsc::channel::<(DeliveryFuture, i32, Delivered)>();
        std::thread::Builder::new()
            .name("slipstream-txn-settler".into())
            .spawn(move || {
                for (delivery, partition, delivered) in settling {
                    delivered(match futures::executor::block_on(delivery) {
                        Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
                        Ok(Err((error, _))) => Err((error, partition)),
                        Err(_) => Err((KafkaError::Canceled, partition)),
                    });
                }
            })
            .map_err(|e| Error::kafka(what, e))?;
        Ok(Transactions {
            producer,
            link,
            id,
            name: what.to_owned(),
            recorded,
            interval,
            timeout,
            inputs: Gate::default(),
            producing: RwLock::new(()),
            committing: Mutex::new(()),
            members: Mutex::default(),
            written: Mutex::default(),
            failure: Mutex::default(),
            abort_owed: AtomicBool::new(false),
            stops: Mutex::default(),
            committed: tokio::sync::watch::Sender::new(0),
            opened: Mutex::new(Instant::now()),
            settler: Mutex::new(settler),
            driver: Mutex::new(None),
        })
    }

    /// The shared producer (its records go in the open transaction).
    pub(crate) fn producer(&self) -> &FutureProducer<Linked> {
        &self.producer
    }

    /// How long a transaction a killed instance left open may hold back readers, at most.
    pub(crate) fn open_for_at_most(&self) -> Duration {
        // The broker aborts it after the timeout, at its next check (every 10 s by default).
        self.timeout + Duration::from_secs(10)
    }

    /// What its client knows of the brokers.
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Held while producing a record: no transaction commits meanwhile.
    pub(crate) fn producing(&self) -> std::sync::RwLockReadGuard<'_, ()> {
        self.producing.read().unwrap_or_else(|e| e.into_inner())
    }

    /// How many transactions have committed so far.
    pub(crate) fn commits(&self) -> u64 {
        *self.committed.borrow()
    }

    /// Waits until more than `seen` transactions have committed (the open one, when `seen` is
    /// what [`commits`](Self::commits) said before producing into it).
    pub(crate) async fn committed_after(&self, seen: u64) -> Result<(), Error> {
        let mut watch = self.committed.subscribe();
        loop {
            if *watch.borrow_and_update() > seen {
                return Ok(());
            }
            if let Some(failure) = lock(&self.failure).clone() {
                return Err(self.error(failure));
            }
            if watch.changed().await.is_err() {
                return Err(self.error("the transactions have stopped".into()));
            }
        }
    }

    /// Resolves once a transaction has failed for good (every later commit fails with it).
    pub(crate) async fn failure(&self) -> Error {
        let mut watch = self.committed.subscribe();
        loop {
            if let Some(failure) = lock(&self.failure).clone() {
                return self.error(failure);
            }
            if watch.changed().await.is_err() {
                return self.error("the transactions have stopped".into());
            }
        }
    }

    /// Adds a consumer whose positions the transactions carry, and `stop` to call when a
    /// transaction fails; starts committing every interval on this runtime.
    pub(crate) fn register(
        self: &Arc<Self>,
        member: Arc<dyn Member>,
        stop: Option<Fatal>,
    ) -> Result<(), Error> {
        use tokio::runtime::{Handle, RuntimeFlavor};
        if Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::CurrentThread) {
            // A revocation commits from inside the consumer's poll, waiting for handlers that
            // a single-threaded runtime could not run meanwhile.
            return Err(Error::Conf {
                topic: member.topic().to_owned(),
                key: GUARANTEE.to_owned(),
                message: "exactly-once needs a multi-threaded tokio runtime (`#[tokio::main]`, not `flavor = \"current_thread\"`)".to_owned(),
            });
        }
        lock(&self.members).push(Arc::downgrade(&member));
        self.watch(stop);
        Ok(())
    }

    /// Adds `stop` (called when a transaction fails) and makes sure a task commits every
    /// interval on this runtime.
    pub(crate) fn watch(self: &Arc<Self>, stop: Option<Fatal>) {
        if let Some(stop) = stop {
            lock(&self.stops).push(stop);
        }
        let mut driver = lock(&self.driver);
        if driver.as_ref().is_some_and(|d| !d.is_finished()) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let this = Arc::downgrade(self);
        let interval = self.interval;
        *driver = Some(runtime.spawn(async move {
            loop {
                tokio::time::sleep(interval).await;
                let Some(this) = this.upgrade() else { return };
                if let Err(error) = this.commit().await {
                    this.stop(error);
                    return;
                }
            }
        }));
    }

    /// Removes a consumer that has closed.
    pub(crate) fn unregister(&self, member: &dyn Member) {
        lock(&self.members).retain(|m| {
            m.upgrade()
                .is_some_and(|m| !std::ptr::addr_eq(Arc::as_ptr(&m), member))
        });
    }

    /// Stops every application using the transactions.
    pub(crate) fn stop(&self, error: Error) {
        for stop in lock(&self.stops).iter() {
            stop(Error::kafka(&self.name, error.to_string()));
        }
    }

    /// Produces a changelog change in the open transaction; `delivered` is told its outcome.
    pub(crate) fn send_change(
        &self,
        changelog: &str,
        state: &Arc<dyn PartitionState>,
        partition: i32,
        key: &[u8],
        value: Option<&[u8]>,
        delivered: Delivered,
    ) -> Result<(), KafkaError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(changelog)
            .partition(partition)
            .key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        let deadline = Instant::now() + CALL_TIMEOUT;
        let delivery = loop {
            let sent = {
                let _producing = self.producing();
                self.producer.send_result(record)
            };
            match sent {
                Ok(delivery) => break delivery,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if Instant::now() < deadline =>
                {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err((error, _)) => return Err(error),
            }
        };
        lock(&self.written)
            .entry(changelog.to_owned())
            .or_insert_with(|| (Arc::clone(state), BTreeSet::new()))
            .1
            .insert(partition);
        if let Err(returned) = lock(&self.settler).send((delivery, partition, delivered)) {
            // The settling thread is gone: the change counts as refused.
            let (_, partition, delivered) = returned.0;
            delivered(Err((KafkaError::Canceled, partition)));
        }
        Ok(())
    }

    /// Commits the open transaction (from a task).
    pub(crate) async fn commit(self: &Arc<Self>) -> Result<(), Error> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || this.commit_now())
            .await
            .map_err(|e| self.error(e.to_string()))?
    }

    /// Commits the open transaction: handing out messages pauses, the messages being handled
    /// finish, their positions join the transaction, and it commits; then the next one opens.
    /// An application that is stopping on a failure aborts it instead. Blocks.
    pub(crate) fn commit_now(&self) -> Result<(), Error> {
        self.commit_positions(false)
    }

    /// [`commit_now`](Self::commit_now) as partitions are revoked: every position goes in the
    /// transaction, moved or not, so that the broker answers for this producer before the
    /// partitions move (an empty transaction never reaches it, and a producer the broker fenced
    /// meanwhile would not learn so). Blocks.
    pub(crate) fn commit_revoking(&self) -> Result<(), Error> {
        self.commit_positions(true)
    }

    fn commit_positions(&self, all: bool) -> Result<(), Error> {
        let _one = lock(&self.committing);
        if let Some(failure) = lock(&self.failure).clone() {
            if self.abort_owed.swap(false, Ordering::SeqCst)
                && let Err(error) = self.producer.abort_transaction(CALL_TIMEOUT)
            {
                tracing::error!(%error, "cannot abort the transaction (the broker aborts it when it times out)");
            }
            return Err(self.error(failure));
        }
        self.check_replaced()?;
        let _closed = self.inputs.close();
        let members: Vec<Arc<dyn Member>> = lock(&self.members)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        if members.iter().any(|m| m.has_failed()) {
            return Err(self.abort("the application is stopping on a failure".into()));
        }
        let drain = self.drain_timeout();
        let deadline = Instant::now() + drain;
        for member in &members {
            if !member.settle(deadline) {
                return Err(self.abort(format!(
                    "messages of `{}` were still being handled after {drain:?} (a paused handler, or a pipe holding items?): a transaction commits only once every message in it is handled, within `transaction.timeout.ms`",
                    member.topic()
                )));
            }
        }
        let _producing = self.producing.write().unwrap_or_else(|e| e.into_inner());
        let mut taken = Vec::new();
        for member in &members {
            let positions = member.take_positions(all);
            if positions.is_empty() {
                continue;
            }
            tracing::trace!(topic = %member.topic(), ?positions, "committing positions");
            if let Err(error) = self.send_positions(member.as_ref(), &positions) {
                return Err(self.failed(error));
            }
            taken.push((member, positions));
        }
        // A message that failed while the others finished: its partial work is in the
        // transaction (no message can fail from here on: none is in flight).
        if members.iter().any(|m| m.has_failed()) {
            return Err(self.abort("the application is stopping on a failure".into()));
        }
        self.finish(&_producing)?;
        for (member, positions) in taken {
            member.note_committed(&positions);
        }
        Ok(())
    }

    /// Mock cluster: fails, as fenced, once another instance has started with the same
    /// `transactional.id` (a real broker fences the producer itself).
    fn check_replaced(&self) -> Result<(), Error> {
        let Some(recorded) = &self.recorded else {
            return Ok(());
        };
        if recorded.replaced() {
            let _ = self.producer.abort_transaction(CALL_TIMEOUT);
            return Err(self.fenced("it wrote its start record to the positions topic"));
        }
        Ok(())
    }

    /// How long a commit waits for the messages being handled.
    fn drain_timeout(&self) -> Duration {
        DRAIN_TIMEOUT.min(
            self.timeout
                .saturating_sub(COMMIT_MARGIN)
                .max(COMMIT_MARGIN),
        )
    }

    /// Puts `member`'s `positions` in the open transaction.
    fn send_positions(
        &self,
        member: &dyn Member,
        positions: &[(i32, i64)],
    ) -> Result<(), KafkaError> {
        let mut list = TopicPartitionList::with_capacity(positions.len());
        for &(partition, offset) in positions {
            if let Some(recorded) = &self.recorded {
                let key = position_key(member.group_id(), member.topic(), partition);
                let value = offset.to_string();
                let record = FutureRecord::<str, str>::to(&recorded.topic)
                    .key(&key)
                    .payload(&value);
                drop(self.producer.send_result(record).map_err(|(e, _)| e)?);
            }
            list.add_partition_offset(member.topic(), partition, Offset::Offset(offset))?;
        }
        if let Some(metadata) = member.group_metadata() {
            self.producer
                .send_offsets_to_transaction(&list, &metadata, CALL_TIMEOUT)?;
        }
        Ok(())
    }

    /// Commits (retrying what librdkafka says may be retried), then opens the next transaction.
    fn finish(&self, _producing: &RwLockWriteGuard<'_, ()>) -> Result<(), Error> {
        let deadline = Instant::now() + self.timeout.max(CALL_TIMEOUT);
        loop {
            match self.producer.commit_transaction(CALL_TIMEOUT) {
                Ok(()) => break,
                Err(KafkaError::Transaction(error))
                    if error.is_retriable() && Instant::now() < deadline =>
                {
                    tracing::warn!(%error, "committing the transaction: trying again");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(error) => return Err(self.failed(error)),
            }
        }
        lock(&self.written).clear();
        self.committed.send_modify(|n| *n += 1);
        *lock(&self.opened) = Instant::now();
        self.producer
            .begin_transaction()
            .map_err(|error| self.failed(error))
    }

    /// A transaction failed: aborted when it can be, and nothing commits from then on.
    fn failed(&self, error: KafkaError) -> Error {
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        );
        if fenced {
            return self.fenced(&format!("the broker fenced its producer: {error}"));
        }
        let left_behind = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::FencedInstanceId
            )
        );
        if left_behind {
            return self.abort(format!(
                "the consumer group moved on without this instance (it stalled past its session or poll timeout, and its partitions went to other members), so the group refused this transaction's positions: {error}"
            ));
        }
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion)
        ) {
            return self.give_up(unsupported(&self.name, error).to_string());
        }
        let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
        if fatal {
            return self.give_up(format!("the transaction failed for good: {error}"));
        }
        self.abort(format!("the transaction failed: {error}"))
    }

    /// The broker ended this instance's transactions: it stops.
    fn fenced(&self, detail: &str) -> Error {
        self.give_up(format!(
            "this instance was fenced: the broker ended its transaction, because another instance started with the same `transactional.id` (`{}`), or because the transaction outlived `transaction.timeout.ms` (the instance stalled that long, and the group may have given its partitions to others); it stops rather than write duplicates ({detail})",
            self.id
        ))
    }

    /// The error for a record the transactional producer did not write (`topic`'s). When the
    /// broker has ended this producer's transactions, that is what it says (and every later
    /// commit fails with it); after an earlier failure, that one.
    pub(crate) fn refused(&self, topic: &str, error: KafkaError) -> Error {
        if let Some(failure) = lock(&self.failure).clone() {
            return self.error(failure);
        }
        let fencing = |code: RDKafkaErrorCode| {
            matches!(
                code,
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        };
        match self.producer.client().fatal_error() {
            Some((code, reason)) if fencing(code) => {
                return self.fenced(&format!("a record for `{topic}` was refused: {reason}"));
            }
            Some((_, reason)) => {
                return self.give_up(format!(
                    "the transactional producer failed for good: {reason}"
                ));
            }
            None => {}
        }
        match error.rdkafka_error_code() {
            Some(code) if fencing(code) => {
                self.fenced(&format!("a record for `{topic}` was refused: {error}"))
            }
            // The transaction takes no more records, and no failure of ours ended it: the
            // broker did (it outlived `transaction.timeout.ms`, an instance stalled that long).
            Some(RDKafkaErrorCode::State | RDKafkaErrorCode::PurgeQueue) => self.give_up(format!(
                "this instance's transaction was ended by the broker, so it stops rather than write duplicates (it outlived `transaction.timeout.ms`: the instance stalled that long, and the group may have given its partitions to others): a record for `{topic}` was refused: {error}"
            )),
            // A stalled instance's records time out, or are refused, as it wakes.
            _ if self.outlived().is_some() => {
                self.give_up(format!("a record for `{topic}` was refused: {error}"))
            }
            _ => Error::kafka(topic, error),
        }
    }

    /// Whether the transactions have failed for good (every later commit fails).
    pub(crate) fn has_failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    /// The error for a record of the open transaction the broker did not take (its delivery
    /// failed). librdkafka then lets the transaction only abort, so it fails whatever the
    /// handler's policy, every later commit fails with it, and the next one aborts it.
    pub(crate) fn undelivered(&self, topic: &str, error: KafkaError) -> Error {
        let too_large = error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
        let refused = self.refused(topic, error);
        if self.has_failed() {
            return refused;
        }
        let advice = if too_large {
            ". A record the producer refuses itself, as one over its `message.max.bytes` (set it no larger than the topic's `max.message.bytes`), stays out of the transaction, and the policy applies"
        } else {
            ""
        };
        // Owed before the failure shows: the next commit, which sees it, pays it.
        self.abort_owed.store(true, Ordering::SeqCst);
        self.give_up(format!(
            "a record for `{topic}` was not delivered, and a transaction holding an undelivered record can only abort, whatever the handler's policy: the application stops, and a restart meets the record again ({refused}){advice}"
        ))
    }

    /// How long the open transaction has been open, when that is past `transaction.timeout.ms`
    /// (the broker has ended it).
    fn outlived(&self) -> Option<Duration> {
        let open = lock(&self.opened).elapsed();
        (open > self.timeout).then_some(open)
    }

    /// Aborts the open transaction: nothing of it is visible to `read_committed` readers, and
    /// the local state it changed is restored from the changelogs at the next start.
    fn abort(&self, why: String) -> Error {
        // Recorded first: the records the abort purges are refused with this reason.
        let error = self.give_up(format!(
            "{why}; the transaction was aborted, and a restart resumes from the last one committed"
        ));
        if let Err(error) = self.producer.abort_transaction(CALL_TIMEOUT) {
            tracing::error!(%error, "cannot abort the transaction (the broker aborts it when it times out)");
        }
        error
    }

    /// Records `why` as the failure every later commit reports, and marks the changelog
    /// partitions the open transaction wrote as not to be trusted locally.
    fn give_up(&self, why: String) -> Error {
        let why = match self.outlived() {
            Some(open) => format!(
                "this instance's transaction was ended by the broker: it was open {open:.1?}, past `transaction.timeout.ms` ({:?}), because the instance stalled that long (and the group may have given its partitions to others); it stops rather than write duplicates ({why})",
                self.timeout
            ),
            None => why,
        };
        for (_, (state, partitions)) in lock(&self.written).drain() {
            for partition in partitions {
                state.refused(partition);
            }
        }
        tracing::error!(transactional_id = %self.id, "{why}");
        let why = lock(&self.failure).get_or_insert(why).clone();
        // Wakes whoever waits for a commit: none is coming.
        self.committed.send_modify(|_| {});
        self.error(why)
    }

    fn error(&self, message: String) -> Error {
        Error::kafka(&self.name, message)
    }

    /// Mock cluster: where `topic`'s `partitions` resume, the positions the last committed
    /// transactions recorded (absent for a partition no transaction has carried; always absent
    /// on a real broker, where the group's committed offsets are read). Waits for transactions
    /// still open on the positions topic (a killed instance's) to end. Blocks.
    pub(crate) fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<HashMap<i32, i64>, Error> {
        let Some(recorded) = &self.recorded else {
            // The group's committed offsets, read `read_committed` by the consumer.
            return Ok(HashMap::new());
        };
        if partitions.is_empty() {
            return Ok(HashMap::new());
        }
        let name = &recorded.topic;
        let kafka = |e: KafkaError| Error::kafka(name, e);
        let consumer: BaseConsumer<client::Logging> =
            client::consumer_config(&recorded.reader_conf)
                .create_with_context(client::Logging)
                .map_err(|e| client::creation_error(name, e))?;
        let (_, high) = consumer
            .fetch_watermarks(name, 0, admin::CALL_TIMEOUT)
            .map_err(kafka)?;
        let wanted: HashMap<String, i32> = partitions
            .iter()
            .map(|&p| (position_key(group, topic, p), p))
            .collect();
        let mut found = HashMap::new();
        if high == 0 {
            return Ok(found);
        }
        let mut list = TopicPartitionList::new();
        list.add_partition_offset(name, 0, Offset::Beginning)
            .map_err(kafka)?;
        consumer.assign(&list).map_err(kafka)?;
        let deadline = Instant::now() + self.open_for_at_most() + CALL_TIMEOUT;
        loop {
            match consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    tracing::trace!(offset = message.offset(), key = ?message.key().map(String::from_utf8_lossy), value = ?message.payload().map(String::from_utf8_lossy), "position record");
                    let key = message.key().and_then(|k| std::str::from_utf8(k).ok());
                    if let Some(&partition) = key.and_then(|k| wanted.get(k)) {
                        let offset = message
                            .payload()
                            .and_then(|v| std::str::from_utf8(v).ok())
                            .and_then(|v| v.parse::<i64>().ok());
                        if let Some(offset) = offset {
                            found.insert(partition, offset);
                        }
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) | None => {}
                Some(Err(error)) => return Err(kafka(error)),
            }
            // Read up to what the topic held when asked: past an open transaction only once
            // it has ended (committed or aborted).
            let position = consumer
                .position()
                .ok()
                .and_then(|l| l.find_partition(name, 0).map(|e| e.offset()));
            if matches!(position, Some(Offset::Offset(at)) if at >= high) {
                tracing::debug!(
                    topic,
                    high,
                    ?position,
                    ?found,
                    "read the committed positions"
                );
                return Ok(found);
            }
            if Instant::now() >= deadline {
                return Err(Error::kafka(
                    name,
                    format!(
                        "cannot read the committed positions: a transaction on it stayed open past {:?}",
                        self.open_for_at_most() + CALL_TIMEOUT
                    ),
                ));
            }
        }
    }
}

/// The error of a broker that does not commit transactions.
fn unsupported(what: &str, error: KafkaError) -> Error {
    Error::kafka(
        what,
        format!(
            "exactly-once needs a broker that supports Kafka transactions (KIP-98; Apache Kafka 2.5 or later for `exactly_once`), and this one does not commit them: {error}"
        ),
    )
}

impl Recorded {
    /// Creates the positions topic if missing, and records this instance's start in a first
    /// transaction, which proves that the broker commits transactions.
    fn start(
        group: &str,
        id: &str,
        conf: &Conf,
        effective: &Conf,
        producer: &FutureProducer<Linked>,
    ) -> Result<Recorded, Error> {
        let topic = format!("{group}-slipstream-offsets");
        let mut reader_conf = conf.clone();
        reader_conf.remove("transactional.id");
        reader_conf.remove("transaction.timeout.ms");
        let metadata: BaseConsumer<client::Logging> = client::consumer_config(&reader_conf)
            .set("allow.auto.create.topics", "false")
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(&topic, e))?;
        if admin::partition_count(&metadata, &topic)?.is_none() {
            admin::create(&topic, 1, &reader_conf, effective)?;
        }
        reader_conf.insert("group.id", format!("{group}-slipstream-offsets-reader"));
        reader_conf.insert("isolation.level", "read_committed");
        reader_conf.insert("enable.auto.commit", "false");
        reader_conf.insert("enable.partition.eof", "true");
        reader_conf.insert("auto.offset.reset", "earliest");

        let unsupported = |error| unsupported(&topic, error);
        producer.begin_transaction().map_err(unsupported)?;
        let started_key = format!("{STARTED}{id}");
        let incarnation = format!("{}-{:?}", std::process::id(), std::time::SystemTime::now());
        let record = FutureRecord::<str, str>::to(&topic)
            .key(&started_key)
            .payload(&incarnation);
        let sent = producer
            .send_result(record)
            .map_err(|(e, _)| unsupported(e))?;
        producer
            .commit_transaction(CALL_TIMEOUT)
            .map_err(unsupported)?;
        let started_at = match futures::executor::block_on(sent) {
            Ok(Ok(delivery)) => delivery.offset,
            Ok(Err((error, _))) => return Err(unsupported(error)),
            Err(_) => return Err(unsupported(KafkaError::Canceled)),
        };
        let replaced: BaseConsumer<client::Logging> = client::consumer_config(&reader_conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(&topic, e))?;
        let mut after = TopicPartitionList::new();
        after
            .add_partition_offset(&topic, 0, Offset::Offset(started_at + 1))
            .and_then(|()| replaced.assign(&after))
            .map_err(|e| Error::kafka(&topic, e))?;
        Ok(Recorded {
            topic,
            reader_conf,
            replaced: Mutex::new(replaced),
            started_key,
        })
    }

    /// Whether another instance with this one's id has written its start record since.
    fn replaced(&self) -> bool {
        let replaced = lock(&self.replaced);
        while let Some(polled) = replaced.poll(Duration::ZERO) {
            if let Ok(message) = polled
                && message.key() == Some(self.started_key.as_bytes())
            {
                return true;
            }
        }
        false
    }
}

/// The key of `group`'s position in `topic`'s `partition` in the positions topic.
fn position_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}

/// Lets messages be handed out, or holds them back while a commit waits for the messages being
/// handled.
#[derive(Default)]
struct Gate {
    state: Mutex<GateState>,
    released: Condvar,
    open: OpenWatch,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// Messages between being read and being counted in flight.
    passing: usize,
}

/// Wakes the streams waiting at a closed gate.
struct OpenWatch(tokio::sync::watch::Sender<bool>);

impl Default for OpenWatch {
    fn default() -> Self {
        OpenWatch(tokio::sync::watch::Sender::new(true))
    }
}

/// A message passing the gate: the commit waits until it is counted in flight.
pub(crate) struct Passing<'a>(&'a Gate);

impl Drop for Passing<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).passing -= 1;
        self.0.released.notify_all();
    }
}

/// The gate closed for a commit; open again when dropped.
struct Closed<'a>(&'a Gate);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).closed = false;
        self.0.open.0.send_replace(true);
    }
}

impl Gate {
    /// Waits until the gate is open and passes it.
    async fn pass(&self) -> Passing<'_> {
        let mut open = self.open.0.subscribe();
        loop {
            {
                let mut state = lock(&self.state);
                if !state.closed {
                    state.passing += 1;
                    return Passing(self);
                }
            }
            let _ = open.wait_for(|open| *open).await;
        }
    }

    /// Closes the gate and waits for what is passing it. Blocks.
    fn close(&self) -> Closed<'_> {
        self.open.0.send_replace(false);
        let mut state = lock(&self.state);
        state.closed = true;
        while state.passing > 0 {
            state = self
                .released
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        Closed(self)
    }
}

impl Transactions {
    /// Waits until the gate lets a message be handed out; hold the result until the message
    /// counts in flight.
    pub(crate) async fn pass(&self) -> Passing<'_> {
        self.inputs.pass().await
    }
}
