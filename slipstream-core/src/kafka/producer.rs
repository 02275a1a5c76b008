//! Producing to a topic: `Topic::send` and the topic as a handler sink.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};

use super::client::{self, Logging};
use super::message::Message;
use crate::codec::Codec;
use crate::conf::Conf;
use crate::error::{BoxError, Error};
use crate::sink::Sink;

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
    ) -> Result<(), Error> {
        let codec_error = |source| Error::Codec {
            topic: self.topic.to_string(),
            source,
        };
        let key = key
            .map(|k| self.key_codec.encode(k))
            .transpose()
            .map_err(codec_error)?;
        let payload = self.value_codec.encode(value).map_err(codec_error)?;
        let Some(producer) = &self.producer else {
            tracing::info!(
                topic = %self.topic,
                key = key.as_deref().map(String::from_utf8_lossy).as_deref(),
                value = %String::from_utf8_lossy(&payload),
                "dry run: not producing"
            );
            return Ok(());
        };
        self.send_raw(producer, key.as_deref(), Some(&payload), headers)
            .await
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
        if !headers.is_empty() {
            let mut owned = OwnedHeaders::new_with_capacity(headers.len());
            for (name, value) in headers {
                owned = owned.insert(Header {
                    key: name,
                    value: Some(value),
                });
            }
            record = record.headers(owned);
        }
        producer
            .send(record, QUEUE_TIMEOUT)
            .await
            .map(drop)
            .map_err(|(error, _)| Error::Kafka {
                topic: self.topic.to_string(),
                source: Box::new(error),
            })
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

/// A handler's writer into a [`Topic`](crate::Topic): it takes `(key, value)` pairs, values
/// alone (no key), or whole [`Message`]s (forwarded with their key and headers). Each output is
/// acknowledged by the broker before the handler goes on.
pub struct TopicSink<K, V> {
    producer: Producer<K, V>,
}

impl<K, V> TopicSink<K, V> {
    pub(crate) fn new(producer: Producer<K, V>) -> Self {
        TopicSink { producer }
    }
}

impl<K, V> std::fmt::Debug for TopicSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("topic", &self.producer.topic)
            .finish_non_exhaustive()
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<(K, V)> for TopicSink<K, V> {
    async fn send(&mut self, (key, value): (K, V)) -> Result<(), BoxError> {
        Ok(self.producer.produce(Some(&key), &value, &[]).await?)
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.producer.flush().await
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Sink<V> for TopicSink<K, V> {
    async fn send(&mut self, value: V) -> Result<(), BoxError> {
        Ok(self.producer.produce(None, &value, &[]).await?)
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.producer.flush().await
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
        Ok(self
            .producer
            .produce(key.as_ref(), &value, &headers)
            .await?)
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.producer.flush().await
    }
}
