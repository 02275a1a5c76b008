//! `Proxy`: passes values from handlers to handlers.

use std::marker::PhantomData;

use tokio::sync::mpsc;

use crate::context::BuildCx;
use crate::error::{BoxError, Error};
use crate::hub::{Feed, Hub};
use crate::pause::{Pausable, PauseHandle};
use crate::sink::{Sink, SinkHandle};
use crate::source::{SourceHandle, SourceStream};

/// A channel between handlers: handlers that name it as a sink write into it, and every handler
/// that names it as a source receives every value written (a clone each).
///
/// Declare it once as a static and name it by its path in `sink = [..]` and `source = ..`.
/// Its feed ends when every handler writing into it has finished, so a finite pipeline through
/// proxies still lets `run()` return.
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
    _item: PhantomData<fn(T) -> T>,
}

impl<T: Clone + Send + 'static> Proxy<T> {
    /// A new proxy.
    pub fn new() -> Self {
        Proxy {
            pause: PauseHandle::new(),
            _item: PhantomData,
        }
    }

    fn hub<'cx>(&'static self, cx: &'cx mut BuildCx<'_>) -> &'cx mut Hub<T> {
        let key = self as *const Self as usize;
        cx.hub(key, || Hub::writers(self.pause.clone()))
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
        Ok(SourceStream::internal(self.hub(cx).subscribe()))
    }
}

impl<T: Clone + Send + 'static> SinkHandle<T> for Proxy<T> {
    type Sink = ProxySink<T>;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<ProxySink<T>, Error> {
        let tx = self.hub(cx).writer().expect("a proxy's hub takes writers");
        Ok(ProxySink { tx })
    }
}

/// A handler's writer into a [`Proxy`].
#[derive(Debug)]
pub struct ProxySink<T> {
    tx: mpsc::Sender<T>,
}

impl<T: Send + 'static> Sink<T> for ProxySink<T> {
    async fn send(&mut self, item: T) -> Result<(), BoxError> {
        self.tx
            .send(item)
            .await
            .map_err(|_| "the proxy's feed has stopped".into())
    }
}
