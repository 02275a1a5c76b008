//! Sources: what feeds handlers.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::stream::{self, BoxStream, SelectAll};
use futures::{Stream, StreamExt};
use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::ack::{Ack, AckScope};
use crate::context::BuildCx;
use crate::error::Error;
use crate::hub::{Feed, Hub};
use crate::pause::{Gate, Pausable, PauseHandle};
use crate::sync::lock;

/// A source stream, and whether it comes from outside the application.
///
/// External sources (plain streams, timers, topics) stop when the application shuts down;
/// internal feeds (proxies, cache updates) keep delivering until every handler writing into them
/// has finished, so that nothing in flight between handlers is lost.
pub struct SourceStream<S> {
    pub(crate) stream: S,
    pub(crate) external: bool,
}

impl<S> SourceStream<S> {
    /// A stream from outside the application: it stops when the application shuts down.
    pub fn external(stream: S) -> Self {
        SourceStream {
            stream,
            external: true,
        }
    }

    /// A feed written by handlers of this application: it ends when its writers finish.
    pub fn internal(stream: S) -> Self {
        SourceStream {
            stream,
            external: false,
        }
    }
}

/// Anything `#[handle(source = ..)]` accepts.
///
/// Implemented for every `futures::Stream + Send + 'static` (each handler naming such an
/// expression gets its own stream) and for `&'static` shared handles ([`Proxy`](crate::Proxy),
/// [`Shared`], and `LazyLock`s holding them), which are read once and fanned out to every
/// handler that names them. `M` is a marker that keeps the implementations apart; it is always
/// inferred.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// fn numbers() -> impl futures::Stream<Item = u64> {
///     stream::iter(0..3)
/// }
///
/// #[handle(source = numbers(), sink = [print])]
/// fn double(n: u64) -> u64 {
///     n * 2
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a source",
    label = "not a stream or a shared source handle",
    note = "a source is a `futures::Stream + Send + 'static`, or a `static` `Proxy`, `Shared` (or `LazyLock` of one) named by its path"
)]
pub trait IntoSource<M>: Sized {
    /// The items the source yields.
    type Item: Send + 'static;
    /// The stream the handler reads.
    type Stream: Stream<Item = Self::Item> + Send + 'static;

    /// Wires the source up for the handler being built.
    fn into_source(self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Self::Stream>, Error>;
}

/// Marker types that keep the [`IntoSource`] and [`IntoSink`](crate::IntoSink) implementations
/// apart.
pub mod markers {
    /// A plain stream.
    pub enum Stream {}
    /// A shared handle.
    pub enum Handle {}
    /// A stream of items with their acknowledgements.
    pub enum Acked {}
}

impl<S> IntoSource<markers::Stream> for S
where
    S: Stream + Send + 'static,
    S::Item: Send + 'static,
{
    type Item = S::Item;
    type Stream = S;

    fn into_source(self, _cx: &mut BuildCx<'_>) -> Result<SourceStream<S>, Error> {
        Ok(SourceStream::external(self))
    }
}

/// A shared handle that handlers read from: read once per run and fanned out to every handler
/// naming it.
pub trait SourceHandle {
    /// The items it yields.
    type Item: Send + 'static;
    /// A subscription.
    type Stream: Stream<Item = Self::Item> + Send + 'static;

    /// A new subscription for the handler being built.
    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Self::Stream>, Error>;
}

impl<H: SourceHandle, F: FnOnce() -> H> SourceHandle for std::sync::LazyLock<H, F> {
    type Item = H::Item;
    type Stream = H::Stream;

    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<H::Stream>, Error> {
        std::sync::LazyLock::force(self).subscribe(cx)
    }
}

impl<H: SourceHandle + Sync + 'static> IntoSource<markers::Handle> for &'static H {
    type Item = H::Item;
    type Stream = H::Stream;

    fn into_source(self, cx: &mut BuildCx<'_>) -> Result<SourceStream<H::Stream>, Error> {
        self.subscribe(cx)
    }
}

/// A plain stream shared by several handlers: it is read once and every item goes to every
/// handler that names it as a source (each gets a clone), like an iterator shared between
/// Python handlers.
///
/// A stream expression written in `source = ..` is evaluated once *per handler*, so two handlers
/// naming `numbers()` each read their own stream. To feed several handlers from one stream,
/// declare it once as a `Shared` static:
///
/// ```
/// use std::sync::LazyLock;
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// static NUMBERS: LazyLock<Shared<u64>> = LazyLock::new(|| Shared::new(stream::iter(0..3)));
///
/// #[handle(source = NUMBERS, sink = [print])]
/// fn double(n: u64) -> u64 { n * 2 }
///
/// #[handle(source = NUMBERS, sink = [print])]
/// fn square(n: u64) -> u64 { n * n }
/// ```
///
/// The stream is consumed by the first run that uses it; like an exhausted iterator, it yields
/// nothing to later runs. A slow handler slows its siblings (the buffers between them are
/// bounded).
pub struct Shared<T> {
    stream: Mutex<Option<BoxStream<'static, T>>>,
    pause: PauseHandle,
}

impl<T: Clone + Send + 'static> Shared<T> {
    /// Shares `stream` between every handler that names this handle as a source.
    pub fn new(stream: impl Stream<Item = T> + Send + 'static) -> Self {
        Shared {
            stream: Mutex::new(Some(stream.boxed())),
            pause: PauseHandle::new(),
        }
    }
}

impl<T> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("paused", &self.pause.is_paused())
            .finish()
    }
}

impl<T> Pausable for Shared<T> {
    fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }
}

