//! What several components ask of the cluster's administration: a topic's partition count,
//! and creating topics (a changelog, the positions topic, `Topic::create`). Below every
//! component: it names none of them.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;

use slipstream_core::Error;

use super::config::{client_config, creation_error};
use super::connect::blocking;
use super::embedded::{self, EMBEDDED};
use super::log::Logging;
use crate::conf::Conf;

/// How long metadata and watermark requests wait.
pub(crate) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The partition count of `topic`, or `None` when it does not exist.
pub(crate) fn partition_count(
    client: &BaseConsumer<Logging>,
    topic: &str,
) -> Result<Option<i32>, Error> {
    let metadata = client
        .fetch_metadata(Some(topic), CALL_TIMEOUT)
        .map_err(|e| Error::kafka(topic, e))?;
    let Some(found) = metadata.topics().iter().find(|t| t.name() == topic) else {
        return Ok(None);
    };
    match found.error() {
        None => Ok(Some(found.partitions().len() as i32)),
        Some(code) if RDKafkaErrorCode::from(code) == RDKafkaErrorCode::UnknownTopicOrPartition => {
            Ok(None)
        }
        Some(code) => Err(Error::kafka(topic, KafkaError::MetadataFetch(code.into()))),
    }
}

/// Creates a compacted topic of `partitions` partitions (a changelog, the positions topic).
pub(crate) fn create(
    name: &str,
    partitions: i32,
    conf: &Conf,
    effective: &Conf,
) -> Result<(), Error> {
    blocking(|| futures::executor::block_on(create_topic(name, partitions, conf, effective, true)))
}

/// Creates topic `name` with `partitions` partitions and the broker's default replication
/// factor (1 where the broker does not take the default), compacted if `compacted`; one that
/// exists already is left as it is.
pub(crate) async fn create_topic(
    name: &str,
    partitions: i32,
    conf: &Conf,
    effective: &Conf,
    compacted: bool,
) -> Result<(), Error> {
    if effective.get("bootstrap.servers") == Some(EMBEDDED) {
        return embedded::create_topic(name, partitions).map_err(|e| Error::kafka(name, e));
    }
    let what = if compacted {
        "the compacted topic"
    } else {
        "the topic"
    };
    let admin: AdminClient<Logging> = client_config(conf)
        .create_with_context(Logging)
        .map_err(|e| creation_error(name, e))?;
    let options = AdminOptions::new().request_timeout(Some(CALL_TIMEOUT));
    for replication in [-1, 1] {
        let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(replication));
        if compacted {
            topic = topic.set("cleanup.policy", "compact");
        }
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(|e| Error::kafka(name, format!("cannot create {what}: {e}")))?;
        match results.into_iter().next() {
            Some(Ok(_)) | None if replication == 1 => {
                tracing::warn!(
                    topic = name,
                    partitions,
                    "created {what} with replication factor 1: the broker refused its default one (a broker older than 2.4, or fewer brokers up than `default.replication.factor`); losing its broker loses its data"
                );
                return Ok(());
            }
            Some(Ok(_)) | None => {
                tracing::info!(topic = name, partitions, "created {what}");
                return Ok(());
            }
            Some(Err((_, RDKafkaErrorCode::TopicAlreadyExists))) => return Ok(()),
            Some(Err((_, RDKafkaErrorCode::InvalidReplicationFactor))) if replication == -1 => {}
            Some(Err((_, code))) => {
                return Err(Error::kafka(name, format!("cannot create {what}: {code}")));
            }
        }
    }
    Ok(())
}
