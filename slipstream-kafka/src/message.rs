//! `Message`: one record read from a topic.

use std::fmt;
use std::sync::Arc;

use rdkafka::message::Headers;
use slipstream_core::Ack;

/// A record's headers as name and value pairs (a header without a value has an empty one).
pub(crate) fn header_pairs<H: Headers>(
    headers: &H,
) -> impl Iterator<Item = (String, Vec<u8>)> + '_ {
    headers.iter().map(|h| {
        (
            h.key.to_owned(),
            h.value.map(<[u8]>::to_vec).unwrap_or_default(),
        )
    })
}

/// One record read from a [`Topic`](crate::Topic): what a topic source yields to handlers.
///
/// It is plain data: cloning it (cheap for small keys and values) or keeping it does not hold
/// its offset back. Given to handlers, the record counts as handled (for committing its offset)
/// once every handler it reached — directly or through proxies downstream — has finished with
/// it and all their sinks have taken their outputs. Read with
/// [`Topic::stream`](crate::Topic::stream), it counts as handled once it and its clones are
/// dropped.
///
/// It displays as `key value` (or `value` when there is no key), like the seed's
/// `print(msg.key, msg.value)`.
#[derive(Clone)]
pub struct Message<K, V> {
    /// The key, if the record has one.
    pub key: Option<K>,
    /// The value.
    pub value: V,
    /// The topic it was read from.
    pub topic: Arc<str>,
    /// Its partition.
    pub partition: i32,
    /// Its offset in the partition.
    pub offset: i64,
    /// Its timestamp (milliseconds since the Unix epoch), if it has one.
    pub timestamp: Option<i64>,
    /// Its headers, in order (a header without a value has an empty one).
    pub headers: Arc<[(String, Vec<u8>)]>,
    /// Read with `Topic::stream`: done when the last clone is dropped.
    pub(crate) done: Option<Arc<DoneOnDrop>>,
}

/// An acknowledgement ended as done when dropped.
pub(crate) struct DoneOnDrop(pub(crate) Option<Ack>);

impl Drop for DoneOnDrop {
    fn drop(&mut self) {
        if let Some(ack) = self.0.take() {
            ack.done();
        }
    }
}

impl<K, V> Message<K, V> {
    /// The value of the first header called `name`.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_slice())
    }
}

impl<K: fmt::Display, V: fmt::Display> fmt::Display for Message<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key} {}", self.value),
            None => write!(f, "{}", self.value),
        }
    }
}

impl<K: fmt::Debug, V: fmt::Debug> fmt::Debug for Message<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Message")
            .field("key", &self.key)
            .field("value", &self.value)
            .field("topic", &self.topic)
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .field("timestamp", &self.timestamp)
            .field("headers", &self.headers)
            .finish()
    }
}

/// A record to produce, with what a `(key, value)` pair cannot say: its partition, timestamp
/// and headers. A [`Topic`](crate::Topic) sink takes it, and so does
/// [`Topic::send_record`](crate::Topic::send_record). Produce a tombstone (a null value) with a
/// `V = Option<T>` topic and a `None` value.
///
/// ```no_run
/// use slipstream::{Record, Topic};
///
/// # async fn demo() -> Result<(), slipstream::Error> {
/// let topic: Topic = Topic::new("emoji");
/// let record = Record::new("🏆".to_owned())
///     .key("trophy".to_owned())
///     .partition(2)
///     .timestamp(1_700_000_000_000)
///     .header("source", "demo");
/// topic.send_record(record).await?;
///
/// let table: Topic<String, Option<String>> = Topic::new("emoji-table");
/// table.send_record(Record::new(None).key("trophy".to_owned())).await?; // deletes "trophy"
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record<K, V> {
    /// The key, if any.
    pub key: Option<K>,
    /// The value.
    pub value: V,
    /// The partition; chosen by the producer's partitioner (from the key) when `None`.
    pub partition: Option<i32>,
    /// The timestamp (milliseconds since the Unix epoch); the time of producing when `None`.
    pub timestamp: Option<i64>,
    /// The headers, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl<K, V> Record<K, V> {
    /// A record of `value`, without a key.
    pub fn new(value: V) -> Self {
        Record {
            key: None,
            value,
            partition: None,
            timestamp: None,
            headers: Vec::new(),
        }
    }

    /// With this key.
    pub fn key(mut self, key: K) -> Self {
        self.key = Some(key);
        self
    }

    /// To this partition.
    pub fn partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// With this timestamp (milliseconds since the Unix epoch).
    pub fn timestamp(mut self, millis: i64) -> Self {
        self.timestamp = Some(millis);
        self
    }

    /// With one more header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}
