//! What a handler does with an item it failed on: its error policy and its retries. Below
//! the monitor, the context (the registry of handlers), the handler loops and the runtime,
//! which all read them; it names nothing of the crate.

/// What a handler does with an item it failed on (it returned `Err` or panicked, or a sink
/// refused one of its outputs), after any [`Retry`].
///
/// Set per handler with `#[handle(on_error = "skip")]` or `#[handle(dead_letter = "topic")]`,
/// or for every handler that does not set it with [`App::on_error`](crate::App::on_error).
/// No policy loses an item silently: the default stops the application before the item is
/// acknowledged, so its source delivers it again after a restart.
///
/// ```
/// use slipstream::{App, OnError};
///
/// let app = App::new().on_error(OnError::Skip);
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Stop the application: the item and everything after it stay unacknowledged (a Kafka
    /// offset is not committed past it), sources stop, in-flight work finishes, and `run()`
    /// returns the error. The default, as in the Python original and Kafka Streams.
    #[default]
    Stop,
    /// Log the failure (with the handler's name and the item's origin), count it, acknowledge
    /// the item and go on with the next one.
    Skip,
    /// Forward the item's source record, as it was read, to this destination (a topic name),
    /// with headers naming the handler, the error and the record's origin; then acknowledge it
    /// and go on. An item whose source cannot forward it (a plain stream) stops the application
    /// instead.
    DeadLetter(&'static str),
}

impl OnError {
    /// The policy's name, as `/metrics` and `/handlers` report it.
    pub fn name(&self) -> &'static str {
        match self {
            OnError::Stop => "stop",
            OnError::Skip => "skip",
            OnError::DeadLetter(_) => "dead_letter",
        }
    }
}

/// How many times a failing item is tried again before its [`OnError`] policy applies, and how
/// long to wait before each try (doubling from `backoff`, at most 30 s).
///
/// Set per handler with `#[handle(retry = 3, backoff_ms = 200)]`, or for every handler with
/// [`App::retry`](crate::App::retry). Retrying calls the handler again with a clone of its
/// input, so a handler whose input is not `Clone` cannot retry.
///
/// ```
/// use std::time::Duration;
/// use slipstream::{App, Retry};
///
/// let app = App::new().retry(Retry::new(3, Duration::from_millis(100)));
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    /// How many more tries after the first.
    pub attempts: u32,
    /// The wait before the first retry.
    pub backoff: std::time::Duration,
}

impl Retry {
    /// The longest wait between two tries.
    pub const MAX_BACKOFF: std::time::Duration = std::time::Duration::from_secs(30);

    /// `attempts` more tries, the first after `backoff`.
    pub const fn new(attempts: u32, backoff: std::time::Duration) -> Self {
        Retry { attempts, backoff }
    }

    /// No retry.
    pub const NONE: Retry = Retry::new(0, std::time::Duration::ZERO);

    /// The wait before retry number `attempt` (from 1).
    pub(crate) fn wait(&self, attempt: u32) -> std::time::Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.backoff.saturating_mul(factor).min(Self::MAX_BACKOFF)
    }
}
