//! The runtime, the top of the core: [`App`] and [`run`] start the registered handlers and
//! drive a run to its end, then the exit hooks ([`on_shutdown`]) run. Nothing names it.

mod app;
mod hooks;
mod signals;

pub use app::{App, run};
pub use hooks::{on_shutdown, on_shutdown_async};
