//! Creating librdkafka clients from a [`Conf`]: logging through `tracing`, configuration errors
//! that name the key and the topic, the embedded broker.

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::statistics::Statistics;
use std::sync::Arc;
use std::time::{Duration, Instant};

use slipstream_core::Error;

use crate::conf::Conf;
use crate::embedded;
use crate::link::{self, Link};
pub(crate) use crate::log::{Logging, log};

/// The settings a client of `topic` uses: its effective conf, with the embedded broker started
/// when asked for, and `bootstrap.servers` required.
pub(crate) fn resolve(topic: &str, effective: &Conf) -> Result<Conf, Error> {
    crate::conf::check_environment(topic)?;
    let mut conf = effective.clone();
    conf.require_servers(topic)?;
    if conf.get("bootstrap.servers") == Some(embedded::EMBEDDED) {
        let servers = embedded::servers().map_err(|message| Error::Conf {
            topic: topic.to_owned(),
            key: "bootstrap.servers".to_owned(),
            message: format!("cannot start the embedded broker: {message}"),
        })?;
        conf.insert("bootstrap.servers", servers);
    }
    Ok(conf)
}

/// Consumer group timings for the embedded broker, each unless set: its rebalances wait out the
/// session timeout (librdkafka's default, 45 s), so a group restarted in the same process would
/// wait that long for its partitions.
pub(crate) const EMBEDDED_GROUP_TIMINGS: [(&str, &str); 2] = [
    ("session.timeout.ms", "6000"),
    ("heartbeat.interval.ms", "500"),
];

/// The settings a consumer of `topic` uses: [`resolve`]'s, with development-friendly group
/// timings on the embedded broker.
pub(crate) fn resolve_consumer(topic: &str, effective: &Conf) -> Result<Conf, Error> {
    let mut conf = resolve(topic, effective)?;
    if effective.get("bootstrap.servers") == Some(embedded::EMBEDDED) {
        for (key, value) in EMBEDDED_GROUP_TIMINGS {
            if conf.get(key).is_none() {
                conf.insert(key, value);
            }
        }
    }
    Ok(conf)
}

/// Settings only producers take: a topic's conf serves its producers too, and a consumer
/// would warn about each.
const PRODUCER_SETTINGS: [&str; 17] = [
    "transactional.id",
    "transaction.timeout.ms",
    "acks",
    "request.required.acks",
    "enable.idempotence",
    "linger.ms",
    "queue.buffering.max.ms",
    "queue.buffering.max.messages",
    "queue.buffering.max.kbytes",
    "batch.size",
    "batch.num.messages",
    "compression.type",
    "compression.codec",
    "message.timeout.ms",
    "delivery.timeout.ms",
    "retries",
    "partitioner",
];

/// librdkafka's configuration of a consumer for `conf`: without the producers' settings.
pub(crate) fn consumer_config(conf: &Conf) -> ClientConfig {
    let mut config = client_config(conf);
    for key in PRODUCER_SETTINGS {
        config.remove(key);
    }
    config
}

/// librdkafka's configuration for `conf`.
pub(crate) fn client_config(conf: &Conf) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in conf.iter() {
        if crate::conf::OWN_SETTINGS.contains(&key) {
            continue;
        }
        config.set(key, value);
    }
    config
}

/// Maps an error creating a client to ours: configuration errors name the key.
pub(crate) fn creation_error(topic: &str, error: KafkaError) -> Error {
    match error {
        KafkaError::ClientConfig(_, message, key, _) => Error::Conf {
            topic: topic.to_owned(),
            key,
            message,
        },
        other => Error::kafka(topic, other),
    }
}

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

/// The settings of a consumer group's members.
const GROUP_SETTINGS: [&str; 9] = [
    "group.id",
    "group.instance.id",
    "group.protocol",
    "group.remote.assignor",
    "partition.assignment.strategy",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "coordinator.query.interval.ms",
];

/// Removes the settings of a group's members from `conf` (for a consumer that reads outside
/// the topic's group, as a restoration does).
pub(crate) fn without_group_settings(conf: &mut Conf) {
    for key in GROUP_SETTINGS {
        conf.remove(key);
    }
}

/// Removes the settings of consumers from `conf` (a topic's conf serves its producers too,
/// which would warn about each).
pub(crate) fn without_consumer_settings(conf: &mut Conf) {
    without_group_settings(conf);
    for key in [
        "auto.offset.reset",
        "auto.commit.interval.ms",
        "enable.auto.commit",
        "enable.auto.offset.store",
        "enable.partition.eof",
        "isolation.level",
        "fetch.wait.max.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.message.max.bytes",
        "fetch.error.backoff.ms",
        "queued.min.messages",
        "queued.max.messages.kbytes",
        "check.crcs",
    ] {
        conf.remove(key);
    }
}
