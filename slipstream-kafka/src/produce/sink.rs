//! The topic as a handler sink: records sent without waiting, each input acknowledged once the
//! broker has its records, refusals handed to the handler's policy. Layer: producing.

use std::sync::Arc;
use std::time::Duration;

use futures::channel::oneshot::Canceled;
use rdkafka::error::KafkaError;
use rdkafka::producer::DeliveryFuture;
use rdkafka::types::RDKafkaErrorCode;

use super::producer::{Placement, Producer};
use crate::client::Link;
use crate::exactly_once::Transactions;
use crate::message::{Message, Record};
use slipstream_core::__component::AckScope;
use slipstream_core::Sink;
use slipstream_core::{Ack, DeadLetter, OnError};
use slipstream_core::{BoxError, Error};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;

/// How many records one topic sink may have waiting for the broker's acknowledgement.
const MAX_PENDING: usize = 10_000;

/// A handler's writer into a [`Topic`](crate::Topic): it takes `(key, value)` pairs, values
/// alone (no key), [`Record`]s, or whole [`Message`]s (forwarded with their key and headers).
///
/// Records are pipelined: `send` hands a record to the producer and returns, so that the handler
/// can go on while the broker acknowledges it (at most 10,000 records wait at a time). Each
/// pending record holds the acknowledgement of the input item it was made from, so a Kafka
/// input's offset is committed only after the broker has acknowledged every record produced
/// from it (even when no further input comes). A record the producer refuses at once (one over
/// the size limit, say) or that cannot be encoded is a failure of the item being handled, under
/// the handler's policy (and retry). A record the broker refuses later is one of the item it
/// was made from, under the handler's policy without retry: `skip` acknowledges that item,
/// `dead_letter` forwards its source record, `stop` fails it and stops the application. Closing
/// the sink waits for every acknowledgement.
pub struct TopicSink<K, V> {
    producer: Producer<K, V>,
    acks: Arc<AckScope>,
    /// Records handed to the producer, in order, to the task that settles them.
    deliveries: Option<mpsc::Sender<Pending>>,
    settler: Option<tokio::task::JoinHandle<JoinSet<()>>>,
    /// Notified whenever a delivery is settled.
    progress: Arc<Notify>,
}

/// A record the broker has not acknowledged yet, and the item it was made from.
struct Pending {
    delivery: DeliveryFuture,
    ack: Option<Ack>,
    /// Exactly-once, for an item that is not a Kafka message (whose position the transaction
    /// carries): how many transactions had committed when the record was produced. The item is
    /// done once the transaction holding the record commits, not when the record is delivered
    /// (an abort would lose it).
    commits: Option<u64>,
}

/// What a topic sink does with a record the broker refused.
pub(crate) struct Refusals {
    pub(crate) handler: &'static str,
    pub(crate) policy: OnError,
    /// Stops the application (under `stop`, or when a dead letter cannot be forwarded).
    pub(crate) stop: Arc<dyn Fn(Error) + Send + Sync>,
}

impl Refusals {
    /// The same handler's refusals under `stop`, whatever its policy.
    fn stopping(&self) -> Refusals {
        Refusals {
            handler: self.handler,
            policy: OnError::Stop,
            stop: Arc::clone(&self.stop),
        }
    }
}

impl<K, V> TopicSink<K, V> {
    pub(crate) fn new(producer: Producer<K, V>, acks: Arc<AckScope>, refusals: Refusals) -> Self {
        let (deliveries, pending) = mpsc::channel(MAX_PENDING);
        let progress = Arc::new(Notify::new());
        let settler = tokio::spawn(settle(
            pending,
            Arc::clone(&producer.topic),
            Arc::clone(&producer.link),
            refusals,
            Arc::clone(&progress),
            producer.transactions.clone(),
        ));
        TopicSink {
            producer,
            acks,
            deliveries: Some(deliveries),
            settler: Some(settler),
            progress,
        }
    }
}

/// Settles a sink's deliveries in order as the broker acknowledges them.
async fn settle(
    mut pending: mpsc::Receiver<Pending>,
    topic: Arc<str>,
    link: Arc<Link>,
    refusals: Refusals,
    progress: Arc<Notify>,
    transactions: Option<Arc<Transactions>>,
) -> JoinSet<()> {
    // Items waiting for their transaction to commit.
    let mut waiting = JoinSet::new();
    while let Some(Pending {
        delivery,
        ack,
        commits,
    }) = pending.recv().await
    {
        let outcome = delivery.await;
        progress.notify_waiters();
        let error = match outcome {
            Ok(Ok(_)) => {
                link.delivered();
                match (ack, commits, &transactions) {
                    (Some(ack), Some(seen), Some(transactions)) => {
                        // Done once its transaction commits; the next records settle meanwhile.
                        let transactions = Arc::clone(transactions);
                        while waiting.try_join_next().is_some() {}
                        waiting.spawn(async move {
                            match transactions.committed_after(seen).await {
                                Ok(()) => ack.done(),
                                Err(_) => ack.fail(),
                            }
                        });
                    }
                    (Some(ack), _, _) => ack.done(),
                    (None, _, _) => {}
                }
                continue;
            }
            Ok(Err((error, _))) => error,
            Err(Canceled) => KafkaError::Canceled,
        };
        link.delivery_failed(&error);
        match &transactions {
            // Purged by an abort, or after another failure: the item fails with the transaction
            // (the failure is reported where it happened).
            Some(transactions) if transactions.has_failed() => {
                if let Some(ack) = ack {
                    ack.fail();
                }
            }
            // The transaction can only abort: no policy keeps it.
            Some(transactions) => {
                let error = transactions.undelivered(&topic, error);
                refused(&topic, &refusals.stopping(), error, ack).await;
            }
            None => refused(&topic, &refusals, Error::kafka(&topic, error), ack).await,
        }
    }
    waiting
}

