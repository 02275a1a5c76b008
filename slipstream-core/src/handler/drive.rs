//! The loop every handler runs, and what `#[handle]` calls to start it: read an item, run
//! the handler's step, apply the error policy and the retries, end the item's
//! acknowledgement. Below: the steps, context, controls, monitor, policy, ack. Must not name
//! the runtime, the handle or http.

use std::borrow::Cow;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use futures::{FutureExt, Stream, StreamExt};

use super::step::{
    AsyncGenStep, AsyncStep, Delivery, EmitState, Emitter, Failure, Outbox, Processed, Step,
    SyncStep,
};
use super::support::Cloner;
use crate::ack::{AckScope, Begin, DeadLetter};
use crate::context::BuildCx;
use crate::controls::Controls;
use crate::error::{BoxError, Error};
use crate::monitor::HandlerStats;
use crate::panics;
use crate::policy::{OnError, Retry};
use crate::sink::{Chain, Sinks};

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

/// The name and error policy of a running handler.
struct Runner {
    name: &'static str,
    sources: &'static [&'static str],
    policy: OnError,
    retry: Retry,
    /// What the application does when this handler stops it.
    controls: Arc<Controls>,
    /// The handler's state and counters, reported by the application.
    stats: Option<Arc<HandlerStats>>,
    /// The acknowledgements of the items it handles, when its sources or sinks use them.
    acks: Option<Arc<AckScope>>,
}

impl Runner {
    fn new(cx: &BuildCx<'_>) -> Self {
        Runner {
            name: cx.info.name,
            sources: cx.info.sources,
            policy: cx.policy(),
            retry: cx.retry(),
            controls: Arc::clone(&cx.wiring.controls),
            stats: cx.wiring.controls.monitor.handler(cx.info.name),
            acks: cx.acks.clone(),
        }
    }

    /// Logs and counts one failure; `action` says what follows it.
    #[cold]
    fn report(&self, failure: &Failure, action: &str) {
        let handler = self.name;
        if let Some(counters) = self.stats.as_ref().and_then(|s| s.counters()) {
            counters.error(failure.kind());
        }
        let source = self.sources.join(", ");
        // Where the item came from, when its source says (a Kafka message's partition and offset).
        let item = self.acks.as_ref().and_then(|a| a.describe());
        let item = item.as_deref();
        match failure {
            Failure::Handler(error) => {
                tracing::error!(handler, source, item, error = %error, action, "handler returned an error")
            }
            Failure::Panic(message, at) => {
                let at = at.as_deref();
                tracing::error!(handler, source, item, panic = %message, at, action, "handler panicked")
            }
            Failure::Sink(error) => {
                tracing::error!(handler, source, item, error = %error, action, "a sink failed")
            }
        }
    }

    /// Applies the error policy to a failed item: acknowledges it and goes on (`skip`, or
    /// `dead_letter` once the source has forwarded it), or fails it and returns the error that
    /// stops the application.
    #[cold]
    async fn fail(&self, failure: Failure) -> Result<(), Error> {
        match self.policy {
            OnError::Skip => {
                self.report(&failure, "skipped");
                self.end(true);
                return Ok(());
            }
            OnError::DeadLetter(destination) => {
                self.report(&failure, "dead-lettered");
                let error = failure.to_string();
                let letter = DeadLetter {
                    destination,
                    handler: self.name,
                    error: &error,
                };
                let forward = self.acks.as_ref().and_then(|a| a.dead_letter(&letter));
                let refused = match forward {
                    Some(forward) => match forward.await {
                        Ok(()) => {
                            tracing::info!(
                                handler = self.name,
                                destination,
                                "forwarded the failed item to the dead-letter destination"
                            );
                            self.end(true);
                            return Ok(());
                        }
                        Err(error) => {
                            format!("cannot forward the failed item to `{destination}`: {error}")
                        }
                    },
                    None => format!(
                        "the failed item has no source record to forward to `{destination}`"
                    ),
                };
                tracing::error!(handler = self.name, destination, "{refused}; stopping");
            }
            OnError::Stop => self.report(&failure, "stopping"),
        }
        self.end(false);
        let handler = Cow::Borrowed(self.name);
        Err(match failure {
            Failure::Handler(source) => Error::Handler { handler, source },
            Failure::Panic(message, _) => Error::Panic { handler, message },
            Failure::Sink(source) => Error::Sink { handler, source },
        })
    }

