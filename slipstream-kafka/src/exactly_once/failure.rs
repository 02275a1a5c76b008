//! How a transaction fails: aborted when it can be, fenced, refused by the broker or by the
//! producer, outliving its timeout; after a failure nothing commits. Layer: exactly-once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use rdkafka::error::KafkaError;
use rdkafka::producer::Producer as _;
use rdkafka::types::RDKafkaErrorCode;

use slipstream_core::__component::lock;
use slipstream_core::Error;

use super::limits::CALL_TIMEOUT;
use super::recorded::unsupported;
use super::transactions::Transactions;

impl Transactions {
    /// A transaction failed: aborted when it can be, and nothing commits from then on.
    pub(super) fn failed(&self, error: KafkaError) -> Error {
        let fenced = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        );
        if fenced {
            return self.fenced(&format!("the broker fenced its producer: {error}"));
        }
        let left_behind = matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::IllegalGeneration
                    | RDKafkaErrorCode::UnknownMemberId
                    | RDKafkaErrorCode::FencedInstanceId
            )
        );
        if left_behind {
            return self.abort(format!(
                "the consumer group moved on without this instance (it stalled past its session or poll timeout, and its partitions went to other members), so the group refused this transaction's positions: {error}"
            ));
        }
        if matches!(
            error.rdkafka_error_code(),
            Some(RDKafkaErrorCode::UnsupportedFeature | RDKafkaErrorCode::UnsupportedVersion)
        ) {
            return self.give_up(unsupported(&self.name, error).to_string());
        }
        let fatal = matches!(&error, KafkaError::Transaction(e) if e.is_fatal());
        if fatal {
            return self.give_up(format!("the transaction failed for good: {error}"));
        }
        self.abort(format!("the transaction failed: {error}"))
    }

    /// The broker ended this instance's transactions: it stops.
    pub(super) fn fenced(&self, detail: &str) -> Error {
        self.give_up(format!(
            "this instance was fenced: the broker ended its transaction, because another instance started with the same `transactional.id` (`{}`), or because the transaction outlived `transaction.timeout.ms` (the instance stalled that long, and the group may have given its partitions to others); it stops rather than write duplicates ({detail})",
            self.id
        ))
    }

    /// The error for a record the transactional producer did not write (`topic`'s). When the
    /// broker has ended this producer's transactions, that is what it says (and every later
    /// commit fails with it); after an earlier failure, that one.
    pub(crate) fn refused(&self, topic: &str, error: KafkaError) -> Error {
        if let Some(failure) = lock(&self.failure).clone() {
            return self.error(failure);
        }
        let fencing = |code: RDKafkaErrorCode| {
            matches!(
                code,
                RDKafkaErrorCode::ProducerFenced
                    | RDKafkaErrorCode::InvalidProducerEpoch
                    | RDKafkaErrorCode::Fenced
            )
        };
        match self.producer.client().fatal_error() {
            Some((code, reason)) if fencing(code) => {
                return self.fenced(&format!("a record for `{topic}` was refused: {reason}"));
            }
            Some((_, reason)) => {
                return self.give_up(format!(
                    "the transactional producer failed for good: {reason}"
                ));
            }
            None => {}
        }
        match error.rdkafka_error_code() {
            Some(code) if fencing(code) => {
                self.fenced(&format!("a record for `{topic}` was refused: {error}"))
            }
            // The transaction takes no more records, and no failure of ours ended it: the
            // broker did (it outlived `transaction.timeout.ms`, an instance stalled that long).
            Some(RDKafkaErrorCode::State | RDKafkaErrorCode::PurgeQueue) => self.give_up(format!(
                "this instance's transaction was ended by the broker, so it stops rather than write duplicates (it outlived `transaction.timeout.ms`: the instance stalled that long, and the group may have given its partitions to others): a record for `{topic}` was refused: {error}"
            )),
            // A stalled instance's records time out, or are refused, as it wakes.
            _ if self.outlived().is_some() => {
                self.give_up(format!("a record for `{topic}` was refused: {error}"))
            }
            _ => Error::kafka(topic, error),
        }
    }

    /// Whether the transactions have failed for good (every later commit fails).
    pub(crate) fn has_failed(&self) -> bool {
        lock(&self.failure).is_some()
    }

    /// The error for a record of the open transaction the broker did not take (its delivery
    /// failed). librdkafka then lets the transaction only abort, so it fails whatever the
    /// handler's policy, every later commit fails with it, and the next one aborts it.
    pub(crate) fn undelivered(&self, topic: &str, error: KafkaError) -> Error {
        let too_large = error.rdkafka_error_code() == Some(RDKafkaErrorCode::MessageSizeTooLarge);
        let refused = self.refused(topic, error);
        if self.has_failed() {
            return refused;
        }
        let advice = if too_large {
            ". A record the producer refuses itself, as one over its `message.max.bytes` (set it no larger than the topic's `max.message.bytes`), stays out of the transaction, and the policy applies"
        } else {
            ""
        };
        // Owed before the failure shows: the next commit, which sees it, pays it.
        self.abort_owed.store(true, Ordering::SeqCst);
        self.give_up(format!(
            "a record for `{topic}` was not delivered, and a transaction holding an undelivered record can only abort, whatever the handler's policy: the application stops, and a restart meets the record again ({refused}){advice}"
        ))
    }

    /// How long the open transaction has been open, when that is past `transaction.timeout.ms`
    /// (the broker has ended it).
    fn outlived(&self) -> Option<Duration> {
        let open = lock(&self.opened).elapsed();
        (open > self.timeout).then_some(open)
    }

    /// Aborts the open transaction: nothing of it is visible to `read_committed` readers, and
    /// the local state it changed is restored from the changelogs at the next start.
    pub(super) fn abort(&self, why: String) -> Error {
        // Recorded first: the records the abort purges are refused with this reason.
        let error = self.give_up(format!(
            "{why}; the transaction was aborted, and a restart resumes from the last one committed"
        ));
        if let Err(error) = self.producer.abort_transaction(CALL_TIMEOUT) {
            tracing::error!(%error, "cannot abort the transaction (the broker aborts it when it times out)");
        }
        error
    }

    /// Records `why` as the failure every later commit reports, and marks the changelog
    /// partitions the open transaction wrote as not to be trusted locally.
    fn give_up(&self, why: String) -> Error {
        let why = match self.outlived() {
            Some(open) => format!(
                "this instance's transaction was ended by the broker: it was open {open:.1?}, past `transaction.timeout.ms` ({:?}), because the instance stalled that long (and the group may have given its partitions to others); it stops rather than write duplicates ({why})",
                self.timeout
            ),
            None => why,
        };
        for (_, (state, partitions)) in lock(&self.written).drain() {
            for partition in partitions {
                state.refused(partition);
            }
        }
        tracing::error!(transactional_id = %self.id, "{why}");
        let why = lock(&self.failure).get_or_insert(why).clone();
        // Wakes whoever waits for a commit: none is coming.
        self.committed.send_modify(|_| {});
        self.error(why)
    }

    pub(super) fn error(&self, message: String) -> Error {
        Error::kafka(&self.name, message)
    }
}
