//! Replicated caches (`Cache::replicate`): every partition of a topic (or of a following cache's
//! changelog) fed, in a background thread, into a store each instance holds whole.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::__component::lock;
use slipstream_core::Error;
use slipstream_core::partition::{Change, Encode, Replica, Replication};

use crate::client;
use crate::client::admin::{self, CALL_TIMEOUT};
use crate::codec::Codec;
use crate::conf::Conf;

/// Changelog records applied in one write.
pub(crate) const BATCH: usize = 10_000;

/// A record as the replica stores it; `Ok(None)` for one it has no use for (no key).
pub(crate) type Decode =
    Box<dyn Fn(&BorrowedMessage<'_>) -> Result<Option<Change>, String> + Send + 'static>;

/// Finds what to read, in the feed's thread: the topic's name and its consumer's settings.
pub(crate) type Connect = Box<dyn FnOnce() -> Result<(String, Conf), Error> + Send + 'static>;

/// How long a poll waits (and so how soon a stop is seen).
const POLL: Duration = Duration::from_millis(200);
/// How long records wait in memory before they are applied, once caught up.
const APPLY_EVERY: Duration = Duration::from_millis(50);

/// The settings of a consumer that reads a whole topic for a replica: never in a group (the
/// group id only lets librdkafka assign), never committing, from the start when it has nothing.
pub(crate) fn replica_conf(mut conf: Conf) -> Conf {
    let group = conf.get("group.id").unwrap_or("slipstream").to_owned();
    conf.insert("group.id", format!("{group}-replica"));
    conf.insert("enable.auto.commit", "false");
    conf.insert("enable.partition.eof", "true");
    conf.insert("auto.offset.reset", "earliest");
    conf
}

enum Phase {
    CatchingUp,
    CaughtUp,
    Failed(String),
}

/// A replica's feed from a topic.
pub(crate) struct TopicReplication {
    /// What is replicated, for errors (a topic, or a cache's changelog).
    label: String,
    phase: Mutex<Phase>,
    /// Whether it has caught up (read without the lock on every read of the cache).
    caught: AtomicBool,
    changed: Condvar,
    applied: AtomicU64,
    stopping: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Starts feeding `replica` from the topic `connect` finds.
pub(crate) fn start(
    label: String,
    connect: Connect,
    replica: Arc<dyn Replica>,
    decode: Decode,
) -> Arc<TopicReplication> {
    let feed = Arc::new(TopicReplication {
        label,
        phase: Mutex::new(Phase::CatchingUp),
        caught: AtomicBool::new(false),
        changed: Condvar::new(),
        applied: AtomicU64::new(0),
        stopping: AtomicBool::new(false),
        thread: Mutex::new(None),
    });
    let running = Arc::clone(&feed);
    let spawned = std::thread::Builder::new()
        .name("slipstream-replica".into())
        .spawn(move || {
            let result = running.run(connect, &*replica, &decode);
            if let Err(error) = result {
                tracing::error!(source = %running.label, replica = %replica.name(), %error, "the replica's feed stopped");
                running.set(Phase::Failed(error.to_string()));
            }
        });
    match spawned {
        Ok(thread) => *lock(&feed.thread) = Some(thread),
        Err(error) => feed.set(Phase::Failed(format!("cannot start its thread: {error}"))),
    }
    feed
}

/// A partition being read.
struct Partition {
    next: i64,
    batch: Vec<Change>,
}

impl TopicReplication {
    fn set(&self, phase: Phase) {
        self.caught
            .store(matches!(phase, Phase::CaughtUp), Ordering::Release);
        *lock(&self.phase) = phase;
        self.changed.notify_all();
    }

    fn run(&self, connect: Connect, replica: &dyn Replica, decode: &Decode) -> Result<(), Error> {
        let (topic, conf) = connect()?;
        let consumer: BaseConsumer<client::Logging> = client::consumer_config(&conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(&topic, e))?;
        let count = self.partition_count(&consumer, &topic)?;
        let mut partitions = BTreeMap::new();
        let mut list = TopicPartitionList::new();
        for partition in 0..count {
            let position = replica.position(partition)?;
            let offset = position.map_or(Offset::Beginning, Offset::Offset);
            let _ = list.add_partition_offset(&topic, partition, offset);
            partitions.insert(
                partition,
                Partition {
                    next: position.unwrap_or(0),
                    batch: Vec::new(),
                },
            );
        }
        consumer
            .assign(&list)
            .map_err(|e| Error::kafka(&topic, e))?;
        tracing::info!(%topic, replica = %replica.name(), partitions = count, "replicating");
        let mut behind: BTreeSet<i32> = partitions.keys().copied().collect();
        let stall = CALL_TIMEOUT * 3;
        let (mut heard, mut applied_at) = (Instant::now(), Instant::now());
        while !self.stopping.load(Ordering::Relaxed) {
            match consumer.poll(POLL) {
                Some(Ok(message)) => {
                    heard = Instant::now();
                    let partition = message.partition();
                    let Some(p) = partitions.get_mut(&partition) else {
                        continue;
                    };
                    p.next = message.offset() + 1;
                    match decode(&message) {
                        Ok(Some(change)) => p.batch.push(change),
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%topic, partition, offset = message.offset(), %error, "a record the replica cannot store: skipped");
                        }
                    }
                    if p.batch.len() >= BATCH {
                        self.apply(replica, partition, p)?;
                    }
                }
                Some(Err(KafkaError::PartitionEOF(partition))) => {
                    heard = Instant::now();
                    if let Some(p) = partitions.get_mut(&partition) {
                        self.apply(replica, partition, p)?;
                    }
                    if behind.remove(&partition) && behind.is_empty() {
                        tracing::info!(%topic, replica = %replica.name(), records = self.applied(), "replica caught up");
                        self.set(Phase::CaughtUp);
                    }
                }
                Some(Err(error)) => {
                    // The consumer retries by itself; before catching up a stall ends the feed.
                    tracing::warn!(%topic, %error, "replica feed error");
                }
                None if !behind.is_empty() && heard.elapsed() > stall => {
                    return Err(Error::kafka(
                        &topic,
                        format!("the replica could not catch up: nothing read for {stall:?}"),
                    ));
                }
                None => {}
            }
            if applied_at.elapsed() >= APPLY_EVERY {
                for (&partition, p) in partitions.iter_mut() {
                    self.apply(replica, partition, p)?;
                }
                applied_at = Instant::now();
            }
        }
        for (&partition, p) in partitions.iter_mut() {
            self.apply(replica, partition, p)?;
        }
        Ok(())
    }

    /// The topic's partition count, waiting a while for a topic being created.
    fn partition_count(
        &self,
        consumer: &BaseConsumer<client::Logging>,
        topic: &str,
    ) -> Result<i32, Error> {
        let deadline = Instant::now() + CALL_TIMEOUT * 3;
        loop {
            if let Some(count) = admin::partition_count(consumer, topic)? {
                return Ok(count);
            }
            if Instant::now() >= deadline || self.stopping.load(Ordering::Relaxed) {
                return Err(Error::kafka(
                    topic,
                    "the topic does not exist: a replicated cache reads an existing topic",
                ));
            }
            std::thread::sleep(POLL);
        }
    }

    fn apply(&self, replica: &dyn Replica, partition: i32, p: &mut Partition) -> Result<(), Error> {
        if p.batch.is_empty() {
            return Ok(());
        }
        replica.apply(partition, &p.batch, p.next)?;
        self.applied
            .fetch_add(p.batch.len() as u64, Ordering::Relaxed);
        p.batch.clear();
        Ok(())
    }
}

