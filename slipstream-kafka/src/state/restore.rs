//! Restoring a changelog's partitions into their state, in a transaction of its own under
//! exactly-once. Layer: state.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message as _;
use rdkafka::{Offset, TopicPartitionList};

use slipstream_core::Error;
use slipstream_core::partition::{Change, PartitionState};

use super::progress::Progress;
use super::replica::BATCH;
use crate::client;
use crate::client::admin::CALL_TIMEOUT;
use crate::conf::Conf;
use crate::exactly_once::Transactions;
use std::sync::Arc;

/// One restoration of some partitions of a changelog.
pub(super) struct Restore<'a> {
    pub(super) name: &'a str,
    /// Settings of the consumers that restore it.
    pub(super) restore_conf: &'a Conf,
    /// Exactly-once: the instance's transactions.
    pub(super) transactions: Option<&'a Arc<Transactions>>,
    pub(super) state: &'a dyn PartitionState,
    pub(super) progress: &'a Progress,
}

/// A partition being restored.
struct Pending {
    from: i64,
    high: i64,
    /// The high watermark when the restoration began.
    end: i64,
    /// Whether the end-of-partition event came.
    eof: bool,
    next: i64,
    batch: Vec<Change>,
}

impl Restore<'_> {
    /// The changelog partition's high watermark, open and aborted transactions included (the
    /// restoring consumer, `read_committed`, sees the last stable offset instead), if known.
    fn high_watermark(&self, partition: i32) -> Result<Option<i64>, Error> {
        let name = &self.name;
        let mut conf = self.restore_conf.clone();
        conf.insert("isolation.level", "read_uncommitted");
        let consumer: BaseConsumer<client::Logging> = client::consumer_config(&conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(name, e))?;
        Ok(consumer
            .fetch_watermarks(name, partition, CALL_TIMEOUT)
            .ok()
            .map(|(_, high)| high))
    }

    pub(super) fn run(&self, partitions: &[i32]) -> Result<(), Error> {
        let name = &self.name;
        let consumer: BaseConsumer<client::Logging> = client::consumer_config(self.restore_conf)
            .create_with_context(client::Logging)
            .map_err(|e| client::creation_error(name, e))?;
        let mut pending = HashMap::new();
        let mut list = TopicPartitionList::new();
        let transactional = self.transactions.is_some();
        for &partition in partitions {
            // Where the local copy stands: a restart with its directory reads only the tail. The
            // end is the end-of-partition event (some brokers' watermarks are not to be trusted:
            // the high watermark serves the progress report only).
            let mut position = self.state.position(partition)?;
            // The restoring consumer reads `read_committed`: its watermark is the last stable
            // offset, which a transaction still open (a killed instance's) holds back.
            let watermark = consumer.fetch_watermarks(name, partition, CALL_TIMEOUT);
            // Exactly-once: records other instances committed after such a transaction lie past
            // the last stable offset; the restoration reads to the high watermark, past that
            // transaction once the broker has ended it. (Stopping at the last stable offset, an
            // instance restored the state of before that transaction, and counted again.)
            let full = if transactional {
                let full = self.high_watermark(partition)?;
                if full.is_none() {
                    tracing::warn!(changelog = %name, partition, "cannot read the changelog's high watermark: restoring to its last stable offset");
                }
                full
            } else {
                None
            };
            if let (Some(at), Ok((_, stable))) = (position, &watermark)
                && at > *stable
                && let Some(high) = match full {
                    Some(full) => Some(full),
                    None => self.high_watermark(partition)?,
                }
                && at > high
            {
                // The copy applied records this changelog never held: it followed another one
                // (renamed, or deleted and created again). It is not to be trusted.
                tracing::warn!(changelog = %name, partition, position = at, high, "the local copy is ahead of its changelog (it followed another one): it is dropped and restored from the changelog's start");
                self.state.reset(partition)?;
                position = None;
            }
            let from = position.unwrap_or(0);
            let stable = watermark.map_or(from, |(_, high)| high.max(from));
            let high = full.map_or(stable, |full| full.max(stable));
            tracing::info!(changelog = %name, partition, from, high, "restoring");
            self.progress.set(name, partition, 0, high - from);
            let offset = position.map_or(Offset::Beginning, Offset::Offset);
            let _ = list.add_partition_offset(name, partition, offset);
            pending.insert(
                partition,
                Pending {
                    from,
                    high,
                    end: high,
                    eof: false,
                    next: from,
                    batch: Vec::new(),
                },
            );
        }
        if pending.is_empty() {
            return Ok(());
        }
        consumer.assign(&list).map_err(|e| Error::kafka(name, e))?;
        // Exactly-once: waiting for a killed instance's open transaction to end reads nothing.
        let stall = match &self.transactions {
            Some(transactions) => {
                (CALL_TIMEOUT * 3).max(transactions.open_for_at_most() + CALL_TIMEOUT)
            }
            None => CALL_TIMEOUT * 3,
        };
        let mut heard = Instant::now();
        // Exactly-once: the end-of-partition event comes at the last stable offset, which a
        // transaction still open (a killed instance's) holds back: the restoration goes on to
        // the high watermark, past that transaction once it has ended.
        while !pending.is_empty() {
            if transactional {
                self.finish_transactional(&consumer, &mut pending)?;
                if pending.is_empty() {
                    break;
                }
            }
            let Some(polled) = consumer.poll(Duration::from_millis(200)) else {
                if heard.elapsed() > stall {
                    return Err(Error::kafka(
                        name,
                        format!("restoring stalled: nothing read for {stall:?}"),
                    ));
                }
                continue;
            };
            heard = Instant::now();
            let (partition, end) = match polled {
                Ok(message) => {
                    let partition = message.partition();
                    let Some(p) = pending.get_mut(&partition) else {
                        continue;
                    };
                    p.batch.push(Change {
                        key: message.key().unwrap_or_default().to_vec(),
                        value: message.payload().map(<[u8]>::to_vec),
                    });
                    p.next = message.offset() + 1;
                    p.high = p.high.max(p.next);
                    if p.batch.len() >= BATCH {
                        self.apply(partition, p)?;
                    }
                    (partition, false)
                }
                Err(KafkaError::PartitionEOF(partition)) => (partition, true),
                Err(error) => return Err(Error::kafka(name, error)),
            };
            if end && transactional {
                if let Some(p) = pending.get_mut(&partition) {
                    p.eof = true;
                }
            } else if end && let Some(mut p) = pending.remove(&partition) {
                self.apply(partition, &mut p)?;
                tracing::info!(changelog = %name, partition, from = p.from, to = p.next, "restored");
            }
        }
        Ok(())
    }

    /// Finishes the partitions at their end-of-partition event and at the high watermark seen
    /// when the restoration began.
    fn finish_transactional(
        &self,
        consumer: &BaseConsumer<client::Logging>,
        pending: &mut HashMap<i32, Pending>,
    ) -> Result<(), Error> {
        let name = &self.name;
        let positions = consumer.position().map_err(|e| Error::kafka(name, e))?;
        let done: Vec<i32> = pending
            .iter()
            .filter(|(partition, p)| {
                let at = positions
                    .find_partition(name, **partition)
                    .and_then(|e| match e.offset() {
                        Offset::Offset(at) => Some(at),
                        _ => None,
                    })
                    .unwrap_or(p.next);
                p.eof && at >= p.end
            })
            .map(|(partition, _)| *partition)
            .collect();
        for partition in done {
            if let Some(mut p) = pending.remove(&partition) {
                self.apply(partition, &mut p)?;
                tracing::info!(changelog = %name, partition, from = p.from, to = p.next, "restored");
            }
        }
        Ok(())
    }

    fn apply(&self, partition: i32, p: &mut Pending) -> Result<(), Error> {
        if p.batch.is_empty() {
            return Ok(());
        }
        self.state.apply(partition, &p.batch, p.next)?;
        let name = &self.name;
        self.progress.applied(name, partition, p.batch.len() as u64);
        self.progress
            .set(name, partition, p.next - p.from, p.high - p.from);
        p.batch.clear();
        Ok(())
    }
}
