//! The per-handler loops `#[handle]` generates calls to: read an item, run the handler, send
//! its outputs to the sinks, apply the error policy. Each loop is monomorphic in the source,
//! the handler and the sinks; nothing is boxed or allocated per item.

use std::borrow::Cow;
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, Stream, StreamExt};

use crate::context::{BuildCx, ItemOrigin};
use crate::error::{BoxError, Error, panic_message};
use crate::monitor::{ErrorKind, HandlerStats};
use crate::registry::OnError;
use crate::runtime::Controls;
use crate::sink::{Chain, Sinks};

/// The outputs of one call of a sync handler, sent to the sinks when it returns. Its buffer is
/// reused from item to item.
#[doc(hidden)]
pub struct Outbox<T> {
    items: Vec<T>,
}

impl<T> Outbox<T> {
    fn new() -> Self {
        Outbox { items: Vec::new() }
    }

    /// Queues one output.
    #[inline]
    pub fn push(&mut self, item: T) {
        self.items.push(item);
    }
}

/// The handle an async generator-style handler sends its outputs through (`emit!`): each output
/// reaches every sink before the handler continues.
#[doc(hidden)]
pub struct Emitter<T, K> {
    state: Arc<tokio::sync::Mutex<EmitState<T, K>>>,
}

struct EmitState<T, K> {
    sinks: Sinks<T, K>,
    failure: Option<BoxError>,
    /// Outputs emitted by the current call.
    emitted: usize,
}

/// What `emit!(value)` becomes in an async handler.
#[doc(hidden)]
pub async fn emit<T, K: Chain<T>>(emitter: &Emitter<T, K>, item: T) {
    let mut state = emitter.state.lock().await;
    state.emitted += 1;
    if state.failure.is_none()
        && let Err(error) = send_caught(&mut state.sinks, item).await
    {
        state.failure = Some(error);
    }
}

/// Sends one output to every sink; a sink that panics is a sink failure (not the handler's).
async fn send_caught<T, K: Chain<T>>(sinks: &mut Sinks<T, K>, item: T) -> Result<(), BoxError> {
    // In an async block: a sink may do its work when `send` is called, before it is polled.
    match AssertUnwindSafe(async { sinks.send(item).await })
        .catch_unwind()
        .await
    {
        Ok(sent) => sent,
        Err(panic) => Err(panic_message(&*panic).into()),
    }
}

/// Cooperative scheduling for sources that are always ready (an iterator, a busy channel):
/// every few items the loop spends a unit of tokio's task budget, so a handler never hogs its
/// worker thread and a shutdown signal is always seen. Spending it on every item would cost more
/// than the rest of the loop.
#[derive(Default)]
struct Budget(u8);

impl Budget {
    const EVERY: u8 = 32;

    #[inline]
    async fn spend(&mut self) {
        self.0 += 1;
        if self.0 == Self::EVERY {
            self.0 = 0;
            tokio::task::consume_budget().await;
        }
    }
}

/// Why one item failed.
enum Failure {
    Handler(BoxError),
    Panic(String),
    Sink(BoxError),
}

impl Failure {
    fn kind(&self) -> ErrorKind {
        match self {
            Failure::Handler(_) => ErrorKind::Handler,
            Failure::Panic(_) => ErrorKind::Panic,
            Failure::Sink(_) => ErrorKind::Sink,
        }
    }
}

/// What handling one item came to.
struct Processed {
    /// How many outputs the handler produced.
    outputs: usize,
    /// How the handler failed, if it did.
    outcome: Option<Failure>,
    /// How delivering its outputs failed, if it did.
    delivery: Option<Failure>,
}

/// The name and error policy of a running handler.
struct Runner {
    name: &'static str,
    sources: &'static [&'static str],
    policy: OnError,
    /// What the application does when this handler stops it.
    controls: Arc<Controls>,
    /// The handler's state and counters, reported by the application.
    stats: Option<Arc<HandlerStats>>,
    /// Where the item being handled came from, when its source says.
    origin: Option<Arc<dyn ItemOrigin>>,
}

impl Runner {
    fn new(cx: &BuildCx<'_>) -> Self {
        Runner {
            name: cx.info.name,
            sources: cx.info.sources,
            policy: cx.policy(),
            controls: Arc::clone(&cx.wiring.controls),
            stats: cx.wiring.controls.monitor.handler(cx.info.name),
            origin: cx.origin.clone(),
        }
    }

