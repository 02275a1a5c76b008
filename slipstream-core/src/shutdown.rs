//! The shutdown signal every source and task of a run watches. The bottom layer: names
//! nothing else of the crate.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};

use tokio::sync::Notify;

/// Tells the parts of a running application that it is shutting down. Cheap to clone; checking
/// it is one atomic load.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let shutdown = slipstream::Shutdown::new();
/// let waiter = shutdown.clone();
/// let task = tokio::spawn(async move { waiter.wait().await; "stopped" });
/// shutdown.trigger();
/// assert!(shutdown.is_triggered());
/// assert_eq!(task.await.unwrap(), "stopped");
/// # }
/// ```
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<State>,
}

#[derive(Default)]
struct State {
    triggered: AtomicBool,
    notify: Notify,
}

impl Shutdown {
    /// A signal that has not been triggered.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts the shutdown; every waiter wakes up.
    pub fn trigger(&self) {
        self.inner.triggered.store(true, Ordering::SeqCst);
        self.inner.notify.notify_waiters();
    }

    /// Whether the shutdown has started.
    #[inline]
    pub fn is_triggered(&self) -> bool {
        self.inner.triggered.load(Ordering::Acquire)
    }

    /// Waits until the shutdown starts (at once if it has).
    pub async fn wait(&self) {
        loop {
            let notified = self.inner.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            if self.is_triggered() {
                return;
            }
            notified.await;
        }
    }
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("triggered", &self.is_triggered())
            .finish()
    }
}

/// Polls for shutdown from inside a `poll` function; the waiting future is created the first
/// time it is needed.
pub(crate) struct ShutdownPoller {
    shutdown: Shutdown,
    waiting: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The waker the waiting future last registered: polling it again with the same one would
    /// only take the shutdown's lock (shared by every source) to change nothing.
    registered: Option<Waker>,
}

impl ShutdownPoller {
    pub(crate) fn new(shutdown: Shutdown) -> Self {
        ShutdownPoller {
            shutdown,
            waiting: None,
            registered: None,
        }
    }

    #[inline]
    pub(crate) fn is_triggered(&self) -> bool {
        self.shutdown.is_triggered()
    }

    /// Registers the task for wake-up at shutdown; true when it has started.
    pub(crate) fn poll_triggered(&mut self, cx: &mut Context<'_>) -> bool {
        if self.shutdown.is_triggered() {
            return true;
        }
        if self
            .registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return false;
        }
        let shutdown = &self.shutdown;
        let waiting = self.waiting.get_or_insert_with(|| {
            let shutdown = shutdown.clone();
            Box::pin(async move { shutdown.wait().await })
        });
        if waiting.as_mut().poll(cx).is_ready() {
            return true;
        }
        self.registered = Some(cx.waker().clone());
        false
    }
}
