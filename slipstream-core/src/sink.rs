//! Sinks: what receives a handler's outputs.

use std::fmt::Display;
use std::future::{Future, ready};
use std::marker::PhantomData;

use crate::context::BuildCx;
use crate::error::{BoxError, Error};

/// Something that takes a handler's outputs, one at a time, in order.
///
/// Implement it for custom sinks; functions, closures (sync or async), [`print`](const@print),
/// [`Proxy`](crate::Proxy) and the other components already are sinks through [`IntoSink`].
///
/// ```
/// use slipstream::{BoxError, Sink};
///
/// struct Collect(Vec<String>);
///
/// impl Sink<String> for Collect {
///     async fn send(&mut self, item: String) -> Result<(), BoxError> {
///         self.0.push(item);
///         Ok(())
///     }
/// }
/// ```
pub trait Sink<T>: Send + 'static {
    /// Takes one output. The handler waits for it before sending the next one.
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send;

    /// Called once when the handler has finished, after its last output.
    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        ready(Ok(()))
    }
}

/// Anything `#[handle(sink = [..])]` accepts for outputs of type `T`.
///
/// Implemented for every [`Sink<T>`]; for functions and closures taking `T` and returning
/// `()` or `Result<(), E>`, sync or async (`FnMut(T) -> impl Future`); for [`print`](const@print); and for
/// `&'static` shared handles ([`Proxy`](crate::Proxy) or a `LazyLock` of one). `M` is a marker
/// that keeps the implementations apart; it is always inferred.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// async fn store(line: String) {
///     let _ = line;
/// }
///
/// #[handle(source = stream::iter(["a", "b"]), sink = [print, store, |s: String| assert!(!s.is_empty())])]
/// fn shout(s: &'static str) -> String {
///     s.to_uppercase()
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a sink for outputs of type `{T}`",
    label = "this sink does not take `{T}`",
    note = "a sink is a function or closure taking `{T}` (sync or async, returning `()` or `Result<(), E>`), a `Sink<{T}>`, `print`, or a `static` `Proxy<{T}>` named by its path"
)]
pub trait IntoSink<T, M>: Sized {
    /// The sink it becomes.
    type Sink: Sink<T>;

    /// Wires the sink up for the handler being built.
    fn into_sink(self, cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error>;
}

/// Marker types for [`IntoSink`] implementations.
pub mod markers {
    /// A [`Sink`](super::Sink) itself.
    pub enum Sink {}
    /// A sync function returning `()`.
    pub enum Fn {}
    /// A sync function returning `Result<(), E>`.
    pub struct TryFn<E>(std::marker::PhantomData<E>);
    /// An async function returning `()`.
    pub struct AsyncFn<Fut>(std::marker::PhantomData<Fut>);
    /// An async function returning `Result<(), E>`.
    pub struct AsyncTryFn<Fut, E>(std::marker::PhantomData<(Fut, E)>);
    /// A shared handle.
    pub enum Handle {}
    /// [`print`](const@super::print) of a `Display` value.
    pub enum PrintDisplay {}
    /// [`print`](const@super::print) of a pair.
    pub enum PrintPair {}
}

impl<T, S: Sink<T>> IntoSink<T, markers::Sink> for S {
    type Sink = S;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<S, Error> {
        Ok(self)
    }
}

/// A function or closure used as a sink (see [`IntoSink`]).
#[derive(Debug)]
pub struct FnSink<F, M> {
    f: F,
    _marker: PhantomData<fn() -> M>,
}

impl<F, M> FnSink<F, M> {
    fn new(f: F) -> Self {
        FnSink {
            f,
            _marker: PhantomData,
        }
    }
}

impl<T, F> IntoSink<T, markers::Fn> for F
where
    F: FnMut(T) + Send + 'static,
{
    type Sink = FnSink<F, markers::Fn>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(FnSink::new(self))
    }
}

impl<T, F> Sink<T> for FnSink<F, markers::Fn>
where
    F: FnMut(T) + Send + 'static,
{
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        (self.f)(item);
        ready(Ok(()))
    }
}

