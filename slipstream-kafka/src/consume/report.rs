//! What a running consumer reports to health and metrics: assignment, positions, committed
//! offsets, lag, restorations. Layer: consuming.

use std::collections::HashMap;
use std::ffi::CString;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::Consumer;

use super::commit::positions;
use super::running::Running;
use slipstream_core::__component::lock;
use slipstream_core::__component::{ConsumerProbe, PartitionReport, RestoreReport};

/// How long a report waits for the committed offsets.
const COMMITTED_TIMEOUT: Duration = Duration::from_secs(2);

impl ConsumerProbe for Running {
    fn topic(&self) -> &str {
        &self.topic
    }

    fn group(&self) -> Option<&str> {
        self.group_id.as_deref()
    }

    fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    fn rebalances(&self) -> u64 {
        self.rebalances.count()
    }

    fn restorations(&self) -> Vec<RestoreReport> {
        self.followers.restorations()
    }

    fn in_flight(&self) -> usize {
        self.tracker.in_flight()
    }

    fn partitions(&self, deadline: Instant) -> Vec<PartitionReport> {
        let positions = self.tracker.positions();
        let committed = self.committed(deadline);
        self.assignment()
            .into_iter()
            .map(|partition| PartitionReport {
                partition,
                position: positions.get(&partition).copied(),
                committed: committed.get(&partition).copied(),
                high_watermark: self.high_watermark(partition, deadline),
            })
            .collect()
    }
}

impl Running {
    /// The group's committed offsets of the assigned partitions, as the broker has them, or as
    /// it last told them when it does not answer before `deadline` (empty without a group).
    fn committed(&self, deadline: Instant) -> HashMap<i32, i64> {
        if !self.group {
            return HashMap::new();
        }
        let timeout = deadline
            .saturating_duration_since(Instant::now())
            .min(COMMITTED_TIMEOUT);
        // Asked without holding the lock, so that concurrent reports do not queue up.
        let answer = (!timeout.is_zero()).then(|| self.consumer.committed(timeout));
        let mut known = lock(&self.committed);
        match answer {
            // The broker's answer replaces what was known (offsets deleted, partitions gone).
            Some(Ok(list)) => {
                *known = positions(&list, &self.topic).collect();
            }
            Some(Err(error)) => {
                tracing::debug!(topic = %self.topic, %error, "cannot read the committed offsets")
            }
            None => {}
        }
        known.clone()
    }

    /// The partition's high watermark: asked of the broker until `deadline` (the consumer's
    /// cached value stops moving while the partition is paused or its queue is full), else as
    /// of the consumer's last fetch.
    fn high_watermark(&self, partition: i32, deadline: Instant) -> Option<i64> {
        let timeout = deadline.saturating_duration_since(Instant::now());
        if !timeout.is_zero()
            && let Ok((_, high)) = self
                .consumer
                .fetch_watermarks(&self.topic, partition, timeout)
        {
            return Some(high);
        }
        self.cached_high_watermark(partition)
    }

    /// The partition's high watermark as of the consumer's last fetch (no request is made).
    pub(super) fn cached_high_watermark(&self, partition: i32) -> Option<i64> {
        let topic = CString::new(&*self.topic).ok()?;
        let (mut low, mut high) = (-1_i64, -1_i64);
        // SAFETY: the client handle lives as long as `self.consumer`; librdkafka only reads the
        // topic name and writes the two offsets, which outlive the call.
        let code = unsafe {
            rdkafka::bindings::rd_kafka_get_watermark_offsets(
                self.consumer.client().native_ptr(),
                topic.as_ptr(),
                partition,
                &mut low,
                &mut high,
            )
        };
        (code == rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR && high >= 0)
            .then_some(high)
    }
}
