//! The consumers whose positions the transactions carry, as the transactions see them (a trait
//! the consumer implements: this layer names no consumer). Layer: exactly-once (below
//! producing, consuming and state).

use std::time::Instant;

/// A consumer whose positions the transactions carry: implemented by the consumer (above this
/// module, which names no consumer).
pub(crate) trait Member: Send + Sync {
    /// The topic it reads.
    fn topic(&self) -> &str;
    /// The consumer group (empty without one).
    fn group_id(&self) -> &str;
    /// Whether the application is stopping on a failure, or a message failed for good: the
    /// open transaction may hold part of its work (it then aborts).
    fn has_failed(&self) -> bool;
    /// Waits until no message is in flight, at most until `deadline`; whether none is.
    fn settle(&self, deadline: Instant) -> bool;
    /// The positions that advanced since last taken (every position when `all`), for the next
    /// transaction.
    fn take_positions(&self, all: bool) -> Vec<(i32, i64)>;
    /// A transaction committed `positions`.
    fn note_committed(&self, positions: &[(i32, i64)]);
    /// The group membership a transaction's positions are committed for.
    fn group_metadata(&self) -> Option<rdkafka::consumer::ConsumerGroupMetadata>;
}