impl<T, F, E> IntoSink<T, markers::TryFn<E>> for F
where
    F: FnMut(T) -> Result<(), E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    type Sink = FnSink<F, markers::TryFn<E>>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(FnSink::new(self))
    }
}

impl<T, F, E> Sink<T> for FnSink<F, markers::TryFn<E>>
where
    F: FnMut(T) -> Result<(), E> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        ready((self.f)(item).map_err(Into::into))
    }
}

impl<T, F, Fut> IntoSink<T, markers::AsyncFn<Fut>> for F
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    type Sink = FnSink<F, markers::AsyncFn<Fut>>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(FnSink::new(self))
    }
}

impl<T, F, Fut> Sink<T> for FnSink<F, markers::AsyncFn<Fut>>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        let sent = (self.f)(item);
        async move {
            sent.await;
            Ok(())
        }
    }
}

impl<T, F, Fut, E> IntoSink<T, markers::AsyncTryFn<Fut, E>> for F
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    type Sink = FnSink<F, markers::AsyncTryFn<Fut, E>>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(FnSink::new(self))
    }
}

impl<T, F, Fut, E> Sink<T> for FnSink<F, markers::AsyncTryFn<Fut, E>>
where
    F: FnMut(T) -> Fut + Send + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        let sent = (self.f)(item);
        async move { sent.await.map_err(Into::into) }
    }
}

/// A shared handle that handlers write into ([`Proxy`](crate::Proxy), and later topics and
/// caches): each writing handler gets its own writer.
pub trait SinkHandle<T> {
    /// The writer a handler gets.
    type Sink: Sink<T>;

    /// A new writer for the handler being built.
    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error>;
}

impl<T, H: SinkHandle<T>, F: FnOnce() -> H> SinkHandle<T> for std::sync::LazyLock<H, F> {
    type Sink = H::Sink;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<H::Sink, Error> {
        std::sync::LazyLock::force(self).writer(cx)
    }
}

impl<T, H: SinkHandle<T> + Sync + 'static> IntoSink<T, markers::Handle> for &'static H {
    type Sink = H::Sink;

    fn into_sink(self, cx: &mut BuildCx<'_>) -> Result<H::Sink, Error> {
        self.writer(cx)
    }
}

/// The sink that prints each output on its own line of standard output.
///
/// Strings, numbers and every other `Display` type print as they display; a pair `(key,
/// value)` prints as `key value` (both `Display`), like Python's `print(key, value)`.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// #[handle(source = stream::iter([("fish", "🐟")]), sink = [print])]
/// fn pairs(pair: (&'static str, &'static str)) -> (&'static str, &'static str) {
///     pair // prints `fish 🐟`
/// }
/// ```
#[allow(non_upper_case_globals)]
pub const print: Print = Print;

/// The type of [`print`](const@print).
#[derive(Clone, Copy, Debug, Default)]
pub struct Print;

/// The sink [`print`](const@print) becomes for one handler.
#[derive(Debug)]
pub struct PrintSink<M>(PhantomData<fn() -> M>);

impl<T: Display + Send + 'static> IntoSink<T, markers::PrintDisplay> for Print {
    type Sink = PrintSink<markers::PrintDisplay>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(PrintSink(PhantomData))
    }
}

impl<T: Display + Send + 'static> Sink<T> for PrintSink<markers::PrintDisplay> {
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        println!("{item}");
        ready(Ok(()))
    }
}

impl<A, B> IntoSink<(A, B), markers::PrintPair> for Print
where
    A: Display + Send + 'static,
    B: Display + Send + 'static,
{
    type Sink = PrintSink<markers::PrintPair>;

    fn into_sink(self, _cx: &mut BuildCx<'_>) -> Result<Self::Sink, Error> {
        Ok(PrintSink(PhantomData))
    }
}

