//! Exit hooks: what [`on_shutdown`] and [`on_shutdown_async`] register, run once a run has
//! ended. Below: panics and sync. Must not name the app, its handlers or http.

use std::future::Future;
use std::sync::Mutex;

use futures::FutureExt;
use futures::future::BoxFuture;

use crate::panics;
use crate::sync::lock;

/// An exit hook.
pub(super) enum Hook {
    Sync(Box<dyn FnOnce() + Send>),
    Async(BoxFuture<'static, ()>),
}

impl Hook {
    pub(super) async fn call(self) {
        let result = match self {
            Hook::Sync(f) => {
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| panics::quietly(f)))
            }
            Hook::Async(future) => {
                std::panic::AssertUnwindSafe(panics::Quiet::new(future))
                    .catch_unwind()
                    .await
            }
        };
        if let Err(panic) = result {
            tracing::error!(panic = %panics::describe(&*panic), "an exit hook panicked");
        }
    }
}

pub(super) static HOOKS: Mutex<Vec<Hook>> = Mutex::new(Vec::new());

/// Registers a function to call when the next [`run`](crate::run) ends (normally, on a signal, or on an
/// error), after every handler has finished. Hooks run in the order they were registered.
///
/// ```
/// slipstream::on_shutdown(|| println!("bye"));
/// ```
pub fn on_shutdown(hook: impl FnOnce() + Send + 'static) {
    lock(&HOOKS).push(Hook::Sync(Box::new(hook)));
}

/// Like [`on_shutdown`], for an async hook (closing a connection, flushing a client).
///
/// ```
/// slipstream::on_shutdown_async(async { println!("bye") });
/// ```
pub fn on_shutdown_async(hook: impl Future<Output = ()> + Send + 'static) {
    lock(&HOOKS).push(Hook::Async(hook.boxed()));
}
