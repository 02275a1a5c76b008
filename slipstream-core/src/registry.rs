//! The registry of handlers: what `#[handle]` submits and what [`handlers`] lists.

use crate::context::BuildCx;
use crate::error::Error;

/// What a handler does when it returns `Err` or panics.
///
/// Set per handler with `#[handle(on_error = "stop")]`, or for every handler that does not set
/// it with [`App::on_error`](crate::App::on_error).
///
/// ```
/// use slipstream::{App, OnError};
///
/// let app = App::new().on_error(OnError::Stop);
/// # let _ = app;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnError {
    /// Log the failure (with the handler's name) and go on with the next item. The default.
    #[default]
    Continue,
    /// Stop the application: sources stop, in-flight work finishes, and `run()` returns the
    /// error.
    Stop,
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