    /// Ends the current item's acknowledgement.
    #[inline]
    fn end(&self, ok: bool) {
        if let Some(acks) = &self.acks {
            acks.end(ok);
        }
    }

    /// Applies the policy to the handler's outcome and then to the delivery of its outputs.
    #[cold]
    async fn settle(
        &self,
        handler: Option<Failure>,
        delivery: Option<Failure>,
    ) -> Result<(), Error> {
        // One item, one policy decision: a handler failure takes precedence.
        match handler.or(delivery) {
            Some(failure) => self.fail(failure).await,
            None => {
                self.end(true);
                Ok(())
            }
        }
    }

    /// Applies the policy to closing the sinks once the source is drained.
    async fn finish(&self, close: impl Future<Output = Result<(), BoxError>>) -> Result<(), Error> {
        let failure = match AssertUnwindSafe(panics::Quiet::new(close))
            .catch_unwind()
            .await
        {
            Ok(Ok(())) => return Ok(()),
            Ok(Err(error)) => Failure::Sink(error),
            Err(panic) => Failure::Sink(panics::describe(&*panic).into()),
        };
        self.fail(failure).await
    }

    /// Waits before retry number `attempt`; false if the application is shutting down.
    async fn backoff(&self, attempt: u32) -> bool {
        let shutdown = self.controls.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(self.retry.wait(attempt)) => true,
            _ = shutdown.wait() => false,
        }
    }
}