/// Applies the handler's policy to a record the broker refused.
async fn refused(topic: &str, refusals: &Refusals, error: Error, ack: Option<Ack>) {
    let handler = refusals.handler;
    let item = ack.as_ref().and_then(Ack::describe);
    let stop = |ack: Option<Ack>, error: Error| {
        if let Some(ack) = ack {
            ack.fail();
        }
        (refusals.stop)(Error::Sink {
            handler: handler.into(),
            source: Box::new(error),
        });
    };
    match refusals.policy {
        OnError::Skip => {
            tracing::error!(handler, topic, item, %error, action = "skipped", "the broker refused a record");
            if let Some(ack) = ack {
                ack.done();
            }
        }
        OnError::DeadLetter(destination) => {
            tracing::error!(handler, topic, item, %error, action = "dead-lettered", "the broker refused a record");
            let text = error.to_string();
            let letter = DeadLetter {
                destination,
                handler,
                error: &text,
            };
            let forward = ack.as_ref().and_then(|a| a.dead_letter(&letter));
            match forward {
                Some(forward) => match forward.await {
                    Ok(()) => {
                        if let Some(ack) = ack {
                            ack.done();
                        }
                    }
                    Err(forwarding) => {
                        tracing::error!(handler, destination, error = %forwarding, "cannot forward to the dead-letter topic; stopping");
                        stop(ack, error);
                    }
                },
                None => {
                    tracing::error!(
                        handler,
                        destination,
                        "the item has no source record to forward; stopping"
                    );
                    stop(ack, error);
                }
            }
        }
        OnError::Stop => {
            tracing::error!(handler, topic, item, %error, action = "stopping", "the broker refused a record");
            stop(ack, error);
        }
    }
}

impl<K, V> std::fmt::Debug for TopicSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicSink")
            .field("topic", &self.producer.topic)
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
        let transactions = self.producer.transactions.clone();
        let ack = self.acks.current();
        let outside = ack.as_ref().is_some_and(|ack| ack.origin().is_none());
        let (delivery, commits) = loop {
            let progress = self.progress.notified();
            let sent = {
                let _producing = transactions.as_ref().map(|t| t.producing());
                let commits = transactions
                    .as_ref()
                    .filter(|_| outside)
                    .map(|t| t.commits());
                producer
                    .send_result(record)
                    .map(|delivery| (delivery, commits))
            };
            match sent {
                Ok(sent) => break sent,
                // The producer's queue is full: wait until a delivery is settled (or a moment),
                // then try again.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    let _ = tokio::time::timeout(QUEUE_FULL_WAIT, progress).await;
                }
                Err((error, _)) => {
                    let error = match &transactions {
                        Some(transactions) => transactions.refused(&topic, error),
                        None => Error::kafka(&topic, error),
                    };
                    // A refusal of this record: this holder lets the item go, and the handler's
                    // policy decides its fate (dropped unreleased, the hold would fail it
                    // whatever the policy). A refusal of the failed transaction fails it.
                    if let Some(ack) = ack {
                        if transactions.as_ref().is_some_and(|t| t.has_failed()) {
                            ack.fail();
                        } else {
                            ack.done();
                        }
                    }
                    return Err(Box::new(error));
                }
            }
        };
        let pending = Pending {
            delivery,
            ack,
            commits,
        };
        let deliveries = self.deliveries.as_ref().ok_or("the topic sink is closed")?;
        deliveries
            .send(pending)
            .await
            .map_err(|_| "the topic sink's settling task has stopped".into())
    }

    /// Waits for every pending acknowledgement, then for the producer's queue.
    async fn settle_all(&mut self) -> Result<(), BoxError> {
        drop(self.deliveries.take());
        let waiting = match self.settler.take() {
            Some(settler) => settler.await?,
            None => JoinSet::new(),
        };
        if let Some(transactions) = &self.producer.transactions {
            // What the handler produced last commits before the application ends (the
            // transaction also carries the positions of the messages it handled); then the
            // items of other sources it came from are done.
            let committed = transactions.commit().await;
            waiting.join_all().await;
            return Ok(committed?);
        }
        self.producer.flush().await
    }
}

/// How long a sink waits for a full producer queue to drain before trying again.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

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
