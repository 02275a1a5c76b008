//! Hubs: one feed read once and fanned out to every handler that names it as a source.
//! Below: ack, pause, shutdown. Must not name the monitor, the context or the runtime.

use std::any::Any;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use crate::shutdown::Shutdown;
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{FutureExt, Stream, StreamExt};
use tokio::sync::mpsc;

use crate::ack::{Ack, AckScope};
use crate::pause::{Gate, PauseHandle};

/// How many items may wait between a hub and each of its subscribers, and between writers and
/// a hub. Bounded, so a slow handler slows its siblings instead of growing a queue.
pub(crate) const FEED_CAPACITY: usize = 128;

/// An item on its way through a hub, with its acknowledgement when its source gave it one.
pub(crate) type Envelope<T> = (T, Option<Ack>);

/// Where a hub's items come from.
pub(crate) enum HubInput<T> {
    /// A stream from outside the application (it stops when the application shuts down).
    External(BoxStream<'static, Envelope<T>>),
    /// Handlers writing into it (a proxy, a cache); it ends when every writer has finished.
    Writers {
        tx: mpsc::Sender<Envelope<T>>,
        rx: mpsc::Receiver<Envelope<T>>,
    },
}

/// One shared feed of a run.
pub struct Hub<T> {
    input: HubInput<T>,
    subscribers: Vec<Subscriber<T>>,
    /// Pauses the hub's readers (and, unless the source applies it itself, the hub's input).
    pause: PauseHandle,
    /// Whether the hub's own reading of its input obeys `pause`.
    pump_paused: bool,
    /// How many handlers write into it.
    writers_made: usize,
    shutdown: Shutdown,
}

impl<T: Clone + Send + 'static> Hub<T> {
    /// A hub reading a stream that comes from outside the application, whose items have no
    /// acknowledgement.
    pub fn external(stream: BoxStream<'static, T>, pause: PauseHandle) -> Self {
        Self::external_acked(stream.map(|item| (item, None)).boxed(), pause, true)
    }

    /// A hub reading a stream of items with their acknowledgements. While `pause` is paused
    /// no item reaches a subscriber; `pump_paused` says whether the hub also stops reading its
    /// input then (false for a source that applies the pause itself).
    pub fn external_acked(
        stream: BoxStream<'static, (T, Option<Ack>)>,
        pause: PauseHandle,
        pump_paused: bool,
    ) -> Self {
        Hub {
            input: HubInput::External(stream),
            subscribers: Vec::new(),
            pause,
            pump_paused,
            writers_made: 0,
            shutdown: Shutdown::new(),
        }
    }

    /// A hub fed by handlers writing into it.
    pub fn writers(pause: PauseHandle) -> Self {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        Hub {
            input: HubInput::Writers { tx, rx },
            subscribers: Vec::new(),
            pause,
            pump_paused: true,
            writers_made: 0,
            shutdown: Shutdown::new(),
        }
    }

    /// A new reader of every item of this hub, for a handler whose acknowledgements are kept
    /// in `acks`. Once the hub's pause switch is flipped, nothing more reaches it until resume.
    pub(crate) fn subscribe(&mut self, acks: Option<Arc<AckScope>>) -> Feed<T> {
        let (tx, rx) = mpsc::channel(FEED_CAPACITY);
        let left_done = Arc::new(AtomicBool::new(false));
        self.subscribers.push(Subscriber {
            tx,
            left_done: Arc::clone(&left_done),
        });
        Feed {
            left_done,
            rx: Gate::new(
                Receiver(rx),
                self.pause.clone(),
                self.shutdown.clone(),
                false,
            ),
            acks,
        }
    }

    /// A new writer into this hub (`None` for hubs that read an external stream); what it
    /// sends carries the acknowledgement current in `acks`.
    pub(crate) fn writer(&mut self, acks: Option<Arc<AckScope>>) -> Option<Writer<T>> {
        match &self.input {
            HubInput::Writers { tx, .. } => {
                self.writers_made += 1;
                Some(Writer {
                    tx: tx.clone(),
                    acks,
                })
            }
            HubInput::External(_) => None,
        }
    }

