//! Producing: the producer of one topic, the topic as a handler sink, and dead-letter topics.
//! Above the clients and exactly-once; below consuming (which sends dead letters), state and
//! the topic, none of which it names.

pub mod dead_letter;
mod producer;
mod sink;

pub(crate) use producer::{Placement, Producer};
pub(crate) use sink::Refusals;
pub use sink::TopicSink;
