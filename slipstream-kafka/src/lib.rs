//! Kafka topics for [slipstream](https://docs.rs/slipstream): [`Topic`] as a handler source
//! and sink, and on its own; its settings ([`Conf`]) and codecs ([`Codec`]).
//!
//! Applications usually reach these through the `kafka` feature of the `slipstream` crate
//! (`slipstream::Topic`); depending on this crate directly gives the same types.

#![warn(missing_docs)]

mod admin;
mod changelog;
mod client;
mod codec;
mod conf;
mod consumer;
pub mod dead_letter;
mod embedded;
mod fatal;
mod link;
mod log;
mod message;
mod producer;
mod replica;
mod start;
mod topic;
mod tracker;
mod transaction;

pub use codec::{Codec, DefaultCodec, JsonCodec, Nullable, Raw, Utf8};
pub use conf::Conf;
pub use embedded::{EMBEDDED, embedded_address};
pub use message::{Message, Record};
pub use producer::TopicSink;
pub use start::StartAt;
pub use topic::{Topic, TopicStream};