impl<T: Clone + Send + 'static> SourceHandle for Shared<T> {
    type Item = T;
    type Stream = Feed<T>;

    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Feed<T>>, Error> {
        let key = self as *const Self as usize;
        let feed = cx.subscribe(key, || {
            let stream = lock(&self.stream)
                .take()
                .unwrap_or_else(|| stream::empty().boxed());
            Hub::external(stream, self.pause.clone())
        });
        // The hub reads the stream and stops at shutdown; each subscription ends with it.
        Ok(SourceStream::internal(feed))
    }
}

/// A source whose items each come with an [`Ack`]: the way a custom source (a queue, a file
/// tail) learns when each item is done. Every handler the item reaches — directly, or through
/// proxies and pipes downstream — and all their sinks take part; the ack's
/// [`Acknowledge::done`](crate::Acknowledge::done) runs once all of them have finished, and
/// [`failed`](crate::Acknowledge::failed) if any failed it.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
/// use slipstream::{Ack, Acknowledge, acked};
///
/// struct Line(u32);
///
/// impl Acknowledge for Line {
///     fn done(&self) { println!("line {} done", self.0) }
///     fn failed(&self) { println!("line {} failed", self.0) }
/// }
///
/// fn lines() -> impl futures::Stream<Item = (String, Ack)> {
///     stream::iter((1..=2).map(|n| (format!("line {n}"), Ack::new(Line(n)))))
/// }
///
/// #[handle(source = acked(lines()), sink = [print])]
/// fn shout(line: String) -> String {
///     line.to_uppercase()
/// }
/// ```
pub fn acked<T, S>(stream: S) -> Acked<S>
where
    S: Stream<Item = (T, Ack)> + Send + 'static,
{
    Acked { stream }
}

/// The source [`acked`] returns.
#[derive(Debug)]
pub struct Acked<S> {
    stream: S,
}

impl<T, S> IntoSource<markers::Acked> for Acked<S>
where
    S: Stream<Item = (T, Ack)> + Send + 'static,
    T: Send + 'static,
{
    type Item = T;
    type Stream = HandIn<S>;

    fn into_source(self, cx: &mut BuildCx<'_>) -> Result<SourceStream<HandIn<S>>, Error> {
        Ok(SourceStream::external(HandIn {
            stream: Box::pin(self.stream),
            acks: cx.acks(),
        }))
    }
}

/// An [`acked`] source as a handler reads it: each item's ack goes to the handler's scope.
pub struct HandIn<S> {
    stream: Pin<Box<S>>,
    acks: Arc<AckScope>,
}

impl<T, S: Stream<Item = (T, Ack)>> Stream for HandIn<S> {
    type Item = T;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        match self.stream.as_mut().poll_next(cx) {
            Poll::Ready(Some((item, ack))) => {
                self.acks.hand_in(ack);
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S> std::fmt::Debug for HandIn<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandIn").finish_non_exhaustive()
    }
}

/// A stream that ticks every `period`, the first tick at once: the source of timer handlers.
///
/// Each item is the [`Instant`] of the tick. A handler that takes no parameter ignores it. If a
/// handler falls behind, missed ticks are not replayed in a burst: the next tick comes `period`
/// after the late one.
///
/// ```no_run
/// use std::time::Duration;
/// use slipstream::prelude::*;
///
/// #[handle(source = timer(Duration::from_secs(1)))]
/// fn tick() {
///     println!("tick");
/// }
/// ```
///
/// # Panics
///
/// If `period` is zero.
pub fn timer(period: Duration) -> Timer {
    assert!(
        !period.is_zero(),
        "slipstream::timer: the period must be greater than zero"
    );
    Timer {
        period,
        interval: None,
    }
}

/// The stream [`timer`] returns.
#[derive(Debug)]
pub struct Timer {
    period: Duration,
    interval: Option<Interval>,
}

impl Stream for Timer {
    type Item = Instant;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Instant>> {
        let period = self.period;
        let interval = self.interval.get_or_insert_with(|| {
            let mut interval = tokio::time::interval(period);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        interval.poll_tick(cx).map(Some)
    }
}

/// Wires up one source of the handler being built: gated by the handler's pause switch and,
/// for external sources, by shutdown.
#[doc(hidden)]
pub fn source<M, I: IntoSource<M>>(
    cx: &mut BuildCx<'_>,
    input: I,
) -> Result<impl Stream<Item = I::Item> + Send + 'static, Error> {
    let SourceStream { stream, external } = input.into_source(cx)?;
    let pause = cx.wiring.controls.pause_handle(cx.info.name);
    Ok(Gate::new(stream, pause, cx.shutdown(), external))
}

/// Boxes one of several sources of a handler, for [`merge`].
#[doc(hidden)]
pub fn boxed<T>(stream: impl Stream<Item = T> + Send + 'static) -> BoxStream<'static, T> {
    stream.boxed()
}

/// Merges several sources of one handler: items are delivered as each source yields them.
#[doc(hidden)]
pub fn merge<T>(sources: Vec<BoxStream<'static, T>>) -> SelectAll<BoxStream<'static, T>> {
    stream::select_all(sources)
}

/// Applies one `pipe = [..]` stage to a handler's source. A stage may make several items of
/// one: each shares the acknowledgement of the item it was made from.
#[doc(hidden)]
pub fn pipe<T, F, R>(
    cx: &mut BuildCx<'_>,
    stream: impl Stream<Item = T> + Send + 'static,
    stage: F,
) -> R
where
    F: FnOnce(BoxStream<'static, T>) -> R,
    R: Stream + Send + 'static,
{
    if let Some(acks) = &cx.acks {
        acks.set_piped();
    }
    stage(stream.boxed())
}
