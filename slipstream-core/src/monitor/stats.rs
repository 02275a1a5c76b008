//! What the monitor keeps of each handler: its [`HandlerState`], its label and policy, and
//! the per-item counters and processing-time histogram. Below: policy, pause, error, sync.
//! Must not name the board, the reports, the context or the runtime.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::pause::PauseHandle;
use crate::policy::OnError;
use crate::sync::lock;

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
    /// A handler just added to a run, starting; `counters` when metrics are enabled.
    pub(super) fn new(
        info: HandlerLabel,
        policy: OnError,
        pause: PauseHandle,
        counters: Option<Counters>,
    ) -> Self {
        HandlerStats {
            info,
            policy,
            pause,
            state: AtomicU8::new(STARTING),
            failure: Mutex::new(None),
            counters,
        }
    }

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
}
