//! The process's side of a run: the shutdown signals (Ctrl-C, SIGTERM) and the default
//! logging to standard error. Below: shutdown. Must not name the app, its handlers or http.

use crate::shutdown::Shutdown;

/// The process's shutdown signals: the first one starts a graceful shutdown, the next exits at
/// once.
pub(super) struct Signals {
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    pub(super) fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
        })
    }

    #[cfg(not(unix))]
    pub(super) fn new() -> std::io::Result<Self> {
        Ok(Signals {})
    }

    #[cfg(unix)]
    async fn next(&mut self) {
        tokio::select! {
            _ = self.terminate.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }

    pub(super) async fn listen(mut self, shutdown: Shutdown) {
        self.next().await;
        tracing::info!(
            "shutting down: finishing in-flight work (press Ctrl-C again to exit at once)"
        );
        shutdown.trigger();
        self.next().await;
        tracing::warn!("second signal: exiting at once");
        std::process::exit(130);
    }
}

pub(super) fn init_logging() {
    use tracing_subscriber::EnvFilter;
    if tracing::dispatcher::has_been_set() {
        return;
    }
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}