impl Replication for TopicReplication {
    fn caught_up(&self) -> Result<(), Error> {
        let wait = || {
            let mut phase = lock(&self.phase);
            loop {
                match &*phase {
                    Phase::CaughtUp => return Ok(()),
                    Phase::Failed(error) => {
                        return Err(Error::kafka(
                            &self.label,
                            format!("the replica's feed failed: {error}"),
                        ));
                    }
                    Phase::CatchingUp => {
                        phase = self
                            .changed
                            .wait(phase)
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                    }
                }
            }
        };
        if self.caught.load(Ordering::Acquire) {
            return Ok(());
        }
        client::blocking(wait)
    }

    fn applied(&self) -> u64 {
        self.applied.load(Ordering::Relaxed)
    }

    fn stop(&self) {
        self.stopping.store(true, Ordering::Relaxed);
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let mut phase = lock(&self.phase);
        if matches!(*phase, Phase::CatchingUp) {
            *phase = Phase::Failed("stopped".into());
            self.changed.notify_all();
        }
    }
}

/// Feeds `replica` with every partition of the topic `name`, decoding records with its codecs.
pub(crate) fn from_topic<K: 'static, V: 'static>(
    name: &str,
    effective: Conf,
    (keys, values): (Arc<dyn Codec<K>>, Arc<dyn Codec<V>>),
    replica: Arc<dyn Replica>,
    encode: Encode<K, V>,
) -> Arc<TopicReplication> {
    let topic = name.to_owned();
    let connect: Connect = Box::new(move || {
        let conf = client::resolve(&topic, &effective)?;
        Ok((topic, replica_conf(conf)))
    });
    let decode: Decode = Box::new(move |message| {
        let Some(key) = message.key() else {
            return Ok(None);
        };
        let key = keys
            .decode(key)
            .map_err(|e| format!("undecodable key: {e}"))?;
        // A record without a payload (a tombstone) deletes its key.
        let value = match message.payload() {
            Some(bytes) => Some(
                values
                    .decode(bytes)
                    .map_err(|e| format!("undecodable value: {e}"))?,
            ),
            None => None,
        };
        encode(&key, value.as_ref())
            .map(Some)
            .map_err(|e| e.to_string())
    });
    start(name.to_owned(), connect, replica, decode)
}
