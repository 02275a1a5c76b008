//! `Proxy`: passes values from handlers to handlers. Beside sources and sinks, on the
//! context and hubs. Must not name the handler loops, checkpoints, the handle or the runtime.

use std::marker::PhantomData;

use crate::context::BuildCx;
use crate::error::{BoxError, Error};
use crate::hub::{Feed, Hub, Outside, Writer};
use crate::pause::{Pausable, PauseHandle};
use crate::sink::{Sink, SinkHandle};
use crate::source::{SourceHandle, SourceStream};
use crate::sync::lock;
use std::sync::Mutex;

/// A channel between handlers: handlers that name it as a sink write into it, and every handler
/// that names it as a source receives every value written (a clone each).
///
/// Declare it once as a static and name it by its path in `sink = [..]` and `source = ..`.
/// Its feed ends when every handler writing into it has finished, so a finite pipeline through
/// proxies still lets `run()` return; a proxy no handler writes into is fed from outside
/// handlers ([`send`](Proxy::send)) and stays open until shutdown.
///
/// ```
/// use std::sync::LazyLock;
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// static GREETINGS: LazyLock<Proxy<String>> = LazyLock::new(Proxy::new);
///
/// #[handle(source = stream::iter(["🐟"]), sink = [GREETINGS])]
/// fn greet(emoji: &'static str) -> String {
///     format!("Hello {emoji}!")
/// }
///
/// #[handle(source = GREETINGS, sink = [print])]
/// fn shout(greeting: String) -> String {
///     greeting.to_uppercase()
/// }
/// ```
pub struct Proxy<T> {
    pause: PauseHandle,
    /// Publishes into the running feed from outside handlers.
    outside: Mutex<Option<Outside<T>>>,
    _item: PhantomData<fn(T) -> T>,
}

impl<T: Clone + Send + 'static> Proxy<T> {
    /// A new proxy.
    pub fn new() -> Self {
        Proxy {
            pause: PauseHandle::new(),
            outside: Mutex::new(None),
            _item: PhantomData,
        }
    }

    fn key(&'static self) -> usize {
        self as *const Self as usize
    }

    /// The proxy's hub in this run, created by the first handler that names it.
    fn hub<'cx>(&'static self, cx: &'cx mut BuildCx<'_>) -> &'cx mut Hub<T> {
        let hub = cx.hub(self.key(), || Hub::writers(self.pause.clone()));
        *lock(&self.outside) = hub.outside();
        hub
    }

    /// Sends `value` to every handler reading the proxy, from outside handlers (an HTTP
    /// endpoint feeding the pipeline, say), like the original's `await proxy(value)`; waits
    /// for room (back-pressure).
    ///
    /// The running application's feed takes it while it runs: until shutdown when no handler
    /// writes into the proxy, until its last writer finishes otherwise. Fails with
    /// [`Error::NotRunning`] when no running handler reads the proxy.
    ///
    /// ```no_run
    /// use std::sync::LazyLock;
    /// use slipstream::prelude::*;
    ///
    /// static ORDERS: LazyLock<Proxy<String>> = LazyLock::new(Proxy::new);
    ///
    /// #[handle(source = ORDERS, sink = [print])]
    /// fn order(id: String) -> String {
    ///     format!("order {id}")
    /// }
    ///
    /// # async fn endpoint() -> Result<(), slipstream::Error> {
    /// // In an HTTP handler, while `run()` runs:
    /// ORDERS.send("42".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, value: T) -> Result<(), Error> {
        let outside = lock(&self.outside).clone();
        match outside {
            Some(outside) => outside
                .send(value)
                .await
                .map_err(|_| Error::NotRunning("the proxy")),
            None => Err(Error::NotRunning("the proxy")),
        }
    }
}

impl<T: Clone + Send + 'static> Default for Proxy<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> std::fmt::Debug for Proxy<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("paused", &self.pause.is_paused())
            .finish()
    }
}

impl<T> Pausable for Proxy<T> {
    fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }
}

impl<T: Clone + Send + 'static> SourceHandle for Proxy<T> {
    type Item = T;
    type Stream = Feed<T>;

    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Feed<T>>, Error> {
        self.hub(cx);
        let feed = cx.subscribe(self.key(), || unreachable!("created above"));
        Ok(SourceStream::internal(feed))
    }
}

impl<T: Clone + Send + 'static> SinkHandle<T> for Proxy<T> {
    type Sink = ProxySink<T>;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<ProxySink<T>, Error> {
        self.hub(cx);
        let tx = cx
            .writer(self.key(), || unreachable!("created above"))
            .expect("a proxy's hub takes writers");
        Ok(ProxySink { tx })
    }
}

/// A handler's writer into a [`Proxy`]. What it sends carries the acknowledgement of the
/// item the handler is working on: that item is done only once the proxy's readers are done
/// with what was made from it.
#[derive(Debug)]
pub struct ProxySink<T> {
    tx: Writer<T>,
}

impl<T: Send + 'static> Sink<T> for ProxySink<T> {
    async fn send(&mut self, item: T) -> Result<(), BoxError> {
        self.tx
            .send(item)
            .await
            .map_err(|_| "the proxy's feed has stopped".into())
    }
}
