//! Committing offsets to the group: the lists librdkafka takes, and a commit that waits for the
//! broker's answer a bounded time. Layer: consuming.

use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::{Offset, TopicPartitionList};

/// How long one attempt at the final commit waits for the broker's answer.
pub(super) const FINAL_COMMIT_ATTEMPT: Duration = Duration::from_secs(3);

/// How long blocking consumer calls may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The partitions of `topic` in `list`.
pub(super) fn partitions_of(list: &TopicPartitionList, topic: &str) -> Vec<i32> {
    list.elements_for_topic(topic)
        .iter()
        .map(|e| e.partition())
        .collect()
}

/// The partitions of `topic` in `list` that have an offset, with it.
pub(super) fn positions<'a>(
    list: &'a TopicPartitionList,
    topic: &'a str,
) -> impl Iterator<Item = (i32, i64)> + 'a {
    list.elements_for_topic(topic)
        .into_iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(offset) => Some((e.partition(), offset)),
            _ => None,
        })
}

/// Commits `list` and waits for the broker's answer, at most `wait`. (librdkafka's
/// synchronous commit waits for ever: a commit left unanswered, by a group coordinator lost as
/// the consumer closes, say, would block its thread, and a runtime shutting down with it.)
pub(super) fn commit_within<C: ClientContext>(
    client: &rdkafka::client::Client<C>,
    list: &TopicPartitionList,
    wait: Duration,
) -> Result<(), KafkaError> {
    use rdkafka::bindings as rd;
    use rdkafka::types::RDKafkaErrorCode;
    let rk = client.native_ptr();
    let timeout = i32::try_from(wait.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: `rk` is a live consumer handle; librdkafka copies `list` before returning; the
    // queue is created, polled and destroyed here, and the event taken from it destroyed once
    // read (an answer arriving after the queue is gone is discarded by librdkafka).
    unsafe {
        let queue = rd::rd_kafka_queue_new(rk);
        let scheduled =
            rd::rd_kafka_commit_queue(rk, list.ptr(), queue, None, std::ptr::null_mut());
        let result = if scheduled != rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
            Err(KafkaError::ConsumerCommit(scheduled.into()))
        } else {
            let event = rd::rd_kafka_queue_poll(queue, timeout);
            if event.is_null() {
                Err(KafkaError::ConsumerCommit(
                    RDKafkaErrorCode::OperationTimedOut,
                ))
            } else {
                let error = rd::rd_kafka_event_error(event);
                rd::rd_kafka_event_destroy(event);
                match error {
                    rd::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR => Ok(()),
                    error => Err(KafkaError::ConsumerCommit(error.into())),
                }
            }
        };
        rd::rd_kafka_queue_destroy(queue);
        result
    }
}

pub(super) fn offsets(topic: &str, commits: &[(i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::with_capacity(commits.len());
    for &(partition, offset) in commits {
        // Only fails for an invalid offset, which the tracker never produces.
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(offset));
    }
    list
}
