//! Dead-letter topics: a record that a handler failed on (or that could not be decoded) is
//! produced, as it was read, to another topic, with headers saying why and where it came from.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};
use slipstream_core::__component::lock;
use slipstream_core::{BoxError, DeadLetter, Error};

use super::producer::Producer;
use crate::client::{self, Logging};
use crate::codec::DefaultCodec;
use crate::conf::Conf;
use crate::message::header_pairs;

/// The header naming the handler that failed on a dead-lettered record (absent for a record
/// that could not be decoded).
pub const HANDLER_HEADER: &str = "slipstream.handler";
/// The header holding the failure, as text.
pub const ERROR_HEADER: &str = "slipstream.error";
/// The header naming the topic the record was read from.
pub const TOPIC_HEADER: &str = "slipstream.topic";
/// The header holding the partition the record was read from (decimal).
pub const PARTITION_HEADER: &str = "slipstream.partition";
/// The header holding the record's offset in that partition (decimal).
pub const OFFSET_HEADER: &str = "slipstream.offset";

/// How long fetching a record back from its topic may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

type RawProducer = Producer<Vec<u8>, Vec<u8>>;

/// Forwards records of one source topic to dead-letter topics.
pub(crate) struct DeadLetters {
    topic: Arc<str>,
    /// The source topic's settings (its clients reach the same cluster).
    conf: Conf,
    dry: bool,
    producers: Mutex<HashMap<String, RawProducer>>,
}

/// A record as it was read.
pub(crate) struct Raw {
    pub(crate) key: Option<Vec<u8>>,
    pub(crate) payload: Option<Vec<u8>>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

/// Why a record is dead-lettered.
pub(crate) struct Reason<'a> {
    pub(crate) handler: Option<&'a str>,
    pub(crate) error: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
}

impl DeadLetters {
    pub(crate) fn new(topic: &str, conf: Conf, dry: bool) -> Self {
        DeadLetters {
            topic: topic.into(),
            conf,
            dry,
            producers: Mutex::default(),
        }
    }

    fn producer(&self, destination: &str) -> Result<RawProducer, Error> {
        let mut producers = lock(&self.producers);
        if let Some(producer) = producers.get(destination) {
            return Ok(producer.clone());
        }
        let producer = Producer::new(
            destination,
            &self.conf,
            self.dry,
            None,
            Vec::<u8>::default_codec(),
            Vec::<u8>::default_codec(),
        )?;
        producers.insert(destination.to_owned(), producer.clone());
        Ok(producer)
    }

    /// Produces `record` to `destination` with the headers of `reason` added.
    pub(crate) async fn send(
        &self,
        destination: &str,
        record: &Raw,
        reason: &Reason<'_>,
    ) -> Result<(), Error> {
        let producer = self.producer(destination)?;
        let mut headers = record.headers.clone();
        if let Some(handler) = reason.handler {
            headers.push((HANDLER_HEADER.into(), handler.into()));
        }
        headers.push((ERROR_HEADER.into(), reason.error.into()));
        headers.push((TOPIC_HEADER.into(), self.topic.as_bytes().to_vec()));
        headers.push((PARTITION_HEADER.into(), reason.partition.to_string().into()));
        headers.push((OFFSET_HEADER.into(), reason.offset.to_string().into()));
        producer
            .produce_raw(record.key.as_deref(), record.payload.as_deref(), &headers)
            .await
    }

    /// Reads the record at `offset` of `partition` back from the source topic and produces it
    /// to the letter's destination.
    pub(crate) fn forward(
        self: &Arc<Self>,
        partition: i32,
        offset: i64,
        letter: &DeadLetter<'_>,
    ) -> BoxFuture<'static, Result<(), BoxError>> {
        let this = Arc::clone(self);
        let destination = letter.destination.to_owned();
        let handler = letter.handler.to_owned();
        let error = letter.error.to_owned();
        Box::pin(async move {
            let fetcher = Arc::clone(&this);
            let record =
                tokio::task::spawn_blocking(move || fetcher.fetch(partition, offset)).await??;
            let reason = Reason {
                handler: Some(&handler),
                error: &error,
                partition,
                offset,
            };
            this.send(&destination, &record, &reason).await?;
            Ok(())
        })
    }

    /// The record at `offset` of `partition`, read with a consumer of its own (outside any
    /// group: nothing is committed).
    fn fetch(&self, partition: i32, offset: i64) -> Result<Raw, BoxError> {
        let topic: &str = &self.topic;
        let mut conf = client::resolve(topic, &self.conf)?;
        for key in ["group.instance.id", "enable.partition.eof"] {
            conf.remove(key);
        }
        conf.insert(
            "group.id",
            format!("slipstream-dead-letter-{topic}-{}", std::process::id()),
        );
        conf.insert("enable.auto.commit", "false");
        let consumer: BaseConsumer<Logging> = client::consumer_config(&conf)
            .create_with_context(Logging)
            .map_err(|e| client::creation_error(topic, e))?;
        let mut list = TopicPartitionList::with_capacity(1);
        list.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        consumer.assign(&list)?;
        let deadline = Instant::now() + FETCH_TIMEOUT;
        while Instant::now() < deadline {
            let message = match consumer.poll(Duration::from_millis(200)) {
                None => continue,
                Some(Err(error)) => {
                    tracing::debug!(topic, %error, "reading a record back for its dead-letter topic");
                    continue;
                }
                Some(Ok(message)) => message,
            };
            if message.partition() != partition || message.offset() < offset {
                continue;
            }
            if message.offset() > offset {
                return Err(format!(
                    "the record at partition {partition} offset {offset} is gone (retention or compaction)"
                )
                .into());
            }
            let headers = message
                .headers()
                .map(|headers| header_pairs(headers).collect())
                .unwrap_or_default();
            return Ok(Raw {
                key: message.key().map(<[u8]>::to_vec),
                payload: message.payload().map(<[u8]>::to_vec),
                headers,
            });
        }
        Err(
            format!("timed out reading the record at partition {partition} offset {offset} back")
                .into(),
        )
    }
}
