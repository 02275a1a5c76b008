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
//!
//! This file: the transactions and their commits. Layer: exactly-once (names no producer,
//! consumer or state above it: consumers are [`Member`]s).

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockWriteGuard, Weak};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::__component::lock;
use slipstream_core::Error;
use slipstream_core::partition::PartitionState;

use super::gate::{Gate, Passing};
use super::limits::{CALL_TIMEOUT, COMMIT_MARGIN, DRAIN_TIMEOUT};
use super::member::Member;
use super::recorded::{Recorded, position_key};
use crate::client::Link;
use crate::client::Linked;
use crate::conf::GUARANTEE;
use crate::fatal::Fatal;

/// Called with the outcome of a record produced in a transaction: its partition and offset, or
/// why the broker refused it.
pub(crate) type Delivered = Box<dyn FnOnce(Result<(i32, i64), (KafkaError, i32)>) + Send>;

/// A changelog's state and the partitions of it the open transaction wrote.
type Written = (Arc<dyn PartitionState>, BTreeSet<i32>);

/// One transactional producer and the commits of its transactions.
pub(crate) struct Transactions {
    pub(super) producer: FutureProducer<Linked>,
    pub(super) link: Arc<Link>,
    pub(super) id: String,
    /// What errors name: the topic whose start created the transactions.
    pub(super) name: String,
    /// On librdkafka's mock cluster only: the topic the positions are recorded in.
    pub(super) recorded: Option<Recorded>,
    pub(super) interval: Duration,
    /// `transaction.timeout.ms`.
    pub(super) timeout: Duration,
    /// Closed while a commit waits for the messages being handled.
    pub(super) inputs: Gate,
    /// Taken for writing while a transaction commits: records are produced under a read lock.
    pub(super) producing: RwLock<()>,
    /// One commit at a time.
    pub(super) committing: Mutex<()>,
    /// The consumers whose positions each transaction carries.
    pub(super) members: Mutex<Vec<Weak<dyn Member>>>,
    /// The changelog partitions written in the open transaction, by changelog.
    pub(super) written: Mutex<HashMap<String, Written>>,
    /// Why transactions cannot go on (fenced, aborted): every later commit fails with it.
    pub(super) failure: Mutex<Option<String>>,
    /// The open transaction failed where it could not be aborted (a delivery's outcome): the
    /// next commit aborts it, so that readers and the partitions' next owners need not wait
    /// for the broker to time it out.
    pub(super) abort_owed: AtomicBool,
    /// Stop the running applications.
    pub(super) stops: Mutex<Vec<Fatal>>,
    /// How many transactions have committed.
    pub(super) committed: tokio::sync::watch::Sender<u64>,
    /// When the open transaction began (a monotonic clock: it runs while the process is
    /// stopped, so a stall shows).
    pub(super) opened: Mutex<Instant>,
    /// Settles changelog records in the order they were produced.
    pub(super) settler: Mutex<std::sync::mpsc::Sender<(DeliveryFuture, i32, Delivered)>>,
    /// The task committing every interval, on the runtime that started it.
    pub(super) driver: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Transactions {
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
}

impl Transactions {
    /// Waits until the gate lets a message be handed out; hold the result until the message
    /// counts in flight.
    pub(crate) async fn pass(&self) -> Passing<'_> {
        self.inputs.pass().await
    }
}

impl Transactions {
    /// Mock cluster: where `topic`'s `partitions` resume, the positions the last committed
    /// transactions recorded (absent for a partition no transaction has carried; always absent
    /// on a real broker, where the group's committed offsets are read `read_committed` by the
    /// consumer). Blocks.
    pub(crate) fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
    ) -> Result<HashMap<i32, i64>, Error> {
        match &self.recorded {
            Some(recorded) => recorded.positions(group, topic, partitions, self.open_for_at_most()),
            None => Ok(HashMap::new()),
        }
    }
}
