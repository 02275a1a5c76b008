//! The registry of handlers: what `#[handle]` submits and what [`handlers`] lists.

use crate::context::BuildCx;
use crate::error::Error;
use crate::policy::{OnError, Retry};

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