    /// Applies the error policy: logs and goes on, or returns the error that stops the app.
    #[cold]
    fn fail(&self, failure: Failure) -> Result<(), Error> {
        let handler = self.name;
        let stop = self.policy == OnError::Stop;
        if let Some(counters) = self.stats.as_ref().and_then(|s| s.counters()) {
            counters.error(failure.kind());
        }
        let source = self.sources.join(", ");
        // Where the item came from, when its source says (a Kafka message's partition and offset).
        let (partition, offset) = self
            .origin
            .as_ref()
            .and_then(|c| c.position())
            .map_or((None, None), |(p, o)| (Some(p), Some(o)));
        match &failure {
            Failure::Handler(error) => {
                tracing::error!(handler, source, partition, offset, error = %error, stop, "handler returned an error")
            }
            Failure::Panic(message) => {
                tracing::error!(handler, source, partition, offset, panic = %message, stop, "handler panicked")
            }
            Failure::Sink(error) => {
                tracing::error!(handler, source, partition, offset, error = %error, stop, "a sink failed")
            }
        }
        if !stop {
            return Ok(());
        }
        let handler = Cow::Borrowed(handler);
        Err(match failure {
            Failure::Handler(source) => Error::Handler { handler, source },
            Failure::Panic(message) => Error::Panic { handler, message },
            Failure::Sink(source) => Error::Sink { handler, source },
        })
    }

    /// Applies the policy to the handler's outcome and then to the delivery of its outputs.
    #[cold]
    fn settle(&self, handler: Option<Failure>, delivery: Option<Failure>) -> Result<(), Error> {
        if let Some(failure) = handler {
            self.fail(failure)?;
        }
        if let Some(failure) = delivery {
            self.fail(failure)?;
        }
        Ok(())
    }

    /// Applies the policy to closing the sinks once the source is drained.
    async fn finish(&self, close: impl Future<Output = Result<(), BoxError>>) -> Result<(), Error> {
        match AssertUnwindSafe(close).catch_unwind().await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => self.fail(Failure::Sink(error)),
            Err(panic) => self.fail(Failure::Sink(panic_message(&*panic).into())),
        }
    }
}

/// A handler's sinks, and the buffer its outputs wait in until they are sent.
struct Delivery<T, K> {
    sinks: Sinks<T, K>,
    out: Outbox<T>,
}

impl<T: Send + 'static, K: Chain<T>> Delivery<T, K> {
    fn new(sinks: Sinks<T, K>) -> Self {
        Delivery {
            sinks,
            out: Outbox::new(),
        }
    }

    /// Sends the queued outputs to every sink, in order: what handling the item came to.
    async fn send(&mut self, outcome: Option<Failure>) -> Processed {
        let outputs = self.out.items.len();
        if outputs == 0 {
            return Processed {
                outputs,
                outcome,
                delivery: None,
            };
        }
        let mut delivery = None;
        for item in self.out.items.drain(..) {
            if let Err(error) = send_caught(&mut self.sinks, item).await {
                // The outputs after a failed one are dropped.
                delivery = Some(Failure::Sink(error));
                break;
            }
        }
        Processed {
            outputs,
            outcome,
            delivery,
        }
    }
}

fn caught(result: std::thread::Result<Result<(), BoxError>>) -> Option<Failure> {
    match result {
        Ok(Ok(())) => None,
        Ok(Err(error)) => Some(Failure::Handler(error)),
        Err(panic) => Some(Failure::Panic(panic_message(&*panic))),
    }
}

/// One handler shape: runs the handler on an item and delivers its outputs.
trait Step<In>: Send + 'static {
    /// The failures of the handler and of the delivery of its outputs, if any.
    fn process(&mut self, item: In) -> impl Future<Output = Processed> + Send;

    /// Closes the sinks (the source is drained).
    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// The loop every handler runs: read an item, process it, apply the error policy.
