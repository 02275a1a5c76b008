//! `Message`: one record read from a topic.

use std::fmt;
use std::sync::Arc;

use super::tracker::Ack;

/// One record read from a [`Topic`](crate::Topic): what a topic source yields to handlers.
///
/// Cloning is cheap for small keys and values; every clone refers to the same record, and the
/// record counts as handled (for committing its offset) once the handlers reading it have
/// finished with it and all their sinks have taken their outputs.
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
    pub(crate) ack: Option<Ack>,
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
