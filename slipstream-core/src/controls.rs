//! What a running application is steered by: its shutdown, its failure, its handlers'
//! pauses and reports, and where its admin server listens. Below the runtime, the handlers'
//! context and the handle, which all hold it. Below: monitor, pause, shutdown, error. Must not
//! name the context, the handle, http or the runtime.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::error::Error;
use crate::monitor::{Health, Monitor};
use crate::pause::PauseHandle;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// Whether the admin server of a run listens, and where.
#[cfg(feature = "http")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Listening {
    /// The run has not decided yet.
    Unknown,
    /// The run has no admin server (or has ended).
    Off,
    On(std::net::SocketAddr),
}

/// What an [`AppHandle`](crate::AppHandle) controls in a running application.
pub(crate) struct Controls {
    pub(crate) shutdown: Shutdown,
    /// Set as soon as the application is stopping on a failure: nothing is committed after it.
    pub(crate) failed: Arc<std::sync::atomic::AtomicBool>,
    pauses: Mutex<HashMap<&'static str, PauseHandle>>,
    failure: Mutex<Option<Error>>,
    /// What the run reports about its handlers and consumers.
    pub(crate) monitor: Monitor,
    /// Where the admin server listens, once the run has started it (or decided not to).
    #[cfg(feature = "http")]
    pub(crate) http: tokio::sync::watch::Sender<Listening>,
}

impl Controls {
    /// The controls of an application about to run: no failure, nothing paused, no admin
    /// server decided yet.
    pub(crate) fn new() -> Self {
        Controls {
            shutdown: Shutdown::new(),
            failed: Arc::default(),
            pauses: Mutex::new(HashMap::new()),
            failure: Mutex::new(None),
            monitor: Monitor::default(),
            #[cfg(feature = "http")]
            http: tokio::sync::watch::Sender::new(Listening::Unknown),
        }
    }

    /// The error that stopped the application, if one did, taken out (the run returns it).
    pub(crate) fn take_failure(&self) -> Option<Error> {
        lock(&self.failure).take()
    }

    /// Stops the application with `error` (the first one wins).
    pub(crate) fn fail(&self, error: Error) {
        self.failed.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut failure = lock(&self.failure);
        if failure.is_none() {
            tracing::error!(%error, "stopping the application");
            *failure = Some(error);
        }
        self.shutdown.trigger();
    }

    /// Stops the application with the error of the handler called `handler`, which is reported
    /// as failed.
    pub(crate) fn fail_handler(&self, handler: &str, error: Error) {
        if let Some(stats) = self.monitor.handler(handler) {
            stats.set_failed(&error);
        }
        self.fail(error);
    }

    /// The application's health (it never blocks).
    pub(crate) fn health(&self) -> Health {
        let failure = lock(&self.failure).as_ref().map(ToString::to_string);
        self.monitor.health(self.shutdown.is_triggered(), failure)
    }

    /// The pause switch of a handler's input (created on first use).
    pub(crate) fn pause_handle(&self, handler: &'static str) -> PauseHandle {
        lock(&self.pauses).entry(handler).or_default().clone()
    }
}
