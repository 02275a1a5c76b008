//! [`AppHandle`]: the runtime's public surface, which steers and reports on a running
//! application from outside its handlers. Below: controls, context, monitor, pause, error.
//! Must not name the runtime or http.

use std::sync::Arc;

use crate::context::handlers;
use crate::controls::Controls;
use crate::error::Error;
use crate::monitor::{HandlerStatus, Health};
use crate::pause::PauseHandle;

/// Controls a running application from outside its handlers: shut it down, pause and resume
/// a handler's input. Cheap to clone; get it from [`App::handle`](crate::App::handle) before
/// calling [`App::run`](crate::App::run).
///
/// ```
/// use slipstream::App;
///
/// let app = App::new();
/// let handle = app.handle();
/// handle.shutdown(); // the run will stop at once
/// ```
#[derive(Clone)]
pub struct AppHandle {
    controls: Arc<Controls>,
}

impl AppHandle {
    /// The handle of the application steered by `controls`.
    pub(crate) fn new(controls: Arc<Controls>) -> AppHandle {
        AppHandle { controls }
    }

    /// Starts a graceful shutdown, as Ctrl-C does: sources stop, in-flight items finish.
    pub fn shutdown(&self) {
        self.controls.shutdown.trigger();
    }

    /// Waits until the application starts shutting down (a signal, [`shutdown`](Self::shutdown),
    /// a handler stopping it) or its run ends: for servers running beside it.
    pub async fn wait_for_shutdown(&self) {
        self.controls.shutdown.wait().await;
    }

    /// Whether a shutdown has started.
    pub fn is_shutting_down(&self) -> bool {
        self.controls.shutdown.is_triggered()
    }

    /// The pause switch of the input of the handler called `handler` (every source of that
    /// handler stops delivering while it is paused).
    pub fn pause_handle(&self, handler: &str) -> Result<PauseHandle, Error> {
        let info = handlers()
            .into_iter()
            .find(|info| info.name == handler)
            .ok_or_else(|| Error::UnknownHandler(handler.to_owned()))?;
        Ok(self.controls.pause_handle(info.name))
    }

    /// Pauses the input of the handler called `handler`.
    pub fn pause(&self, handler: &str) -> Result<(), Error> {
        self.pause_handle(handler).map(|h| h.pause())
    }

    /// Resumes the input of the handler called `handler`.
    pub fn resume(&self, handler: &str) -> Result<(), Error> {
        self.pause_handle(handler).map(|h| h.resume())
    }

    /// Whether the application is ready (what the admin server's `GET /health` answers):
    /// running, every handler running (none stopped with an error or done with its source),
    /// every topic consumer assigned partitions, no shutdown started. It never blocks.
    ///
    /// ```
    /// let app = slipstream::App::new();
    /// assert!(!app.handle().health().is_ok()); // not running yet
    /// ```
    pub fn health(&self) -> Health {
        self.controls.health()
    }

    /// The state of every handler of the run (what `GET /handlers` answers), with their
    /// counters when metrics are enabled ([`App::metrics`](crate::App::metrics)).
    ///
    /// ```
    /// let app = slipstream::App::new();
    /// assert!(app.handle().handler_status().is_empty()); // not running yet
    /// ```
    pub fn handler_status(&self) -> Vec<HandlerStatus> {
        self.controls.monitor.statuses()
    }

    /// The application's metrics in Prometheus' text format, for serving them from a server of
    /// your own (the admin server's `GET /metrics` answers the same report, reused for up to a
    /// second, and a 500 where this returns a `# the report failed` line): per handler whether
    /// it runs and, when metrics are enabled ([`App::metrics`](crate::App::metrics)), items
    /// in, outputs, errors and a processing-time histogram; per partition of each topic
    /// consumer its position, committed offset (asked of the broker), high watermark and lag.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let app = slipstream::App::new().metrics(true);
    /// let text = app.handle().metrics().await;
    /// assert!(text.is_empty()); // nothing runs yet
    /// # }
    /// ```
    pub async fn metrics(&self) -> String {
        let handle = self.clone();
        // Asking the broker for committed offsets blocks.
        tokio::task::spawn_blocking(move || handle.prometheus_blocking())
            .await
            .unwrap_or_else(|error| format!("# the report failed: {error}\n"))
    }

    /// The metrics report of [`metrics`](Self::metrics), made on the calling thread: it blocks
    /// while brokers are asked for committed offsets (call it from `spawn_blocking`).
    pub(crate) fn prometheus_blocking(&self) -> String {
        self.controls.monitor.prometheus()
    }

    /// Where the admin server listens (see [`App::http`](crate::App::http)): waits until
    /// [`App::run`](crate::App::run) has started it (or decided there is none), then `None` when
    /// the run has no server or has ended. It waits forever if the application is never run.
    ///
    /// ```no_run
    /// # async fn doc() {
    /// let app = slipstream::App::new().http("127.0.0.1:0");
    /// let handle = app.handle();
    /// tokio::spawn(app.run());
    /// let addr = handle.http_addr().await.expect("the admin server is on");
    /// println!("http://{addr}/health");
    /// # }
    /// ```
    #[cfg(feature = "http")]
    pub async fn http_addr(&self) -> Option<std::net::SocketAddr> {
        let mut listening = self.controls.http.subscribe();
        let state = listening
            .wait_for(|state| *state != crate::controls::Listening::Unknown)
            .await
            .map(|state| *state)
            .unwrap_or(crate::controls::Listening::Off);
        match state {
            crate::controls::Listening::On(addr) => Some(addr),
            _ => None,
        }
    }

    /// Tells [`http_addr`](Self::http_addr)'s callers where the admin server listens: `None`
    /// once it has stopped (or when the run has none).
    #[cfg(feature = "http")]
    pub(crate) fn set_http_addr(&self, addr: Option<std::net::SocketAddr>) {
        let state = match addr {
            Some(addr) => crate::controls::Listening::On(addr),
            None => crate::controls::Listening::Off,
        };
        self.controls.http.send_replace(state);
    }
}

impl std::fmt::Debug for AppHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppHandle")
            .field("shutting_down", &self.is_shutting_down())
            .finish()
    }
}
