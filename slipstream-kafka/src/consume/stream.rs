//! The decoded messages of a running consumer: pausing, undecodable records, the end of
//! partitions, exactly-once's gate. Layer: consuming.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::Stream;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message as _};

use super::running::Running;
use crate::client;
use crate::codec::Codec;
use crate::message::{Message, header_pairs};
use crate::produce::dead_letter::{DeadLetters, Raw, Reason};
use slipstream_core::__component::PauseChanges;
use slipstream_core::{Ack, BoxError, Error, PauseHandle};

/// What the consumer does with a message its codecs cannot read (after logging and counting
/// it).
pub(crate) enum OnUndecodable {
    /// Skip it (it is committed past).
    Skip,
    /// Stop the application: it is never committed past and nothing after it is delivered.
    Stop(Arc<dyn Fn(Error) + Send + Sync>),
    /// Forward it to this topic, then skip it; if that fails, stop the application (when
    /// there is one to stop).
    DeadLetter(String, Option<Arc<dyn Fn(Error) + Send + Sync>>),
}

/// Messages that cannot be decoded: how many, and what to do with them.
pub(crate) struct Undecodable {
    pub(crate) count: Arc<AtomicU64>,
    pub(crate) policy: OnUndecodable,
    pub(crate) letters: Arc<DeadLetters>,
}

/// How often a partition whose reported end came early is checked again.
const RECHECK: Duration = Duration::from_millis(500);

/// Ends the stream's bookkeeping when it is dropped.
struct Finish(Arc<Running>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

struct State<K, V> {
    running: Arc<Running>,
    _finish: Finish,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    undecodable: Undecodable,
    pause: PauseHandle,
    changes: PauseChanges,
    paused: bool,
    stop_at_end: bool,
    /// The partitions seen at their end, with the rebalance count then.
    at_end: HashMap<i32, u64>,
    /// Partitions whose reported end was before the highest high watermark seen, with the
    /// stamp then: checked again every `RECHECK` (librdkafka does not report the same end
    /// twice) until they move.
    unconfirmed: HashMap<i32, u64>,
    /// When to check the ends again: a rebalance that takes away the partitions not yet at
    /// their end brings no event of its own.
    recheck: Pin<Box<tokio::time::Sleep>>,
    /// Stops the application when the consumer fails for good (for handlers' topics).
    fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
    /// The headers of every message without any (no allocation per message).
    no_headers: Arc<[(String, Vec<u8>)]>,
}

/// The decoded messages of a running consumer. Pausing `pause` pauses the consumer's
/// assignment (it keeps polling, so it stays in its group).
pub(crate) fn messages<K, V>(
    running: Arc<Running>,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    undecodable: Undecodable,
    pause: PauseHandle,
    stop_at_end: bool,
    fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
) -> impl Stream<Item = (Message<K, V>, Ack)> + Send + 'static
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    let state = State {
        _finish: Finish(Arc::clone(&running)),
        running,
        key_codec,
        value_codec,
        undecodable,
        changes: pause.changes(),
        pause,
        paused: false,
        stop_at_end,
        at_end: HashMap::new(),
        unconfirmed: HashMap::new(),
        recheck: Box::pin(tokio::time::sleep(RECHECK)),
        fatal,
        no_headers: Arc::from(Vec::new()),
    };
    futures::stream::unfold(state, |mut state| async move {
        let message = state.next().await?;
        Some((message, state))
    })
}