    /// A handle for publishing into this hub from outside handlers while it runs (it does not
    /// keep the hub's feed open). `None` for hubs that read an external stream.
    pub fn outside(&self) -> Option<Outside<T>> {
        match &self.input {
            HubInput::Writers { tx, .. } => Some(Outside(tx.downgrade())),
            HubInput::External(_) => None,
        }
    }

    pub(crate) fn set_shutdown(&mut self, shutdown: &Shutdown) {
        self.shutdown = shutdown.clone();
    }
}

/// The type-erased side of a hub the runtime starts.
pub(crate) trait HubSlot: Send {
    fn as_any(&mut self) -> &mut dyn Any;
    fn start(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl<T: Clone + Send + 'static> HubSlot for Hub<T> {
    fn as_any(&mut self) -> &mut dyn Any {
        self
    }

    fn start(self: Box<Self>) -> BoxFuture<'static, ()> {
        let Hub {
            input,
            subscribers,
            pause,
            pump_paused,
            writers_made,
            shutdown,
        } = *self;
        // A source that applies the pause itself (a topic's consumer) must still be polled
        // while its readers are paused (to stay in its group): the hub goes on reading it,
        // holding back what it yields.
        let (pause, keep_polling) = if pump_paused {
            (pause, None)
        } else {
            (PauseHandle::new(), Some(pause))
        };
        match input {
            HubInput::External(stream) => pump(
                Gate::new(stream, pause, shutdown, true),
                subscribers,
                keep_polling,
                true,
            )
            .boxed(),
            // Dropping `tx` here leaves the writers' handles as the only senders: the feed
            // ends when the last writer finishes. A hub no handler writes into is fed from
            // outside handlers: it stays open until shutdown.
            HubInput::Writers { tx, rx } => {
                let fed = pump(
                    Gate::new(Receiver(rx), pause, shutdown.clone(), false),
                    subscribers,
                    keep_polling,
                    false,
                );
                if writers_made > 0 {
                    drop(tx);
                    fed.boxed()
                } else {
                    async move {
                        let hold = async move {
                            shutdown.wait().await;
                            drop(tx);
                        };
                        futures::join!(fed, hold);
                    }
                    .boxed()
                }
            }
        }
    }
}

/// One reader of a hub.
struct Subscriber<T> {
    tx: mpsc::Sender<Envelope<T>>,
    /// Set when its handler finished reading without failing: what it no longer takes is done
    /// with (not failed).
    left_done: Arc<AtomicBool>,
}

/// Ends an item's acknowledgement as undeliverable to a reader that is gone.
fn undeliverable(ack: Option<Ack>, left_done: bool) {
    if let Some(ack) = ack {
        if left_done { ack.done() } else { ack.fail() }
    }
}

/// Sends every item to every subscriber, in order, waiting for room in each (back-pressure).
/// Each subscriber gets its own holder of the item's acknowledgement. With `keep_polling`
/// (the pause switch of a source that applies it itself), the stream is still polled while
/// paused, and what it yields meanwhile is held back in order. An `external` hub stops reading
/// once all its readers are gone.
async fn pump<T: Clone + Send>(
    stream: impl Stream<Item = Envelope<T>> + Send,
    mut subs: Vec<Subscriber<T>>,
    keep_polling: Option<PauseHandle>,
    external: bool,
) {
    let mut stream = std::pin::pin!(stream);
    let mut changes = keep_polling.as_ref().map(PauseHandle::changes);
    let mut held: VecDeque<Envelope<T>> = VecDeque::new();
    let mut ended = false;
    // A hub no handler reads (a cache only written to) is done with an item at once.
    let unread = subs.is_empty();
    let mut all_left_done = true;
    loop {
        let (item, ack) = match held.pop_front() {
            Some(envelope) => envelope,
            None if ended => break,
            None => match stream.next().await {
                Some(envelope) => envelope,
                None => break,
            },
        };
        if subs.is_empty() {
            undeliverable(ack, unread || all_left_done);
            if external && !unread {
                // Nobody reads it any more.
                break;
            }
            continue;
        }
        let mut item = Some(item);
        let mut ack = ack;
        let last = subs.len() - 1;
        let mut gone = Vec::new();
        for (i, sub) in subs.iter().enumerate() {
            let envelope = if i == last {
                (item.take().expect("the item"), ack.take())
            } else {
                (item.clone().expect("the item"), ack.clone())
            };
            let permit = loop {
                let (Some(pause), Some(changes)) = (&keep_polling, changes.as_mut()) else {
                    break sub.tx.reserve().await;
                };
                let polling = pause.is_paused() && !ended;
                tokio::select! {
                    biased;
                    permit = sub.tx.reserve() => break permit,
                    next = stream.next(), if polling => match next {
                        Some(envelope) => held.push_back(envelope),
                        None => ended = true,
                    },
                    _ = changes.changed() => {}
                }
            };
            match permit {
                Ok(permit) => permit.send(envelope),
                Err(_) => {
                    let left_done = sub.left_done.load(Ordering::Acquire);
                    all_left_done &= left_done;
                    undeliverable(envelope.1, left_done);
                    gone.push(i);
                }
            }
        }
        // A subscriber whose handler stopped no longer receives; the others go on.
        for i in gone.into_iter().rev() {
            subs.remove(i);
        }
    }
}