impl<A, B> Sink<(A, B)> for PrintSink<markers::PrintPair>
where
    A: Display + Send + 'static,
    B: Display + Send + 'static,
{
    fn send(&mut self, (key, value): (A, B)) -> impl Future<Output = Result<(), BoxError>> + Send {
        println!("{key} {value}");
        ready(Ok(()))
    }
}

/// The sinks of one handler, in order; every output goes to each of them (a clone to all but
/// the last). Built by `#[handle]` with [`Sinks::new`] and `add`.
#[doc(hidden)]
pub struct Sinks<T, K> {
    chain: K,
    _item: PhantomData<fn(T)>,
}

/// No sink.
#[doc(hidden)]
pub struct NoSink;

/// The last (or only) sink.
#[doc(hidden)]
pub struct Last<S>(S);

/// Earlier sinks `A` (given a clone) followed by sink `S`.
#[doc(hidden)]
pub struct Tee<A, S>(A, S);

/// A chain of sinks.
#[doc(hidden)]
pub trait Chain<T>: Send + 'static {
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send;
    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send;
}

impl<T> Chain<T> for NoSink {
    fn send(&mut self, _item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        ready(Ok(()))
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        ready(Ok(()))
    }
}

impl<T, S: Sink<T>> Chain<T> for Last<S> {
    fn send(&mut self, item: T) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.0.send(item)
    }

    fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send {
        self.0.close()
    }
}

impl<T: Clone + Send, A: Chain<T>, S: Sink<T>> Chain<T> for Tee<A, S> {
    /// Every sink gets the item even if an earlier one fails; the first error is returned.
    async fn send(&mut self, item: T) -> Result<(), BoxError> {
        let first = self.0.send(item.clone()).await;
        let second = self.1.send(item).await;
        first.and(second)
    }

    async fn close(&mut self) -> Result<(), BoxError> {
        let first = self.0.close().await;
        let second = self.1.close().await;
        first.and(second)
    }
}

impl<T> Sinks<T, NoSink> {
    /// No sink yet.
    pub fn new() -> Self {
        Sinks {
            chain: NoSink,
            _item: PhantomData,
        }
    }

    /// Adds the first sink.
    pub fn add<I: IntoSink<T, M>, M>(
        self,
        cx: &mut BuildCx<'_>,
        sink: I,
    ) -> Result<Sinks<T, Last<I::Sink>>, Error> {
        Ok(Sinks {
            chain: Last(sink.into_sink(cx)?),
            _item: PhantomData,
        })
    }
}

impl<T> Default for Sinks<T, NoSink> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T, S> Sinks<T, Last<S>> {
    /// Adds a second sink.
    #[allow(clippy::type_complexity)]
    pub fn add<I: IntoSink<T, M>, M>(
        self,
        cx: &mut BuildCx<'_>,
        sink: I,
    ) -> Result<Sinks<T, Tee<Last<S>, I::Sink>>, Error> {
        Ok(Sinks {
            chain: Tee(self.chain, sink.into_sink(cx)?),
            _item: PhantomData,
        })
    }
}

impl<T, A, S> Sinks<T, Tee<A, S>> {
    /// Adds one more sink.
    #[allow(clippy::type_complexity)]
    pub fn add<I: IntoSink<T, M>, M>(
        self,
        cx: &mut BuildCx<'_>,
        sink: I,
    ) -> Result<Sinks<T, Tee<Tee<A, S>, I::Sink>>, Error> {
        Ok(Sinks {
            chain: Tee(self.chain, sink.into_sink(cx)?),
            _item: PhantomData,
        })
    }
}

impl<T, K: Chain<T>> Sinks<T, K> {
    /// Sends one output to every sink, in order.
    pub(crate) fn send(
        &mut self,
        item: T,
    ) -> impl Future<Output = Result<(), BoxError>> + Send + '_ {
        self.chain.send(item)
    }

    /// Closes every sink.
    pub(crate) fn close(&mut self) -> impl Future<Output = Result<(), BoxError>> + Send + '_ {
        self.chain.close()
    }
}
