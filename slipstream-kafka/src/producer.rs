//! Producing to a topic: `Topic::send` and the topic as a handler sink.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::channel::oneshot::Canceled;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::future_producer::OwnedDeliveryResult;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

use super::client::{self, Logging};
use super::message::{Message, Record};
use crate::codec::Codec;
use crate::conf::Conf;
use slipstream_core::__component::AckScope;
use slipstream_core::Ack;
use slipstream_core::Sink;
use slipstream_core::{BoxError, Error};

/// How long a record may wait in the producer's queue before it counts as failed.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Encodes and produces records to one topic; cheap to clone.
pub(crate) struct Producer<K, V> {
    producer: Option<FutureProducer<Logging>>,
    topic: Arc<str>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
}

impl<K, V> Clone for Producer<K, V> {
    fn clone(&self) -> Self {
        Producer {
            producer: self.producer.clone(),
            topic: Arc::clone(&self.topic),
            key_codec: Arc::clone(&self.key_codec),
            value_codec: Arc::clone(&self.value_codec),
        }
    }
}

impl<K: 'static, V: 'static> Producer<K, V> {
    /// A producer for `topic`; `dry` logs records instead of producing them.
    pub(crate) fn new(
        topic: &str,
        effective: &Conf,
        dry: bool,
        key_codec: Arc<dyn Codec<K>>,
        value_codec: Arc<dyn Codec<V>>,
    ) -> Result<Self, Error> {
        let producer = if dry {
            None
        } else {
            let mut conf = client::resolve(topic, effective)?;
            // Consumer settings in a shared conf are not for the producer.
            for key in [
                "group.id",
                "group.instance.id",
                "auto.offset.reset",
                "enable.auto.commit",
                "enable.partition.eof",
            ] {
                conf.remove(key);
            }
            let producer = client::client_config(&conf)
                .create_with_context(Logging)
                .map_err(|e| client::creation_error(topic, e))?;
            Some(producer)
        };
        Ok(Producer {
            producer,
            topic: topic.into(),
            key_codec,
            value_codec,
        })
    }

    /// Produces one record and waits for the broker's acknowledgement.
    pub(crate) async fn produce(
        &self,
        key: Option<&K>,
        value: &V,
        headers: &[(String, Vec<u8>)],
        placement: Placement,
    ) -> Result<(), Error> {
        let encoded = self.encode(key, value)?;
        let Some(producer) = &self.producer else {
            self.log_dry(&encoded);
            return Ok(());
        };
        let record = placement.apply(encoded.record(&self.topic, headers));
        producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(error, _)| Error::kafka(&self.topic, error))
    }

    /// Encodes a record's key and value with the topic's codecs.
    fn encode(&self, key: Option<&K>, value: &V) -> Result<Encoded, Error> {
        let codec_error = |source| Error::Codec {
            topic: self.topic.to_string(),
            source,
        };
        Ok(Encoded {
            key: key
                .map(|k| self.key_codec.encode(k))
                .transpose()
                .map_err(codec_error)?,
            payload: self
                .value_codec
                .encode_nullable(value)
                .map_err(codec_error)?,
        })
    }

    /// Logs the record a dry producer does not produce.
    fn log_dry(&self, encoded: &Encoded) {
        tracing::info!(
            topic = %self.topic,
            key = encoded.key.as_deref().map(String::from_utf8_lossy).as_deref(),
            value = encoded.payload.as_deref().map(String::from_utf8_lossy).as_deref(),
            "dry run: not producing"
        );
    }

    async fn send_raw(
        &self,
        producer: &FutureProducer<Logging>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), Error> {
        let mut record = FutureRecord::<[u8], [u8]>::to(&self.topic);
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        if let Some(headers) = owned_headers(headers) {
            record = record.headers(headers);
        }
        producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(error, _)| Error::kafka(&self.topic, error))
    }

    /// Produces raw bytes (a dead-lettered record), unless dry.
    pub(crate) async fn produce_raw(
        &self,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), Error> {
        match &self.producer {
            Some(producer) => self.send_raw(producer, key, payload, headers).await,
            None => Ok(()),
        }
    }

    /// Waits until every queued record is delivered.
    pub(crate) async fn flush(&self) -> Result<(), BoxError> {
        let Some(producer) = self.producer.clone() else {
            return Ok(());
        };
        tokio::task::spawn_blocking(move || producer.flush(QUEUE_TIMEOUT))
            .await?
            .map_err(Into::into)
    }
}

