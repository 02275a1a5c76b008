//! The time limits of transactions and their calls. Layer: exactly-once (names nothing).

use std::time::Duration;

/// How long a transaction call (init, commit, abort) may take.
pub(super) const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a commit waits for the messages being handled, at most (and less than the
/// transaction timeout, leaving it this margin to commit).
pub(super) const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
pub(super) const COMMIT_MARGIN: Duration = Duration::from_secs(3);
/// The commit interval unless `commit.interval.ms` says.
pub(super) const DEFAULT_INTERVAL: Duration = Duration::from_millis(100);
/// `transaction.timeout.ms` unless set: how long a transaction may stay open, and how long one
/// left open by a killed instance holds back `read_committed` readers and the next owner's
/// positions (when no instance with its `transactional.id` comes back to abort it sooner).
/// Kafka Streams' default. A commit waits for the records sent to a killed node's partitions
/// until the controller has fenced the node (`broker.session.timeout.ms`, 9 s by default) and
/// moved its leaders, so where nodes may be killed, more is safer (the failover test runs at
/// 30 s; at 10 s a leader killed stopped the instance).
pub(super) const DEFAULT_TRANSACTION_TIMEOUT_MS: &str = "10000";