/// The receiving end of a hub's channel, as a stream.
pub(crate) struct Receiver<T>(mpsc::Receiver<T>);

impl<T> Stream for Receiver<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        self.0.poll_recv(cx)
    }
}

/// A subscriber's side of a hub: a stream of every item of the hub. Each item's
/// acknowledgement goes to the handler's scope as the item is yielded.
pub struct Feed<T> {
    rx: Gate<Receiver<Envelope<T>>>,
    acks: Option<Arc<AckScope>>,
    left_done: Arc<AtomicBool>,
}

impl<T> Drop for Feed<T> {
    /// A handler that finished reading without failing (its pipe took what it wanted, say)
    /// is done with what is left for it; otherwise what is left fails (it was not handled).
    fn drop(&mut self) {
        let finished = self.acks.as_ref().is_some_and(|scope| scope.is_finished());
        if !finished {
            return;
        }
        self.left_done.store(true, Ordering::Release);
        let rx = &mut self.rx.get_mut().get_mut().0;
        rx.close();
        while let Ok((_, ack)) = rx.try_recv() {
            undeliverable(ack, true);
        }
    }
}

impl<T> Stream for Feed<T> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll_next(cx) {
            Poll::Ready(Some((item, ack))) => {
                if let Some(ack) = ack {
                    match &this.acks {
                        Some(scope) => scope.hand_in(ack),
                        // Read outside a handler: taking it is handling it.
                        None => ack.done(),
                    }
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> std::fmt::Debug for Feed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed").finish_non_exhaustive()
    }
}

/// Publishes into a hub from outside handlers, while the hub runs.
pub struct Outside<T>(mpsc::WeakSender<Envelope<T>>);

impl<T> Outside<T> {
    /// Sends `item` into the hub, waiting for room; `Err` (with the item) when the hub's feed
    /// has ended.
    pub async fn send(&self, item: T) -> Result<(), T> {
        match self.0.upgrade() {
            Some(tx) => tx.send((item, None)).await.map_err(|e| e.0.0),
            None => Err(item),
        }
    }
}

impl<T> Clone for Outside<T> {
    fn clone(&self) -> Self {
        Outside(self.0.clone())
    }
}

/// A writer into a hub: what a handler sends through it carries the acknowledgement of the
/// item the handler is working on, so that item is done only once the hub's readers are.
pub struct Writer<T> {
    tx: mpsc::Sender<Envelope<T>>,
    acks: Option<Arc<AckScope>>,
}

impl<T> Writer<T> {
    /// Sends `item` into the hub, waiting for room; `Err` once the hub has stopped reading.
    pub async fn send(&self, item: T) -> Result<(), T> {
        let ack = self.acks.as_ref().and_then(|scope| scope.current());
        self.tx.send((item, ack)).await.map_err(|e| e.0.0)
    }
}

impl<T> Clone for Writer<T> {
    fn clone(&self) -> Self {
        Writer {
            tx: self.tx.clone(),
            acks: self.acks.clone(),
        }
    }
}

impl<T> std::fmt::Debug for Writer<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}