impl<K: 'static, V: 'static> State<K, V> {
    /// The next decodable message and its acknowledgement; `None` at the end (every assigned
    /// partition at its end, when asked to stop there), or after an undecodable message that
    /// stops the application.
    async fn next(&mut self) -> Option<(Message<K, V>, Ack)> {
        let running = Arc::clone(&self.running);
        loop {
            self.apply_pause();
            let generation = running.tracker.generation();
            let transactions = running.transactions.clone();
            let failed = async move {
                match transactions {
                    Some(transactions) => transactions.failure().await,
                    None => std::future::pending().await,
                }
            };
            let rechecking =
                self.stop_at_end && !(self.at_end.is_empty() && self.unconfirmed.is_empty());
            let received = tokio::select! {
                biased;
                error = failed => {
                    // Nothing read from now on could commit: the stream ends (the failed commit
                    // stops an application; a `Topic::stream()` just ends).
                    tracing::error!(topic = %running.topic, %error, "the transaction failed: no more messages");
                    running.status.clear();
                    return None;
                }
                _ = self.changes.changed() => continue,
                received = running.consumer.recv() => received,
                () = &mut self.recheck, if rechecking => {
                    let ended = self.confirm_ends();
                    let next = tokio::time::Instant::now() + RECHECK;
                    self.recheck.as_mut().reset(next);
                    if ended {
                        tracing::info!(topic = %self.running.topic, "every partition is at its end");
                        return None;
                    }
                    continue;
                }
            };
            match received {
                Ok(borrowed) => {
                    if self.stop_at_end {
                        self.at_end.remove(&borrowed.partition());
                        self.unconfirmed.remove(&borrowed.partition());
                    }
                    // Exactly-once: held back while a transaction commits.
                    let _passing = match &running.transactions {
                        Some(transactions) => Some(transactions.pass().await),
                        None => None,
                    };
                    match self.decode(&borrowed, generation).await {
                        Decoded::Message(message, ack) => return Some((message, ack)),
                        Decoded::Skipped => {}
                        Decoded::Stop => return None,
                    }
                }
                Err(KafkaError::PartitionEOF(partition)) => {
                    let seen = running.rebalances.stamp();
                    // librdkafka's report stands unless a position below the high watermark
                    // contradicts it.
                    if !client::blocking(|| running.at_end(partition, true)).unwrap_or(true) {
                        tracing::warn!(topic = %running.topic, partition, "the broker reported the end of a partition before its high watermark; reading on");
                        self.at_end.remove(&partition);
                        self.unconfirmed.insert(partition, seen);
                        continue;
                    }
                    self.unconfirmed.remove(&partition);
                    self.at_end.insert(partition, seen);
                    if self.stop_at_end && self.all_at_end() {
                        tracing::info!(topic = %self.running.topic, "every partition is at its end");
                        return None;
                    }
                }
                Err(error @ KafkaError::MessageConsumptionFatal(_)) => {
                    // The consumer cannot go on (fenced, say): it has no partitions any more,
                    // and the application stops rather than idle unhealthy.
                    let topic: &str = &self.running.topic;
                    tracing::error!(topic, %error, "the consumer failed");
                    self.running.status.clear();
                    if let Some(fatal) = &self.fatal {
                        fatal(Error::kafka(topic, error));
                    }
                    return None;
                }
                Err(error) => {
                    // The client's error callback has had it too, and logs it (without
                    // repeating it every time it comes).
                    tracing::debug!(topic = %self.running.topic, %error, "consumer error");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }

    /// Whether every assigned partition is at its end (seen there since it was assigned).
    fn all_at_end(&self) -> bool {
        let assigned = self.running.assignment();
        let rebalances = &self.running.rebalances;
        !assigned.is_empty()
            && assigned.iter().all(|&partition| {
                self.at_end
                    .get(&partition)
                    .is_some_and(|&seen| rebalances.unmoved_since(partition, seen))
            })
    }

    /// Checks again the partitions whose reported end came early, against the high
    /// watermarks of the last fetch (no request: nothing here waits on a broker); whether
    /// every partition is now at its end. A partition that moved meanwhile is dropped
    /// (librdkafka reports its end anew), and one whose position is unknown stays unconfirmed.
    fn confirm_ends(&mut self) -> bool {
        let running = &self.running;
        self.unconfirmed
            .retain(|&partition, &mut seen| running.rebalances.unmoved_since(partition, seen));
        let confirmed: Vec<(i32, u64)> = self
            .unconfirmed
            .iter()
            .map(|(&partition, &seen)| (partition, seen))
            .filter(|&(partition, _)| running.at_end(partition, false) == Some(true))
            .collect();
        for (partition, seen) in confirmed {
            self.unconfirmed.remove(&partition);
            self.at_end.insert(partition, seen);
        }
        self.all_at_end()
    }

    fn apply_pause(&mut self) {
        let paused = self.pause.is_paused();
        if paused == self.paused {
            return;
        }
        let consumer = &self.running.consumer;
        let result = consumer.assignment().and_then(|assigned| {
            if paused {
                consumer.pause(&assigned)
            } else {
                consumer.resume(&assigned)
            }
        });
        match result {
            Ok(()) => {
                tracing::info!(topic = %self.running.topic, paused, "consumer {}", if paused { "paused" } else { "resumed" });
                self.paused = paused;
            }
            Err(error) => {
                tracing::warn!(topic = %self.running.topic, %error, "cannot pause or resume")
            }
        }
    }

    /// Decodes a message taken from the consumer at `generation` (of the tracker's seeks).
    async fn decode(&mut self, borrowed: &BorrowedMessage<'_>, generation: u64) -> Decoded<K, V> {
        let (partition, offset) = (borrowed.partition(), borrowed.offset());
        let Some(ack) = self.running.tracker.received(partition, offset, generation) else {
            // Fetched before its partition was sought: not delivered.
            return Decoded::Skipped;
        };
        let key = borrowed.key().map(|k| self.key_codec.decode(k)).transpose();
        let value = self.value_codec.decode_nullable(borrowed.payload());
        let headers: Arc<[(String, Vec<u8>)]> = borrowed
            .headers()
            .map(|headers| header_pairs(headers).collect::<Arc<[_]>>())
            .unwrap_or_else(|| Arc::clone(&self.no_headers));
        match (key, value) {
            (Ok(key), Ok(value)) => {
                let message = Message {
                    key,
                    value,
                    topic: Arc::clone(&self.running.topic),
                    partition,
                    offset,
                    timestamp: borrowed.timestamp().to_millis(),
                    headers,
                    done: None,
                };
                Decoded::Message(message, ack)
            }
            (Err(error), _) | (_, Err(error)) => {
                self.undecodable(borrowed, &headers, error, ack).await
            }
        }
    }

    async fn undecodable(
        &self,
        borrowed: &BorrowedMessage<'_>,
        headers: &[(String, Vec<u8>)],
        error: BoxError,
        ack: Ack,
    ) -> Decoded<K, V> {
        let topic: &str = &self.running.topic;
        let (partition, offset) = (borrowed.partition(), borrowed.offset());
        let count = self.undecodable.count.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.undecodable.policy {
            OnUndecodable::Skip => {
                tracing::error!(topic, partition, offset, %error, count, "cannot decode a message; skipping it");
                ack.done();
                Decoded::Skipped
            }
            OnUndecodable::Stop(stop) => {
                tracing::error!(topic, partition, offset, %error, count, "cannot decode a message; stopping");
                ack.fail();
                stop(Error::Codec {
                    topic: format!("{topic} (partition {partition}, offset {offset})"),
                    source: error,
                });
                Decoded::Stop
            }
            OnUndecodable::DeadLetter(destination, stop) => {
                tracing::error!(topic, partition, offset, %error, count, destination, "cannot decode a message; forwarding it to the dead-letter topic");
                let record = Raw {
                    key: borrowed.key().map(<[u8]>::to_vec),
                    payload: borrowed.payload().map(<[u8]>::to_vec),
                    headers: headers.to_vec(),
                };
                let error = error.to_string();
                let reason = Reason {
                    handler: None,
                    error: &error,
                    partition,
                    offset,
                };
                match self
                    .undecodable
                    .letters
                    .send(destination, &record, &reason)
                    .await
                {
                    Ok(()) => {
                        ack.done();
                        Decoded::Skipped
                    }
                    Err(forwarding) => {
                        // Not forwarded: never committed past (read again after a restart), and
                        // the application stops rather than run on with the partition stuck.
                        tracing::error!(topic, partition, offset, error = %forwarding, "cannot forward the undecodable message to its dead-letter topic");
                        ack.fail();
                        match stop {
                            Some(stop) => {
                                stop(Error::Codec {
                                    topic: format!(
                                        "{topic} (partition {partition}, offset {offset})"
                                    ),
                                    source: format!(
                                        "{error}; forwarding it to `{destination}` failed: {forwarding}"
                                    )
                                    .into(),
                                });
                                Decoded::Stop
                            }
                            None => Decoded::Skipped,
                        }
                    }
                }
            }
        }
    }
}

/// What reading one record came to.
// Not boxed: one allocation per message would cost more than moving it.
#[allow(clippy::large_enum_variant)]
enum Decoded<K, V> {
    Message(Message<K, V>, Ack),
    Skipped,
    Stop,
}
