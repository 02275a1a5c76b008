//! librdkafka's mock cluster only: the positions topic that stands in for the offsets a real
//! broker keeps in a transaction, and the start records that tell an instance it was replaced.
//! Layer: exactly-once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::__component::lock;
use slipstream_core::Error;

use super::limits::CALL_TIMEOUT;
use crate::client::admin;
use crate::client::{self, Linked};
use crate::conf::Conf;

/// The positions topic of an application on librdkafka's mock cluster, which takes offsets sent
/// in a transaction without recording them and fences no producer.
pub(super) struct Recorded {
    /// `{group.id}-slipstream-offsets`.
    pub(super) topic: String,
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

impl Recorded {
    /// Where `topic`'s `partitions` resume: the positions the last committed transactions
    /// recorded (absent for a partition no transaction has carried). Waits for transactions
    /// still open on the positions topic (a killed instance's) to end, at most
    /// `open_for_at_most` and a call's time. Blocks.
    pub(super) fn positions(
        &self,
        group: &str,
        topic: &str,
        partitions: &[i32],
        open_for_at_most: Duration,
    ) -> Result<HashMap<i32, i64>, Error> {
        let recorded = self;
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
        let deadline = Instant::now() + open_for_at_most + CALL_TIMEOUT;
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
                        open_for_at_most + CALL_TIMEOUT
                    ),
                ));
            }
        }
    }
}

/// The error of a broker that does not commit transactions.
pub(super) fn unsupported(what: &str, error: KafkaError) -> Error {
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
    pub(super) fn start(
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
    pub(super) fn replaced(&self) -> bool {
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
pub(super) fn position_key(group: &str, topic: &str, partition: i32) -> String {
    format!("{group}/{topic}/{partition}")
}
