//! Pausing and resuming sources, and the gate every source passes through. Below: shutdown
//! and sync. Must not name the monitor, the context or the runtime.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use futures::Stream;

use crate::shutdown::{Shutdown, ShutdownPoller};
use crate::sync::lock;

/// A switch that pauses and resumes a running source.
///
/// Every source the runtime reads passes through a gate holding one of these: while it is
/// paused, the gate does not poll the source at all, so nothing is read, nothing is delivered
/// and nothing is lost; [`resume`](Self::resume) continues exactly where it stopped. Handles are
/// cheap to clone and every clone controls the same switch.
///
/// A shared source ([`Proxy`](crate::Proxy), [`Shared`](crate::Shared), a topic) read by several
/// handlers keeps filling the bounded feed of a handler whose input is paused; once that feed
/// is full, the shared source waits, and so do the other handlers reading it. Pause the shared
/// source itself to stop them all.
///
/// ```
/// use slipstream::PauseHandle;
///
/// let handle = PauseHandle::new();
/// handle.pause();
/// assert!(handle.is_paused());
/// handle.resume();
/// assert!(!handle.is_paused());
/// ```
#[derive(Clone, Default)]
pub struct PauseHandle {
    inner: Arc<PauseState>,
}

struct PauseState {
    paused: AtomicBool,
    /// Every gate waiting for a resume (several when a handler merges several sources).
    waiting: Mutex<Vec<Waker>>,
    /// Tells components that apply the switch themselves (a topic's consumer, the hub reading
    /// it) that it was flipped.
    changed: tokio::sync::watch::Sender<()>,
}

impl Default for PauseState {
    fn default() -> Self {
        PauseState {
            paused: AtomicBool::new(false),
            waiting: Mutex::new(Vec::new()),
            changed: tokio::sync::watch::Sender::new(()),
        }
    }
}

/// Flips of a pause switch, for a component that applies it itself. Not a public API.
#[doc(hidden)]
pub struct PauseChanges(tokio::sync::watch::Receiver<()>);

impl PauseChanges {
    /// Waits until the switch is flipped after the last call (or after this was made).
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            // The switch is gone: it never changes again.
            std::future::pending::<()>().await;
        }
    }
}

impl PauseHandle {
    /// A handle in the running (not paused) state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Stops the source from delivering items until [`resume`](Self::resume) is called.
    pub fn pause(&self) {
        self.inner.paused.store(true, Ordering::SeqCst);
        self.inner.changed.send_replace(());
    }

    /// Lets the source deliver items again.
    pub fn resume(&self) {
        self.inner.paused.store(false, Ordering::SeqCst);
        let waiting = std::mem::take(&mut *lock(&self.inner.waiting));
        waiting.into_iter().for_each(Waker::wake);
        self.inner.changed.send_replace(());
    }

    /// Wakes `waker` on the next resume.
    fn register(&self, waker: &Waker) {
        let mut waiting = lock(&self.inner.waiting);
        if !waiting.iter().any(|w| w.will_wake(waker)) {
            waiting.push(waker.clone());
        }
    }

    /// The flips of the switch from now on (for components that apply it themselves).
    #[doc(hidden)]
    pub fn changes(&self) -> PauseChanges {
        PauseChanges(self.inner.changed.subscribe())
    }

    /// Whether the source is paused.
    pub fn is_paused(&self) -> bool {
        self.inner.paused.load(Ordering::SeqCst)
    }
}

impl std::fmt::Debug for PauseHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PauseHandle")
            .field("paused", &self.is_paused())
            .finish()
    }
}

/// Something the runtime reads from that can be paused: a running source, a [`Proxy`](crate::Proxy),
/// a [`Shared`](crate::Shared) stream, or a handler's input.
pub trait Pausable {
    /// The switch of this source.
    fn pause_handle(&self) -> PauseHandle;

    /// Stops delivering items until [`resume`](Pausable::resume).
    fn pause(&self) {
        self.pause_handle().pause();
    }

    /// Delivers items again.
    fn resume(&self) {
        self.pause_handle().resume();
    }

    /// Whether it is paused.
    fn is_paused(&self) -> bool {
        self.pause_handle().is_paused()
    }
}

impl Pausable for PauseHandle {
    fn pause_handle(&self) -> PauseHandle {
        self.clone()
    }
}

impl<T: Pausable, F: FnOnce() -> T> Pausable for std::sync::LazyLock<T, F> {
    fn pause_handle(&self) -> PauseHandle {
        (**self).pause_handle()
    }
}

/// The stream wrapper through which the runtime reads every source: it ends the stream when the
/// application shuts down (for sources that come from outside the application) and holds it
/// while it is paused. Checking both costs two atomic loads per item.
pub(crate) struct Gate<S> {
    inner: Pin<Box<S>>,
    pause: PauseHandle,
    stop: ShutdownPoller,
    /// External sources end at shutdown; internal feeds drain (a pause no longer holds them).
    ends_on_shutdown: bool,
    done: bool,
}

impl<S> Gate<S> {
    /// A gate. At shutdown the stream ends if `ends_on_shutdown` (sources
    /// from outside the application); otherwise it keeps delivering, ignoring the pause, until
    /// its writers finish (feeds between handlers, so that nothing in flight is lost).
    pub(crate) fn new(
        inner: S,
        pause: PauseHandle,
        shutdown: Shutdown,
        ends_on_shutdown: bool,
    ) -> Self {
        Gate {
            inner: Box::pin(inner),
            pause,
            stop: ShutdownPoller::new(shutdown),
            ends_on_shutdown,
            done: false,
        }
    }

    /// The stream inside.
    pub(crate) fn get_mut(&mut self) -> Pin<&mut S> {
        self.inner.as_mut()
    }
}

impl<S: Stream> Stream for Gate<S> {
    type Item = S::Item;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = &mut *self;
        if this.done {
            return Poll::Ready(None);
        }
        let stopping = this.stop.is_triggered();
        if stopping && this.ends_on_shutdown {
            this.done = true;
            return Poll::Ready(None);
        }
        if !stopping && this.pause.inner.paused.load(Ordering::Acquire) {
            this.pause.register(cx.waker());
            if this.stop.poll_triggered(cx) {
                // Shutdown while paused: end, or drain, on the next poll.
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            if this.pause.inner.paused.load(Ordering::Acquire) {
                return Poll::Pending;
            }
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Ready(item) => Poll::Ready(item),
            Poll::Pending => {
                if this.ends_on_shutdown && this.stop.poll_triggered(cx) {
                    this.done = true;
                    return Poll::Ready(None);
                }
                Poll::Pending
            }
        }
    }
}
