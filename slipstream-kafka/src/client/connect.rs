//! Connecting: the start-up probe that fails a start when no broker answers, the client context
//! that feeds a [`Link`], statistics for health, and running blocking client calls from a task.
//! Layer: clients (names no component above it).

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::statistics::Statistics;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipstream_core::Error;

use super::link::{self, Link};
use crate::conf::Conf;

/// How long a client's start waits for a broker to answer, unless its topic says.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long start-up's first metadata request waits (each next one twice as long), between
/// checks for a failed authentication or TLS handshake.
const CONNECT_SLICE: Duration = Duration::from_millis(500);
/// How long start-up serves a client's logs and errors after each unanswered request.
pub(crate) const PROBE_POLL: Duration = Duration::from_millis(50);

/// What start-up asks a client before the application counts as started: a broker must
/// answer, or the start fails (an unreachable broker is an error then, not a client retrying
/// in the background forever).
pub(crate) struct Probe<'a> {
    /// What errors name.
    pub(crate) topic: &'a str,
    /// Ask for `topic`'s metadata (a consumer's probe, which creates no topic); for no topic's
    /// otherwise (a producer's asking would create it where the broker creates topics on first
    /// use).
    pub(crate) name_it: bool,
    pub(crate) servers: &'a str,
    /// The client's link, which its callbacks report to.
    pub(crate) link: &'a Link,
    pub(crate) timeout: Duration,
}

impl Probe<'_> {
    /// Asks `client` for metadata until a broker answers, failing past the timeout with the
    /// last error librdkafka reported, or at once when authentication or the TLS handshake
    /// failed (retrying cannot help). `serve` runs after each unanswered request: it lets the
    /// client's callbacks report to the link. It blocks (outside the runtime's workers).
    pub(crate) fn connect<C: ClientContext>(
        &self,
        client: &rdkafka::client::Client<C>,
        serve: impl FnMut(),
    ) -> Result<Metadata, Error> {
        blocking(|| self.connect_here(client, serve))
    }

    fn connect_here<C: ClientContext>(
        &self,
        client: &rdkafka::client::Client<C>,
        mut serve: impl FnMut(),
    ) -> Result<Metadata, Error> {
        let Probe {
            topic,
            name_it,
            servers,
            link,
            timeout,
        } = *self;
        let deadline = Instant::now() + timeout;
        // Each request waits twice as long as the one before (a slow broker is answered in time).
        let mut slice = CONNECT_SLICE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let only = name_it.then_some(topic);
            let error = match client.fetch_metadata(only, left.min(slice)) {
                Ok(metadata) => return Ok(metadata),
                Err(error) => error,
            };
            slice *= 2;
            serve();
            if let Some((what, failure)) = link.refusal() {
                return Err(Error::kafka(
                    topic,
                    format!("{what} (bootstrap.servers = {servers}): {failure}"),
                ));
            }
            if Instant::now() >= deadline {
                let last = link
                    .last_error()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default();
                return Err(Error::kafka(
                    topic,
                    format!(
                        "no broker answered within {timeout:?} (bootstrap.servers = {servers}): {error}{last}"
                    ),
                ));
            }
        }
    }
}

/// A client context that logs and keeps its [`Link`] informed (a topic's producer).
#[derive(Clone)]
pub(crate) struct Linked(pub(crate) Arc<Link>);

impl ClientContext for Linked {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        self.0.log(level, fac, log_message);
    }

    fn error(&self, error: KafkaError, reason: &str) {
        self.0.error(&error, reason);
    }

    fn stats(&self, statistics: Statistics) {
        self.0.statistics(&statistics);
    }
}

impl rdkafka::consumer::ConsumerContext for Linked {}

/// Asks librdkafka for statistics every second unless the user set their interval: they say
/// whether a broker is up, for health.
pub(crate) fn ask_statistics(conf: &mut Conf) {
    if conf.get("statistics.interval.ms").is_none() {
        conf.insert("statistics.interval.ms", link::STATISTICS_INTERVAL_MS);
    }
}

/// Runs `work`, which blocks (a restoration, waiting for handlers), from inside a task: on a
/// multi-threaded runtime the worker's other tasks move to another thread meanwhile (a task the
/// blocked one just woke would otherwise wait for it, and it may be the one it waits for).
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}
