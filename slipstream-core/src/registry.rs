//! The registry of handlers: what `#[handle]` submits and what [`handlers`] lists.

use crate::context::BuildCx;
use crate::error::Error;

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

/// The record `#[handle]` registers for each handler: its name, module, the source and sink
/// expressions as written, and the function that wires it up when the application starts.
///
/// ```
/// for handler in slipstream::handlers() {
///     println!("{}::{} <- {:?} -> {:?}", handler.module, handler.name, handler.sources, handler.sinks);
/// }
/// ```
#[derive(Debug)]
pub struct HandlerInfo {
    /// The handler's name (the function's name unless `name = ".."` was given).
    pub name: &'static str,
    /// The module path the handler was declared in.
    pub module: &'static str,
    /// The `source` expressions, as written.
    pub sources: &'static [&'static str],
    /// The `sink` expressions, as written.
    pub sinks: &'static [&'static str],
    /// The handler's own error policy, if it set one.
    pub on_error: Option<OnError>,
    /// The handler's own retry setting, if it set one.
    pub retry: Option<Retry>,
    #[doc(hidden)]
    pub build: fn(&mut BuildCx<'_>) -> Result<(), Error>,
}

impl HandlerInfo {
    /// Whether this handler was declared in `module` or one of its submodules.
    pub fn is_in_module(&self, module: &str) -> bool {
        self.module == module
            || (self.module.starts_with(module) && self.module[module.len()..].starts_with("::"))
    }
}

inventory::collect!(HandlerInfo);

/// Every handler registered with `#[handle]` in this program, in a stable order (by module,
/// then name).
pub fn handlers() -> Vec<&'static HandlerInfo> {
    let mut all: Vec<_> = inventory::iter::<HandlerInfo>.into_iter().collect();
    all.sort_by(|a, b| (a.module, a.name).cmp(&(b.module, b.name)));
    all
}