fn drive<S, St>(cx: &mut BuildCx<'_>, source: S, mut step: St)
where
    S: Stream + Send + 'static,
    S::Item: Send,
    St: Step<S::Item>,
{
    let runner = Runner::new(cx);
    cx.add_task(Box::pin(async move {
        let mut source = std::pin::pin!(source);
        let mut budget = Budget::default();
        if let Some(stats) = &runner.stats {
            stats.set_running();
        }
        // Measured only when metrics are enabled: reading the clock costs more than the rest of
        // the loop.
        let counters = runner.stats.as_ref().and_then(|s| s.counters());
        while let Some(item) = source.next().await {
            let started = counters.map(|_| Instant::now());
            let Processed {
                outputs,
                outcome,
                delivery,
            } = step.process(item).await;
            if let (Some(counters), Some(started)) = (counters, started) {
                counters.record(outputs, started.elapsed());
            }
            if (outcome.is_some() || delivery.is_some())
                && let Err(error) = runner.settle(outcome, delivery)
            {
                // At once, before the source (and the messages it holds) is dropped: nothing
                // handled after this failure may count as done, and the other handlers stop
                // while this one's sinks flush.
                runner.controls.fail_handler(runner.name, error);
                break;
            }
            budget.spend().await;
        }
        // The sinks are closed (flushed) even when the handler stops the application.
        runner.finish(step.close()).await
    }));
}

/// A sync handler and its sinks.
struct SyncStep<F, T, K> {
    handler: F,
    delivery: Delivery<T, K>,
}

impl<In, F, T, K> Step<In> for SyncStep<F, T, K>
where
    In: Send,
    F: FnMut(In, &mut Outbox<T>) -> Result<(), BoxError> + Send + 'static,
    T: Send + 'static,
    K: Chain<T>,
{
    async fn process(&mut self, item: In) -> Processed {
        let handler = &mut self.handler;
        let out = &mut self.delivery.out;
        let outcome = caught(catch_unwind(AssertUnwindSafe(|| handler(item, out))));
        self.delivery.send(outcome).await
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.delivery.sinks.close()
    }
}

/// An async handler returning at most one output, and its sinks.
struct AsyncStep<F, T, K> {
    handler: F,
    delivery: Delivery<T, K>,
}

impl<In, F, Fut, T, K> Step<In> for AsyncStep<F, T, K>
where
    In: Send,
    F: FnMut(In) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<T>, BoxError>> + Send,
    T: Send + 'static,
    K: Chain<T>,
{
    async fn process(&mut self, item: In) -> Processed {
        let result = AssertUnwindSafe((self.handler)(item)).catch_unwind().await;
        let out = &mut self.delivery.out;
        let outcome = caught(result.map(|r| r.map(|output| out.items.extend(output))));
        self.delivery.send(outcome).await
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.delivery.sinks.close()
    }
}

/// An async generator-style handler; its sinks are shared with the [`Emitter`] of each call.
struct AsyncGenStep<F, T, K> {
    handler: F,
    state: Arc<tokio::sync::Mutex<EmitState<T, K>>>,
}

impl<In, F, Fut, T, K> Step<In> for AsyncGenStep<F, T, K>
where
    In: Send,
    F: FnMut(In, Emitter<T, K>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
    T: Send + 'static,
    K: Chain<T>,
{
    async fn process(&mut self, item: In) -> Processed {
        let emitter = Emitter {
            state: Arc::clone(&self.state),
        };
        let outcome = caught(
            AssertUnwindSafe((self.handler)(item, emitter))
                .catch_unwind()
                .await,
        );
        let mut state = self.state.lock().await;
        Processed {
            outputs: std::mem::take(&mut state.emitted),
            outcome,
            delivery: state.failure.take().map(Failure::Sink),
        }
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        self.state.lock().await.sinks.close().await
    }
}

/// Runs a sync handler: `handler` gets each item and queues its outputs.
#[doc(hidden)]
pub fn drive_sync<S, T, K, F>(cx: &mut BuildCx<'_>, source: S, sinks: Sinks<T, K>, handler: F)
where
    S: Stream + Send + 'static,
    S::Item: Send,
    T: Send + 'static,
    K: Chain<T>,
    F: FnMut(S::Item, &mut Outbox<T>) -> Result<(), BoxError> + Send + 'static,
{
    let delivery = Delivery::new(sinks);
    drive(cx, source, SyncStep { handler, delivery });
}

/// Runs an async handler that returns at most one output per item.
#[doc(hidden)]
pub fn drive_async<S, T, K, F, Fut>(cx: &mut BuildCx<'_>, source: S, sinks: Sinks<T, K>, handler: F)
where
    S: Stream + Send + 'static,
    S::Item: Send,
    T: Send + 'static,
    K: Chain<T>,
    F: FnMut(S::Item) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<T>, BoxError>> + Send,
{
    let delivery = Delivery::new(sinks);
    drive(cx, source, AsyncStep { handler, delivery });
}

/// Runs an async generator-style handler: `handler` gets each item and an [`Emitter`].
#[doc(hidden)]
pub fn drive_async_gen<S, T, K, F, Fut>(
    cx: &mut BuildCx<'_>,
    source: S,
    sinks: Sinks<T, K>,
    handler: F,
) where
    S: Stream + Send + 'static,
    S::Item: Send,
    T: Send + 'static,
    K: Chain<T>,
    F: FnMut(S::Item, Emitter<T, K>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), BoxError>> + Send,
{
    let state = Arc::new(tokio::sync::Mutex::new(EmitState {
        sinks,
        failure: None,
        emitted: 0,
    }));
    drive(cx, source, AsyncGenStep { handler, state });
}

/// Converts a handler's error into the boxed error the runtime logs or returns.
#[doc(hidden)]
#[inline]
pub fn handler_error<E: Into<BoxError>>(error: E) -> BoxError {
    error.into()
}

/// The return value of a generator-style handler: `()` or `Result<(), E>`.
#[doc(hidden)]
pub trait GenReturn {
    fn into_result(self) -> Result<(), BoxError>;
}

impl GenReturn for () {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> GenReturn for Result<(), E> {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// Pins down the output type of an async block (so that `?` inside it knows its error type).
#[doc(hidden)]
#[inline]
pub fn returning<R, F: Future<Output = R>>(future: F) -> F {
    future
}
