//! What components report through: the [`HealthProbe`] and [`ConsumerProbe`] traits a
//! component implements, and the [`ConsumerStatus`], [`PartitionReport`] and
//! [`RestoreReport`] it fills in. Below: sync only. Must not name the other monitor files,
//! the context or the runtime.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::sync::lock;

/// What health needs to know of a topic consumer, kept up to date by the consumer itself.
#[derive(Debug)]
pub struct ConsumerStatus {
    topic: String,
    finished: AtomicBool,
    assigned: Mutex<std::collections::BTreeSet<i32>>,
}

impl ConsumerStatus {
    /// The status of a new consumer of `topic`, with no partitions yet.
    pub fn new(topic: &str) -> Self {
        ConsumerStatus {
            topic: topic.to_owned(),
            finished: AtomicBool::new(false),
            assigned: Mutex::default(),
        }
    }

    /// The topic it reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Its stream has ended (the consumer is closing).
    pub fn finish(&self) {
        self.finished.store(true, Ordering::SeqCst);
    }

    /// Whether its stream has ended.
    pub fn is_finished(&self) -> bool {
        self.finished.load(Ordering::SeqCst)
    }

    /// Partitions were assigned to it.
    pub fn assign(&self, partitions: impl IntoIterator<Item = i32>) {
        lock(&self.assigned).extend(partitions);
    }

    /// It has no partitions any more (a failed rebalance, a fatal error).
    pub fn clear(&self) {
        lock(&self.assigned).clear();
    }

    /// Partitions were taken from it.
    pub fn revoke(&self, partitions: &[i32]) {
        let mut assigned = lock(&self.assigned);
        for partition in partitions {
            assigned.remove(partition);
        }
    }

    /// The partitions assigned to it, in order.
    pub fn assignment(&self) -> Vec<i32> {
        lock(&self.assigned).iter().copied().collect()
    }
}

/// Something a component watches that can make the application unhealthy: a broker it cannot
/// reach, a sink that keeps failing. Asked by every health check, so it must answer at once
/// from what it already knows.
pub trait HealthProbe: Send + Sync {
    /// Why the application is unhealthy because of it, if it is.
    fn problem(&self) -> Option<String>;
}

/// What the metrics ask of a running topic consumer.
pub trait ConsumerProbe: Send + Sync {
    /// The topic's name.
    fn topic(&self) -> &str;
    /// Its consumer group, when it reads in one (and commits).
    fn group(&self) -> Option<&str>;
    /// What it knows of each assigned partition, asking the broker until `deadline` (it blocks).
    fn partitions(&self, deadline: std::time::Instant) -> Vec<PartitionReport>;
    /// How many messages it could not decode so far.
    fn undecodable(&self) -> u64 {
        0
    }
    /// How many times its partitions were assigned or revoked (a consumer that keeps its group
    /// membership sees one assignment).
    fn rebalances(&self) -> u64 {
        0
    }
    /// How many messages it has delivered that are not acknowledged yet.
    fn in_flight(&self) -> usize {
        0
    }
    /// The restorations of state following its partitions (each partition restored or being
    /// restored since the start).
    fn restorations(&self) -> Vec<RestoreReport> {
        Vec::new()
    }
}

/// One partition of a running consumer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PartitionReport {
    /// The partition.
    pub partition: i32,
    /// The offset of the next message to read (one past the last received).
    pub position: Option<i64>,
    /// The consumer group's committed offset, as the broker last told it.
    pub committed: Option<i64>,
    /// The partition's high watermark (the offset after its last message).
    pub high_watermark: Option<i64>,
}

/// The restoration of one partition of state that follows a topic's partitions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreReport {
    /// The changelog topic.
    pub changelog: String,
    /// The partition.
    pub partition: i32,
    /// Changelog records applied so far.
    pub restored: u64,
    /// Records left to apply (0 once restored).
    pub left: i64,
}

impl PartitionReport {
    /// Messages after the committed offset or, when the group has committed nothing for the
    /// partition (or without a group), after the read position.
    pub fn lag(&self) -> Option<i64> {
        let high = self.high_watermark?;
        let done = self.committed.or(self.position)?;
        Some((high - done).max(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_prefers_the_committed_offset() {
        let mut report = PartitionReport {
            partition: 0,
            position: Some(8),
            committed: None,
            high_watermark: Some(10),
        };
        assert_eq!(report.lag(), Some(2));
        report.committed = Some(5);
        assert_eq!(report.lag(), Some(5));
        report.high_watermark = None;
        assert_eq!(report.lag(), None);
    }
}
