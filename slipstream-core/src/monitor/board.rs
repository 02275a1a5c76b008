//! The [`Monitor`]: the board one run posts what it knows of itself to, its handlers, topic
//! consumers and health probes. Below: stats, probe, policy, pause. Must not name the
//! reports, the context or the runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use super::probe::{ConsumerProbe, ConsumerStatus, HealthProbe};
use super::stats::{Counters, HandlerLabel, HandlerStats};
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
        let stats = Arc::new(HandlerStats::new(info, policy, pause, counters));
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
