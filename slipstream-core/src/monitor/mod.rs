//! What a running application knows about itself: the state and counters of each handler and
//! the partitions of each topic consumer. [`report`] turns it into health, Prometheus metrics
//! and handler statuses.
//!
//! Handler states and consumers are always tracked (a few writes per run). Per-item counters
//! and the processing-time histogram are kept only when metrics are enabled, so the loop of an
//! application that does not scrape them pays one branch per item.

mod report;

pub use report::{HandlerCounters, HandlerStatus, Health};

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::error::Error;
use crate::pause::PauseHandle;
use crate::policy::OnError;
use crate::sync::lock;

/// Everything one run reports.
#[derive(Default)]
pub(crate) struct Monitor {
    started: AtomicBool,
    measure: AtomicBool,
    handlers: Mutex<Vec<Arc<HandlerStats>>>,
    consumers: Mutex<Vec<Consumer>>,
    probes: Mutex<Vec<Weak<dyn HealthProbe>>>,
}

/// A watched topic consumer: its status (always readable, without calling into librdkafka) and
/// the consumer itself while it runs (for the partition metrics).
struct Consumer {
    status: Arc<ConsumerStatus>,
    probe: Weak<dyn ConsumerProbe>,
}

impl Monitor {
    /// The run has started (its handlers are being wired up).
    pub(crate) fn start(&self) {
        self.started.store(true, Ordering::SeqCst);
    }

    pub(crate) fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Keeps per-item counters for the handlers registered from now on.
    pub(crate) fn set_measure(&self, enabled: bool) {
        self.measure.store(enabled, Ordering::SeqCst);
    }

    /// Starts tracking a handler of this run.
    pub(crate) fn add_handler(
        &self,
        info: HandlerLabel,
        policy: OnError,
        pause: PauseHandle,
    ) -> Arc<HandlerStats> {
        let counters = self.measure.load(Ordering::SeqCst).then(Counters::default);
        let stats = Arc::new(HandlerStats {
            info,
            policy,
            pause,
            state: AtomicU8::new(STARTING),
            failure: Mutex::new(None),
            counters,
        });
        lock(&self.handlers).push(Arc::clone(&stats));
        stats
    }

    /// The handler of this run called `name`.
    pub(crate) fn handler(&self, name: &str) -> Option<Arc<HandlerStats>> {
        lock(&self.handlers)
            .iter()
            .find(|h| h.info.name == name)
            .cloned()
    }

    pub(crate) fn handlers(&self) -> Vec<Arc<HandlerStats>> {
        lock(&self.handlers).clone()
    }

    /// Starts watching a topic consumer.
    pub(crate) fn add_consumer(&self, status: Arc<ConsumerStatus>, probe: Weak<dyn ConsumerProbe>) {
        let mut consumers = lock(&self.consumers);
        consumers.retain(|c| c.probe.strong_count() > 0);
        consumers.push(Consumer { status, probe });
    }

    /// The status of every consumer of the run.
    pub(crate) fn consumer_statuses(&self) -> Vec<Arc<ConsumerStatus>> {
        lock(&self.consumers)
            .iter()
            .map(|c| Arc::clone(&c.status))
            .collect()
    }

    /// The consumers still running. Dropping one may close it (it blocks): call from a thread
    /// that may block.
    pub(crate) fn consumers(&self) -> Vec<Arc<dyn ConsumerProbe>> {
        lock(&self.consumers)
            .iter()
            .filter_map(|c| c.probe.upgrade())
            .collect()
    }

    /// Adds a health probe (once: the same probe added again is ignored).
    pub(crate) fn add_probe(&self, probe: Weak<dyn HealthProbe>) {
        let mut probes = lock(&self.probes);
        probes.retain(|p| p.strong_count() > 0);
        if !probes.iter().any(|p| Weak::ptr_eq(p, &probe)) {
            probes.push(probe);
        }
    }

    /// What the live health probes report.
    pub(crate) fn problems(&self) -> Vec<String> {
        let probes: Vec<_> = lock(&self.probes)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        probes.iter().filter_map(|p| p.problem()).collect()
    }

    /// How many messages the running consumers have delivered and not had acknowledged.
    pub(crate) fn in_flight(&self) -> usize {
        self.consumers().iter().map(|c| c.in_flight()).sum()
    }
}

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

const STARTING: u8 = 0;
const RUNNING: u8 = 1;
const FINISHED: u8 = 2;
const FAILED: u8 = 3;

/// Where a handler is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HandlerState {
    /// Wired up; its loop has not started yet.
    Starting,
    /// Reading its sources.
    Running,
    /// Its sources are drained (or the application is shutting down) and its sinks are closed.
    Finished,
    /// It stopped with an error (its `stop` policy, or its task ended abnormally).
    Failed,
}

/// What the reports say of a handler: its name, module, and sources and sinks as written.
#[derive(Clone, Copy, Debug)]
pub(crate) struct HandlerLabel {
    pub(crate) name: &'static str,
    pub(crate) module: &'static str,
    pub(crate) sources: &'static [&'static str],
    pub(crate) sinks: &'static [&'static str],
}

/// The state and counters of one handler of a run.
pub(crate) struct HandlerStats {
    pub(crate) info: HandlerLabel,
    pub(crate) policy: OnError,
    pub(crate) pause: PauseHandle,
    state: AtomicU8,
    failure: Mutex<Option<String>>,
    counters: Option<Counters>,
}

impl HandlerStats {
    pub(crate) fn set_running(&self) {
        let _ = self
            .state
            .compare_exchange(STARTING, RUNNING, Ordering::SeqCst, Ordering::SeqCst);
    }

