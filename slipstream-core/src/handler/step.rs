//! One handler call and the delivery of its outputs: the [`Outbox`] and [`Emitter`] outputs
//! wait in, what an item's failure was, and the three handler shapes (sync, async, async
//! generator) as [`Step`]s. Below: sinks, monitor, panics, error. Must not name the loop
//! (drive), the context, controls or the runtime.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures::FutureExt;

use crate::error::{BoxError, panic_message};
use crate::monitor::ErrorKind;
use crate::panics;
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

pub(super) struct EmitState<T, K> {
    pub(super) sinks: Sinks<T, K>,
    pub(super) failure: Option<BoxError>,
    /// Outputs emitted by the current call.
    pub(super) emitted: usize,
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
    match AssertUnwindSafe(panics::Quiet::new(async { sinks.send(item).await }))
        .catch_unwind()
        .await
    {
        Ok(sent) => sent,
        Err(panic) => Err(panics::describe(&*panic).into()),
    }
}

/// Why one item failed.
pub(super) enum Failure {
    Handler(BoxError),
    /// The panic's message, and where it happened when known.
    Panic(String, Option<String>),
    Sink(BoxError),
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Handler(error) => write!(f, "{error}"),
            Failure::Panic(message, _) => write!(f, "panicked: {message}"),
            Failure::Sink(error) => write!(f, "a sink failed: {error}"),
        }
    }
}

impl Failure {
    pub(super) fn kind(&self) -> ErrorKind {
        match self {
            Failure::Handler(_) => ErrorKind::Handler,
            Failure::Panic(..) => ErrorKind::Panic,
            Failure::Sink(_) => ErrorKind::Sink,
        }
    }
}

/// What handling one item came to.
pub(super) struct Processed {
    /// How many outputs the handler produced.
    pub(super) outputs: usize,
    /// How the handler failed, if it did.
    pub(super) outcome: Option<Failure>,
    /// How delivering its outputs failed, if it did.
    pub(super) delivery: Option<Failure>,
}

/// A handler's sinks, and the buffer its outputs wait in until they are sent.
pub(super) struct Delivery<T, K> {
    sinks: Sinks<T, K>,
    out: Outbox<T>,
}

impl<T: Send + 'static, K: Chain<T>> Delivery<T, K> {
    pub(super) fn new(sinks: Sinks<T, K>) -> Self {
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
        Err(panic) => Some(Failure::Panic(
            panic_message(&*panic),
            panics::take_location(),
        )),
    }
}

/// One handler shape: runs the handler on an item and delivers its outputs.
pub(super) trait Step<In>: Send + 'static {
    /// The failures of the handler and of the delivery of its outputs, if any.
    fn process(&mut self, item: In) -> impl Future<Output = Processed> + Send;

    /// Closes the sinks (the source is drained).
    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

/// A sync handler and its sinks.
pub(super) struct SyncStep<F, T, K> {
    pub(super) handler: F,
    pub(super) delivery: Delivery<T, K>,
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
        let outcome = caught(catch_unwind(AssertUnwindSafe(|| {
            panics::quietly(|| handler(item, out))
        })));
        self.delivery.send(outcome).await
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.delivery.sinks.close()
    }
}

/// An async handler returning at most one output, and its sinks.
pub(super) struct AsyncStep<F, T, K> {
    pub(super) handler: F,
    pub(super) delivery: Delivery<T, K>,
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
        let result = AssertUnwindSafe(panics::Quiet::new((self.handler)(item)))
            .catch_unwind()
            .await;
        let out = &mut self.delivery.out;
        let outcome = caught(result.map(|r| r.map(|output| out.items.extend(output))));
        self.delivery.send(outcome).await
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.delivery.sinks.close()
    }
}

/// An async generator-style handler; its sinks are shared with the [`Emitter`] of each call.
pub(super) struct AsyncGenStep<F, T, K> {
    pub(super) handler: F,
    pub(super) state: Arc<tokio::sync::Mutex<EmitState<T, K>>>,
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
            AssertUnwindSafe(panics::Quiet::new((self.handler)(item, emitter)))
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