/// How many records one topic sink may have waiting for the broker's acknowledgement.
const MAX_PENDING: usize = 10_000;

/// A handler's writer into a [`Topic`](crate::Topic): it takes `(key, value)` pairs, values
/// alone (no key), or whole [`Message`]s (forwarded with their key and headers).
///
/// Records are pipelined: `send` hands a record to the producer and returns, so that the handler
/// can go on while the broker acknowledges it (at most 10,000 records wait at a time). Each
/// pending record holds the acknowledgement of the input item it was made from, so a Kafka
/// input's offset is committed only after the broker has acknowledged every record produced
/// from it. A record the producer refuses (at once, such as one over the size limit, or later,
/// in the broker's answer) or that cannot be encoded is a sink error for the handler's policy;
/// unless the policy is `skip`, the input it was made from is never acknowledged (it is read
/// again after a restart). Closing the sink waits for every acknowledgement.
pub struct TopicSink<K, V> {
    producer: Producer<K, V>,
    acks: Arc<AckScope>,
    /// Whether a refused record's input counts as handled (the `skip` policy).
    skip: bool,
    pending: VecDeque<(DeliveryFuture, Option<Ack>)>,
}

impl<K, V> TopicSink<K, V> {
    pub(crate) fn new(producer: Producer<K, V>, acks: Arc<AckScope>, skip: bool) -> Self {
        TopicSink {
            producer,
            acks,
            skip,
            pending: VecDeque::new(),
        }
    }
}

impl<K, V> std::fmt::Debug for TopicSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("topic", &self.producer.topic)
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

impl<K: 'static, V: 'static> TopicSink<K, V> {
    /// Hands one record to the producer, without waiting for the broker.
    async fn enqueue(
        &mut self,
        key: Option<&K>,
        value: &V,
        headers: &[(String, Vec<u8>)],
        placement: Placement,
    ) -> Result<(), BoxError> {
        // A record that is not produced fails the sink; the loop then applies the policy to
        // the item being handled (its acknowledgement is still the current one).
        let encoded = self.producer.encode(key, value)?;
        let Some(producer) = self.producer.producer.clone() else {
            self.producer.log_dry(&encoded);
            return Ok(());
        };
        let topic = Arc::clone(&self.producer.topic);
        let mut record = placement.apply(encoded.record(&topic, headers));
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    self.pending.push_back((delivery, self.acks.current()));
                    break;
                }
                // The producer's queue is full: wait for the oldest record (or, with none of
                // ours pending, a moment), then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    if self.pending.is_empty() {
                        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    } else {
                        self.settle_oldest().await?;
                    }
                }
                Err((error, _)) => return Err(self.error(error)),
            }
        }
        if self.pending.len() >= MAX_PENDING {
            self.settle_oldest().await?;
        }
        self.settle_ready()
    }

    fn error(&self, error: KafkaError) -> BoxError {
        Box::new(Error::kafka(&self.producer.topic, error))
    }

    /// The outcome of one delivery: on failure the input item's acknowledgement fails (unless
    /// the handler skips failures), so a Kafka input is never committed past.
    fn settled(
        &self,
        outcome: Result<OwnedDeliveryResult, Canceled>,
        ack: Option<Ack>,
    ) -> Result<(), BoxError> {
        let error = match outcome {
            Ok(Ok(_)) => {
                if let Some(ack) = ack {
                    ack.done();
                }
                return Ok(());
            }
            Ok(Err((error, _))) => self.error(error),
            Err(Canceled) => self.error(KafkaError::Canceled),
        };
        if let Some(ack) = ack {
            if self.skip { ack.done() } else { ack.fail() }
        }
        Err(error)
    }

    async fn settle_oldest(&mut self) -> Result<(), BoxError> {
        match self.pending.pop_front() {
            Some((delivery, ack)) => {
                let outcome = delivery.await;
                self.settled(outcome, ack)
            }
            None => Ok(()),
        }
    }

    /// Settles the deliveries at the front that the broker has already acknowledged.
    fn settle_ready(&mut self) -> Result<(), BoxError> {
        let mut first_error = Ok(());
        while let Some((delivery, _)) = self.pending.front_mut() {
            let Some(outcome) = delivery.now_or_never() else {
                break;
            };
            let (_, ack) = self.pending.pop_front().expect("a front");
            if let Err(error) = self.settled(outcome, ack) {
                first_error = first_error.and(Err(error));
            }
        }
        first_error
    }

    /// Waits for every pending acknowledgement.
    async fn settle_all(&mut self) -> Result<(), BoxError> {
        let mut first_error = Ok(());
        while !self.pending.is_empty() {
            if let Err(error) = self.settle_oldest().await {
                first_error = first_error.and(Err(error));
            }
        }
        first_error.and(self.producer.flush().await)
    }
}