    pub(crate) fn set_finished(&self) {
        let _ = self
            .state
            .compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst)
            .or_else(|_| {
                self.state
                    .compare_exchange(STARTING, FINISHED, Ordering::SeqCst, Ordering::SeqCst)
            });
    }

    pub(crate) fn set_failed(&self, error: &Error) {
        // What went wrong, without repeating the handler's name.
        let detail = match error {
            Error::Handler { source, .. } => source.to_string(),
            Error::Panic { message, .. } => format!("panicked: {message}"),
            Error::Sink { source, .. } => format!("a sink failed: {source}"),
            Error::Task { message, .. } => format!("its task ended abnormally: {message}"),
            other => other.to_string(),
        };
        *lock(&self.failure) = Some(detail);
        self.state.store(FAILED, Ordering::SeqCst);
    }

    pub(crate) fn state(&self) -> HandlerState {
        match self.state.load(Ordering::SeqCst) {
            STARTING => HandlerState::Starting,
            RUNNING => HandlerState::Running,
            FINISHED => HandlerState::Finished,
            _ => HandlerState::Failed,
        }
    }

    pub(crate) fn failure(&self) -> Option<String> {
        lock(&self.failure).clone()
    }

    /// The per-item counters, when metrics are enabled.
    #[inline]
    pub(crate) fn counters(&self) -> Option<&Counters> {
        self.counters.as_ref()
    }
}

/// Which kind of failure an error counter counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ErrorKind {
    /// The handler returned an error.
    Handler = 0,
    /// The handler panicked.
    Panic = 1,
    /// A sink failed to take an output.
    Sink = 2,
}

impl ErrorKind {
    pub(crate) const ALL: [ErrorKind; 3] = [ErrorKind::Handler, ErrorKind::Panic, ErrorKind::Sink];

    pub(crate) fn label(self) -> &'static str {
        match self {
            ErrorKind::Handler => "error",
            ErrorKind::Panic => "panic",
            ErrorKind::Sink => "sink",
        }
    }
}

/// Adds to a counter only its handler's loop writes: a plain load and store, not a locked
/// read-modify-write (readers still see whole values).
#[inline]
fn bump(counter: &AtomicU64, by: u64) {
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(by),
        Ordering::Relaxed,
    );
}

/// Per-item counters of one handler, written only by the handler's own loop.
#[derive(Default)]
pub(crate) struct Counters {
    messages: AtomicU64,
    outputs: AtomicU64,
    errors: [AtomicU64; 3],
    time: Histogram,
}

impl Counters {
    /// One item handled in `elapsed`, producing `outputs` outputs.
    #[inline]
    pub(crate) fn record(&self, outputs: usize, elapsed: Duration) {
        bump(&self.messages, 1);
        if outputs > 0 {
            bump(&self.outputs, outputs as u64);
        }
        self.time.observe(elapsed);
    }

    pub(crate) fn error(&self, kind: ErrorKind) {
        bump(&self.errors[kind as usize], 1);
    }

    pub(crate) fn messages(&self) -> u64 {
        self.messages.load(Ordering::Relaxed)
    }

    pub(crate) fn outputs(&self) -> u64 {
        self.outputs.load(Ordering::Relaxed)
    }

    pub(crate) fn errors(&self, kind: ErrorKind) -> u64 {
        self.errors[kind as usize].load(Ordering::Relaxed)
    }

    pub(crate) fn histogram(&self) -> &Histogram {
        &self.time
    }
}

/// A histogram of durations with fixed buckets (seconds), as Prometheus reads them; one writer.
pub(crate) struct Histogram {
    /// Observations per bucket (not cumulative); the last one is `+Inf`.
    counts: [AtomicU64; BOUNDS.len() + 1],
    sum_nanos: AtomicU64,
}

/// The upper bounds of the buckets, in seconds: 10 µs to 10 s.
pub(crate) const BOUNDS: [f64; 13] = [
    0.000_01, 0.000_05, 0.000_1, 0.000_5, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0,
];
const BOUNDS_NANOS: [u64; 13] = {
    let mut nanos = [0; 13];
    let mut i = 0;
    while i < BOUNDS.len() {
        nanos[i] = (BOUNDS[i] * 1e9) as u64;
        i += 1;
    }
    nanos
};

impl Default for Histogram {
    fn default() -> Self {
        Histogram {
            counts: Default::default(),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    #[inline]
    pub(crate) fn observe(&self, elapsed: Duration) {
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        let bucket = BOUNDS_NANOS
            .iter()
            .position(|&bound| nanos <= bound)
            .unwrap_or(BOUNDS.len());
        bump(&self.counts[bucket], 1);
        bump(&self.sum_nanos, nanos);
    }

    /// The cumulative count of each bucket (the last is `+Inf`, the total), and the sum in
    /// seconds.
    pub(crate) fn snapshot(&self) -> ([u64; BOUNDS.len() + 1], f64) {
        let mut cumulative = [0; BOUNDS.len() + 1];
        let mut total = 0;
        for (slot, count) in cumulative.iter_mut().zip(&self.counts) {
            total += count.load(Ordering::Relaxed);
            *slot = total;
        }
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        (cumulative, sum)
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
    fn histogram_buckets_are_cumulative() {
        let histogram = Histogram::default();
        histogram.observe(Duration::from_micros(5)); // first bucket
        histogram.observe(Duration::from_micros(700)); // le 0.001
        histogram.observe(Duration::from_secs(30)); // +Inf
        let (buckets, sum) = histogram.snapshot();
        assert_eq!(buckets[0], 1);
        assert_eq!(buckets[3], 1); // le 0.0005
        assert_eq!(buckets[4], 2); // le 0.001
        assert_eq!(buckets[12], 2); // le 10
        assert_eq!(buckets[13], 3); // +Inf
        assert!((sum - 30.000_705).abs() < 1e-9, "{sum}");
    }

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
