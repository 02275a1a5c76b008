//! Client settings: a component's [`Conf`] resolved for librdkafka (the embedded broker's
//! address, producer-only and group-only keys left out), and configuration errors that name the
//! key and the topic. Layer: clients (names no component above it).

use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;

use slipstream_core::Error;

use super::embedded;
use crate::conf::Conf;

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

#[cfg(test)]
mod tests {
    use super::client_config;
    use crate::conf::{COMMIT_INTERVAL, Conf, GUARANTEE};

    #[test]
    fn slipstreams_own_settings_are_not_given_to_librdkafka() {
        let conf = Conf::new().with([(GUARANTEE, "exactly_once"), (COMMIT_INTERVAL, "100")]);
        // librdkafka would refuse both ("No such configuration property").
        let created: Result<rdkafka::producer::BaseProducer, _> = client_config(&conf).create();
        assert!(created.is_ok(), "{:?}", created.err());
    }
}
