//! Producing to a topic: encoding records and handing them to librdkafka (`Topic::send`, the
//! topic sinks, dead letters). Layer: producing (below consuming, state and the topic; names
//! none of them).

use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot::Canceled;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use rdkafka::types::RDKafkaErrorCode;

use crate::client::Link;
use crate::client::{self, Linked};
use crate::codec::Codec;
use crate::conf::Conf;
use crate::exactly_once::{self, Transactions};
use slipstream_core::{BoxError, Error};

/// How long a record may wait in the producer's queue before it counts as failed.
const QUEUE_TIMEOUT: Duration = Duration::from_secs(30);

/// Encodes and produces records to one topic; cheap to clone.
pub(crate) struct Producer<K, V> {
    pub(super) producer: Option<FutureProducer<Linked>>,
    /// Its `bootstrap.servers`, for [`connect`](Self::connect)'s errors (`None` when it
    /// has no broker to check: dry, or exactly-once's).
    servers: Option<Arc<str>>,
    /// What its client knows of the brokers and of failing deliveries.
    pub(super) link: Arc<Link>,
    pub(super) topic: Arc<str>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    /// Exactly-once: the instance's transactions, whose producer this one is.
    pub(super) transactions: Option<Arc<Transactions>>,
}

impl<K, V> Clone for Producer<K, V> {
    fn clone(&self) -> Self {
        Producer {
            producer: self.producer.clone(),
            servers: self.servers.clone(),
            link: Arc::clone(&self.link),
            topic: Arc::clone(&self.topic),
            key_codec: Arc::clone(&self.key_codec),
            value_codec: Arc::clone(&self.value_codec),
            transactions: self.transactions.clone(),
        }
    }
}

impl<K: 'static, V: 'static> Producer<K, V> {
    /// A producer for `topic`; `dry` logs records instead of producing them. With a `grace`,
    /// health reports it once no broker has been reachable, or its deliveries have kept failing,
    /// that long (it asks librdkafka for statistics); without, it is not watched (a dead-letter
    /// producer: its failures stop the application).
    pub(crate) fn new(
        topic: &str,
        effective: &Conf,
        dry: bool,
        grace: Option<Duration>,
        key_codec: Arc<dyn Codec<K>>,
        value_codec: Arc<dyn Codec<V>>,
    ) -> Result<Self, Error> {
        let transactions = if dry {
            None
        } else {
            exactly_once::for_conf(effective, topic)?
        };
        if let Some(transactions) = transactions {
            // Its records commit every interval even when no topic is read.
            transactions.watch(None);
            return Ok(Producer {
                producer: Some(transactions.producer().clone()),
                servers: None,
                link: Arc::clone(transactions.link()),
                topic: topic.into(),
                key_codec,
                value_codec,
                transactions: Some(transactions),
            });
        }
        let link = Arc::new(Link::new(
            format!("sink `{topic}`"),
            grace.unwrap_or(Duration::MAX),
        ));
        let created: Option<(FutureProducer<Linked>, Arc<str>)> = if dry {
            None
        } else {
            let mut conf = client::resolve(topic, effective)?;
            client::without_consumer_settings(&mut conf);
            if grace.is_some() {
                client::ask_statistics(&mut conf);
            }
            let producer: FutureProducer<Linked> = client::client_config(&conf)
                .create_with_context(Linked(Arc::clone(&link)))
                .map_err(|e| client::creation_error(topic, e))?;
            Some((
                producer,
                conf.get("bootstrap.servers").unwrap_or_default().into(),
            ))
        };
        let (producer, servers) = created.unzip();
        Ok(Producer {
            producer,
            servers,
            link,
            topic: topic.into(),
            key_codec,
            value_codec,
            transactions: None,
        })
    }

    /// Waits until a broker answers, failing past `timeout` (see [`client::Probe`]): a sink
    /// fails the start as a source does. Exactly-once's producer was checked as its
    /// transactions started; a dry one has no broker.
    pub(crate) fn connect(&self, timeout: Duration) -> Result<(), Error> {
        let (Some(producer), Some(servers)) = (&self.producer, &self.servers) else {
            return Ok(());
        };
        // Its own thread serves its callbacks.
        let probe = client::Probe {
            topic: &self.topic,
            name_it: false,
            servers,
            link: &self.link,
            timeout,
        };
        probe
            .connect(producer.client(), || std::thread::sleep(client::PROBE_POLL))
            .map(drop)
    }

    /// Exactly-once: the instance's transactions, whose producer this one is.
    pub(crate) fn transactions(&self) -> Option<&Arc<Transactions>> {
        self.transactions.as_ref()
    }

    /// Produces one record and waits for the broker's acknowledgement; with exactly-once,
    /// outside a handler's item, until its transaction has committed (an item's records commit
    /// with the item's position).
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
        let Some(transactions) = &self.transactions else {
            let sent = producer.send(record, QUEUE_TIMEOUT).await;
            self.settled(sent.as_ref().map(drop).map_err(|(error, _)| error));
            return sent
                .map(drop)
                .map_err(|(error, _)| Error::kafka(&self.topic, error));
        };
        let deadline = std::time::Instant::now() + QUEUE_TIMEOUT;
        let mut record = record;
        let (seen, delivery) = loop {
            let sent = {
                let _producing = transactions.producing();
                let seen = transactions.commits();
                producer
                    .send_result(record)
                    .map(|delivery| (seen, delivery))
            };
            match sent {
                Ok(sent) => break sent,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned))
                    if std::time::Instant::now() < deadline =>
                {
                    record = returned;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                Err((error, _)) => return Err(transactions.refused(&self.topic, error)),
            }
        };
        let sent = match delivery.await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err((error, _))) => Err(error),
            Err(Canceled) => Err(KafkaError::Canceled),
        };
        self.settled(sent.as_ref().map(drop));
        sent.map_err(|error| transactions.undelivered(&self.topic, error))?;
        if slipstream_core::partition::origin().is_none() {
            transactions.committed_after(seen).await?;
        }
        Ok(())
    }

    /// What its client knows of the brokers and of failing deliveries (its health probe).
    pub(crate) fn link(&self) -> &Arc<Link> {
        &self.link
    }

    /// Tells the link how a delivery ended.
    fn settled(&self, outcome: Result<(), &KafkaError>) {
        match outcome {
            Ok(()) => self.link.delivered(),
            Err(error) => self.link.delivery_failed(error),
        }
    }

    /// Encodes a record's key and value with the topic's codecs.
    pub(super) fn encode(&self, key: Option<&K>, value: &V) -> Result<Encoded, Error> {
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
    pub(super) fn log_dry(&self, encoded: &Encoded) {
        tracing::info!(
            topic = %self.topic,
            key = encoded.key.as_deref().map(String::from_utf8_lossy).as_deref(),
            value = encoded.payload.as_deref().map(String::from_utf8_lossy).as_deref(),
            "dry run: not producing"
        );
    }

    async fn send_raw(
        &self,
        producer: &FutureProducer<Linked>,
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

/// A record's key and value, encoded (a `None` payload is a tombstone).
pub(super) struct Encoded {
    key: Option<Vec<u8>>,
    payload: Option<Vec<u8>>,
}

impl Encoded {
    /// The record to produce to `topic`.
    pub(super) fn record<'a>(
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
    pub(super) fn apply<'a>(
        self,
        mut record: FutureRecord<'a, [u8], [u8]>,
    ) -> FutureRecord<'a, [u8], [u8]> {
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