/// A record's key and value, encoded (a `None` payload is a tombstone).
struct Encoded {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl Encoded {
    /// The record to produce to `topic`.
    fn record<'a>(
        &'a self,
        topic: &'a str,
        headers: &[(String, Vec<u8>)],
    ) -> FutureRecord<'a, [u8], [u8]> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic);
        if let Some(key) = &self.key {
            record = record.key(key);
        }
        if let Some(payload) = &self.payload {
            record = record.payload(payload);
        }
        if let Some(headers) = owned_headers(headers) {
            record = record.headers(headers);
        }
        record
    }
}

/// Where a record goes and when it happened, when the producer is told.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Placement {
    pub(crate) partition: Option<i32>,
    pub(crate) timestamp: Option<i64>,
}

impl Placement {
    fn apply<'a>(self, mut record: FutureRecord<'a, [u8], [u8]>) -> FutureRecord<'a, [u8], [u8]> {
        if let Some(partition) = self.partition {
            record = record.partition(partition);
        }
        if let Some(timestamp) = self.timestamp {
            record = record.timestamp(timestamp);
        }
        record
    }
}

fn owned_headers(headers: &[(String, Vec<u8>)]) -> Option<OwnedHeaders> {
    if headers.is_empty() {
        return None;
    }
    let mut owned = OwnedHeaders::new_with_capacity(headers.len());
    for (name, value) in headers {
        owned = owned.insert(Header {
            key: name,
            value: Some(value),
        });
    }
    Some(owned)
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<(K, V)> for TopicSink<K, V> {
    async fn send(&mut self, (key, value): (K, V)) -> Result<(), BoxError> {
        self.enqueue(Some(&key), &value, &[], Placement::default())
            .await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.settle_all().await
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<V> for TopicSink<K, V> {
    async fn send(&mut self, value: V) -> Result<(), BoxError> {
        self.enqueue(None, &value, &[], Placement::default()).await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.settle_all().await
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<Message<K, V>> for TopicSink<K, V> {
    async fn send(&mut self, message: Message<K, V>) -> Result<(), BoxError> {
        let Message {
            key,
            value,
            headers,
            ..
        } = message;
        self.enqueue(key.as_ref(), &value, &headers, Placement::default())
            .await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.settle_all().await
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<Record<K, V>> for TopicSink<K, V> {
    async fn send(&mut self, record: Record<K, V>) -> Result<(), BoxError> {
        let placement = Placement {
            partition: record.partition,
            timestamp: record.timestamp,
        };
        self.enqueue(
            record.key.as_ref(),
            &record.value,
            &record.headers,
            placement,
        )
        .await
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.settle_all().await
    }
}
