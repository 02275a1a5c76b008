//! The bottom layer: librdkafka clients. Settings resolved for a client, the start-up probe,
//! the link that tells health whether a broker answers, logging, the embedded broker, and the
//! cluster administration several components share (topic creation, partition counts). Names
//! no component above it (transactions, producing, consuming, state, the topic).

pub(crate) mod admin;
mod config;
mod connect;
mod embedded;
mod link;
mod log;

pub(crate) use config::{
    client_config, consumer_config, creation_error, resolve, resolve_consumer,
    without_consumer_settings, without_group_settings,
};
pub(crate) use connect::{CONNECT_TIMEOUT, Linked, PROBE_POLL, Probe, ask_statistics, blocking};
pub use embedded::{EMBEDDED, embedded_address};
pub(crate) use link::Link;
pub(crate) use log::{Logging, log};
