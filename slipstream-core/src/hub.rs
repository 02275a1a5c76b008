//! Hubs: one feed read once and fanned out to every handler that names it as a source.

use std::any::Any;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::shutdown::Shutdown;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::pause::{Gate, PauseHandle};

/// How many items may wait between a hub and each of its subscribers, and between writers and
/// a hub. Bounded, so a slow handler slows its siblings instead of growing a queue.
pub(crate) const FEED_CAPACITY: usize = 128;

/// Where a hub's items come from.
pub(crate) enum HubInput<T> {
    /// A stream from outside the application (it stops when the application shuts down).
    External(BoxStream<'static, T>),
    /// Handlers writing into it (a proxy, a cache); it ends when every writer has finished.
    Writers {
        tx: mpsc::Sender<T>,
        rx: mpsc::Receiver<T>,
    },
}

/// One shared feed of a run.
pub struct Hub<T> {
    input: HubInput<T>,
    subscribers: Vec<mpsc::Sender<T>>,
    pause: PauseHandle,
}

impl<T: Clone + Send + 'static> Hub<T> {
    /// A hub reading a stream that comes from outside the application.
    pub fn external(stream: BoxStream<'static, T>, pause: PauseHandle) -> Self {
        Hub {
            input: HubInput::External(stream),
            subscribers: Vec::new(),
            pause,
        }
    }

    /// A hub fed by handlers writing into it.
    pub fn writers(pause: PauseHandle) -> Self {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        Hub {
            input: HubInput::Writers { tx, rx },
            subscribers: Vec::new(),
            pause,
        }
    }

    /// A new reader of every item of this hub.
    pub fn subscribe(&mut self) -> Feed<T> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        self.subscribers.push(tx);
        Feed { rx }
    }

    /// A new writer into this hub (`None` for hubs that read an external stream).
    pub fn writer(&mut self) -> Option<mpsc::Sender<T>> {
        match &self.input {
            HubInput::Writers { tx, .. } => Some(tx.clone()),
            HubInput::External(_) => None,
        }
    }
}

/// The type-erased side of a hub the runtime starts.
pub(crate) trait HubSlot: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn start(self: Box<Self>, shutdown: &Shutdown) -> BoxFuture<'static, ()>;
}

impl<T: Clone + Send + 'static> HubSlot for Hub<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn start(self: Box<Self>, shutdown: &Shutdown) -> BoxFuture<'static, ()> {
        let Hub {
            input,
            subscribers,
            pause,
        } = *self;
        match input {
            HubInput::External(stream) => pump(
                Gate::new(stream, pause, shutdown.clone(), true),
                subscribers,
            )
            .boxed(),
            // Dropping `tx` here leaves the writers' handles as the only senders: the feed
            // ends when the last writer finishes.
            HubInput::Writers { tx, rx } => {
                drop(tx);
                pump(
                    Gate::new(Feed { rx }, pause, shutdown.clone(), false),
                    subscribers,
                )
                .boxed()
            }
        }
    }
}

/// Sends every item to every subscriber, in order, waiting for room in each (back-pressure).
async fn pump<T: Clone + Send>(
    stream: impl Stream<Item = T> + Send,
    mut subs: Vec<mpsc::Sender<T>>,
) {
    let mut stream = std::pin::pin!(stream);
    while let Some(item) = stream.next().await {
        let Some((last, rest)) = subs.split_last() else {
            continue;
        };
        let mut gone = Vec::new();
        for (i, sub) in rest.iter().enumerate() {
            if sub.send(item.clone()).await.is_err() {
                gone.push(i);
            }
        }
        if last.send(item).await.is_err() {
            gone.push(subs.len() - 1);
        }
        // A subscriber whose handler stopped no longer receives; the others go on.
        for i in gone.into_iter().rev() {
            subs.remove(i);
        }
    }
}

/// A subscriber's side of a hub: a stream of every item of the hub.
pub struct Feed<T> {
    rx: mpsc::Receiver<T>,
}

impl<T> Stream for Feed<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.rx.poll_recv(cx)
    }
}

impl<T> std::fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").finish_non_exhaustive()
    }
}