/// The loop every handler runs: read an item, process it (retrying it if asked), apply the
/// error policy, end the item's acknowledgement.
fn drive<S, St>(cx: &mut BuildCx<'_>, source: S, mut step: St, cloner: Cloner<S::Item>)
where
    S: Stream + Send + 'static,
    S::Item: Send,
    St: Step<S::Item>,
{
    let runner = Runner::new(cx);
    let retry = (runner.retry.attempts > 0).then_some(cloner).flatten();
    if runner.retry.attempts > 0 && retry.is_none() {
        tracing::warn!(
            handler = runner.name,
            "the handler's input is not `Clone`: it cannot be retried"
        );
    }
    let acks = runner.acks.clone();
    cx.add_task(Box::pin(crate::ack::scoped(acks, async move {
        // Boxed (once per handler) so that it can be dropped before the sinks close.
        let mut source = Box::pin(source);
        let mut budget = Budget::default();
        if let Some(stats) = &runner.stats {
            stats.set_running();
        }
        // Measured only when metrics are enabled: reading the clock costs more than the rest of
        // the loop.
        let counters = runner.stats.as_ref().and_then(|s| s.counters());
        // Whether the loop ended before its source did.
        let mut stopped = false;
        while let Some(item) = source.next().await {
            if let Some(acks) = &runner.acks
                && acks.begin() == Begin::Withdrawn
            {
                // Its source took it back (a revoked partition, a seek): not handled here.
                budget.spend().await;
                continue;
            }
            let started = counters.map(|_| Instant::now());
            let spare = retry.map(|clone| clone(&item));
            let Processed {
                outputs,
                outcome,
                delivery,
            } = step.process(item).await;
            if let (Some(counters), Some(started)) = (counters, started) {
                counters.record(outputs, started.elapsed());
            }
            if outcome.is_none() && delivery.is_none() {
                runner.end(true);
            } else {
                // The failure path, boxed: its futures (the retry's timer, a dead letter) would
                // otherwise weigh on every item.
                let settled = Box::pin(failed(&runner, &mut step, retry, spare, outcome, delivery));
                if let Err(stop) = settled.await {
                    // At once, before the source (and the items it holds) is dropped: nothing
                    // handled after this failure may count as done, and the other handlers stop
                    // while this one's sinks flush.
                    if let Some(error) = stop {
                        runner.controls.fail_handler(runner.name, error);
                    }
                    stopped = true;
                    break;
                }
            }
            budget.spend().await;
        }
        if let Some(acks) = &runner.acks {
            if !stopped {
                acks.finish();
            }
            // What a pipe dropped is done; what it still held when the application stopped or
            // shut down was never handled.
            acks.drain(!stopped && !runner.controls.shutdown.is_triggered());
        }
        // Dropped before the sinks close: what its feeds still hold is settled now.
        drop(source);
        // The sinks are closed (flushed) even when the handler stops the application.
        runner.finish(step.close()).await
    })));
}

/// After a failed try: retries the item (when its input can be cloned), then applies the error
/// policy. `Err(Some(error))` stops the application; `Err(None)` stops this handler at once
/// (shutdown came during a retry's wait: the item is not handled, its source delivers it again).
#[cold]
async fn failed<In, St: Step<In>>(
    runner: &Runner,
    step: &mut St,
    retry: Cloner<In>,
    spare: Option<In>,
    mut outcome: Option<Failure>,
    mut delivery: Option<Failure>,
) -> Result<(), Option<Error>> {
    if let (Some(clone), Some(mut spare)) = (retry, spare) {
        let mut attempt = 0;
        while (outcome.is_some() || delivery.is_some()) && attempt < runner.retry.attempts {
            attempt += 1;
            if let Some(failure) = outcome.as_ref().or(delivery.as_ref()) {
                runner.report(failure, "retrying");
            }
            if !runner.backoff(attempt).await {
                runner.end(false);
                return Err(None);
            }
            let next = clone(&spare);
            let again = step.process(std::mem::replace(&mut spare, next)).await;
            (outcome, delivery) = (again.outcome, again.delivery);
        }
    }
    runner.settle(outcome, delivery).await.map_err(Some)
}

/// Runs a sync handler: `handler` gets each item and queues its outputs.
#[doc(hidden)]
pub fn drive_sync<S, T, K, F>(
    cx: &mut BuildCx<'_>,
    source: S,
    sinks: Sinks<T, K>,
    handler: F,
    cloner: Cloner<S::Item>,
) where
    S: Stream + Send + 'static,
    S::Item: Send,
    T: Send + 'static,
    K: Chain<T>,
    F: FnMut(S::Item, &mut Outbox<T>) -> Result<(), BoxError> + Send + 'static,
{
    let delivery = Delivery::new(sinks);
    drive(cx, source, SyncStep { handler, delivery }, cloner);
}

/// Runs an async handler that returns at most one output per item.
#[doc(hidden)]
pub fn drive_async<S, T, K, F, Fut>(
    cx: &mut BuildCx<'_>,
    source: S,
    sinks: Sinks<T, K>,
    handler: F,
    cloner: Cloner<S::Item>,
) where
    S: Stream + Send + 'static,
    S::Item: Send,
    T: Send + 'static,
    K: Chain<T>,
    F: FnMut(S::Item) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Option<T>, BoxError>> + Send,
{
    let delivery = Delivery::new(sinks);
    drive(cx, source, AsyncStep { handler, delivery }, cloner);
}

/// Runs an async generator-style handler: `handler` gets each item and an [`Emitter`].
#[doc(hidden)]
pub fn drive_async_gen<S, T, K, F, Fut>(
    cx: &mut BuildCx<'_>,
    source: S,
    sinks: Sinks<T, K>,
    handler: F,
    cloner: Cloner<S::Item>,
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
    drive(cx, source, AsyncGenStep { handler, state }, cloner);
}
