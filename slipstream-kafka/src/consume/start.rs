//! Where a topic's consumer starts reading (below the consumer and the topic, which both use
//! it).

use rdkafka::Offset;

/// Where a topic's consumer starts reading.
///
/// Without a `group.id`, the consumer is assigned every partition at start, from there. With
/// one, it stays in its group: the group assigns it partitions, and each starts from this
/// position until the consumer has committed an offset of it; from then on (when a rebalance
/// gives it back, say) it resumes from the committed offset. So instances of one group started
/// with `Beginning` share the partitions instead of each reading everything; a partition that
/// moves to another instance after being read is read there from the start again
/// (at-least-once).
///
/// ```
/// use slipstream_kafka::{StartAt, Topic};
///
/// let backfill: Topic = Topic::new("orders")
///     .conf([("group.id", "backfill")])
///     .start(StartAt::Beginning);
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StartAt {
    /// Where the consumer group left off; partitions without a committed offset start where
    /// `auto.offset.reset` says (librdkafka's default: the end). The default.
    #[default]
    Committed,
    /// The beginning of every partition.
    Beginning,
    /// The end of every partition (only new messages).
    End,
    /// These offsets, as `(partition, offset)`; other partitions start as with `Committed`.
    Offsets(Vec<(i32, i64)>),
}

/// Where `start` says to read `partition` from.
pub(crate) fn start_offset(start: &StartAt, partition: i32) -> Offset {
    match start {
        StartAt::Committed => Offset::Stored,
        StartAt::Beginning => Offset::Beginning,
        StartAt::End => Offset::End,
        StartAt::Offsets(offsets) => offsets
            .iter()
            .find(|(p, _)| *p == partition)
            .map_or(Offset::Stored, |(_, o)| Offset::Offset(*o)),
    }
}
