//! # slipstream
//!
//! Stateful stream processing for Rust: annotate plain functions with
//! [`#[handle(source = .., sink = [..])]`](macro@handle), call [`run`] from `main`, and every
//! registered handler is fed from its sources and sends what it produces to its sinks.
//!
//! ```no_run
//! use futures::stream::{self, Stream};
//! use slipstream::prelude::*;
//!
//! fn messages() -> impl Stream<Item = &'static str> {
//!     stream::iter(["🏆", "📞", "🐟", "👌"])
//! }
//!
//! #[handle(source = messages(), sink = [print])]
//! fn hello(msg: &'static str) -> String {
//!     format!("Hello {msg}!")
//! }
//!
//! #[tokio::main]
//! async fn main() -> anyhow::Result<()> {
//!     slipstream::run().await?; // returns when every finite source is drained
//!     Ok(())
//! }
//! ```
//!
//! ## Handlers
//!
//! A handler is a `fn` or `async fn` with zero parameters (timer style) or one (the item of its
//! source). What it returns is sent to every sink, in order:
//!
//! | returns | sends |
//! |---|---|
//! | `()` | nothing |
//! | `T` | one value |
//! | `Option<T>` | zero or one value |
//! | `Result<T, E>` | the `Ok` value; an `Err` goes to the error policy |
//! | `Result<Option<T>, E>` | the `Ok(Some(..))` value; an `Err` goes to the error policy |
//! | `()` or `Result<(), E>` with [`emit!`] in the body | every emitted value |
//!
//! In an `async fn`, each `emit!` reaches the sinks before the body continues
//! (back-pressure); in a sync fn, emitted values reach the sinks, in order, when it returns.
//!
//! ## Sources and sinks
//!
//! Sources: any `futures::Stream + Send + 'static`, [`timer`], a Kafka [`Topic`] (its
//! [`Message`]s), a [`Cache`]'s update feed, a [`Proxy`], a [`Shared`] stream. Sinks:
//! [`print`](const@print), any function or closure (sync or async), a [`Topic`] or a [`Cache`]
//! (`(key, value)` pairs), a [`Proxy`], any [`Sink`]. Shared handles (topics, caches, proxies,
//! shared streams) are `static`s named by their path; a source
//! named by several handlers is read once and fanned out to all of them.
//!
//! `source`, `sink` and `pipe` expressions are evaluated once, when [`run`] starts.
//!
//! ## Errors
//!
//! An item a handler fails on (it returns `Err`, panics, or a sink refuses an output) is never
//! lost silently. By default the application stops before the item is acknowledged — its
//! source (a Kafka offset) delivers it again after a restart — and [`run`] returns the error.
//! `#[handle(on_error = "skip")]` logs, counts and skips it instead, `#[handle(dead_letter =
//! "topic")]` forwards its source record to a dead-letter topic, and `#[handle(retry = 3)]`
//! tries it again first (per app: [`App::on_error`], [`App::retry`]; see [`OnError`], [`Retry`]).
//!
//! ## Acknowledgements
//!
//! Each item of a source may carry an [`Ack`]: it travels with the item to every handler it
//! reaches, through proxies, shared streams, pipes and cache feeds, and into the sinks still
//! delivering what was made from it; the source hears that the item is done once all of them
//! are, or that it failed. Kafka topics commit an offset only when it and every earlier offset
//! of its partition are done. A custom source uses the same machinery with [`acked`].
//!
//! ## Kafka
//!
//! [`Topic`] reads and writes Kafka topics with librdkafka: global settings with [`Conf::set`],
//! per-topic settings with `.conf([..])`, `SLIPSTREAM_*` environment variables over both; codecs
//! ([`Utf8`], [`Raw`], [`JsonCodec`], or your own [`Codec`]); at-least-once delivery (an offset is
//! committed only after every handler reading the message, and all their sinks, are done with
//! it). `bootstrap.servers = "embedded"` starts an in-process development broker.
//!
//! ## Cache
//!
//! [`Cache`] keeps state in RocksDB: typed keys that iterate in their natural order
//! ([`CacheKey`]: numbers, timestamps, strings, tuples), serde values, ranges, prefixes, batches,
//! snapshots, column families and per-key transactions. As a sink it stores each `(key, value)`
//! and publishes it to its update feed, which is a source. [`Cache::follow`] makes its state
//! follow the partitions of a topic read by several instances in a consumer group (a column
//! family per partition, a compacted changelog topic, restoration when partitions are assigned);
//! [`Cache::replicate`] makes it a replica every instance holds whole, fed from every partition
//! of a topic (or of a following cache's changelog).
//!
//! ## Checkpoints
//!
//! A [`Checkpoint`] ties a dependent stream to the streams it depends on by comparing event times
//! ([`Checkpoint::heartbeat`], [`Checkpoint::check_pulse`]): it pauses the dependent stream while
//! a [`Dependency`] is down and resumes it, with callbacks to reprocess, once it has caught up.
//!
//! ## Shutdown
//!
//! [`run`] returns once every finite source is drained and everything downstream delivered.
//! Ctrl-C / SIGTERM stop the sources, let in-flight items finish, close the sinks and run the
//! exit hooks ([`on_shutdown`]); a second signal exits at once.
//!
//! ## Health and metrics
//!
//! [`AppHandle::health`], [`AppHandle::metrics`] (Prometheus text) and
//! [`AppHandle::handler_status`] report on a running application: each handler's state and, with
//! [`App::metrics`], its items, outputs, errors and processing times; each topic partition's
//! position, committed offset and lag. With the cargo feature `http`, `App::http(addr)` or the
//! `SLIPSTREAM_HTTP_ADDR` environment variable serves them as `GET /health`, `GET /metrics` and
//! `GET /handlers`.
//!
//! ## Cargo features
//!
//! - `kafka` (default): [`Topic`], [`Conf`] and the codecs (librdkafka, built from source), from
//!   the `slipstream-kafka` crate; also reachable as [`slipstream::kafka`](mod@kafka).
//! - `cache` (default): [`Cache`] (RocksDB, built from source), from the `slipstream-cache`
//!   crate; also reachable as [`slipstream::cache`](mod@cache).
//! - `http`: the admin server.
//!
//! Without `kafka` and `cache` (`default-features = false`), nothing is compiled from C or C++.

#![warn(missing_docs)]

pub use slipstream_core::*;

/// Kafka topics (the `slipstream-kafka` crate).
#[cfg(feature = "kafka")]
pub use slipstream_kafka as kafka;
#[cfg(feature = "kafka")]
pub use slipstream_kafka::{
    Codec, Conf, DefaultCodec, JsonCodec, Message, Nullable, Raw, Record, StartAt, Topic,
    TopicSink, Utf8,
};

/// The persistent cache (the `slipstream-cache` crate).
#[cfg(feature = "cache")]
pub use slipstream_cache as cache;
#[cfg(feature = "cache")]
pub use slipstream_cache::{
    Batch, Cache, CacheKey, CacheOptions, CacheSink, KeyLike, Snapshot, Transaction, ValueLike,
};

/// Registers a function as a handler: the runtime feeds it every item of its sources and sends
/// what it returns (or [`emit!`]s) to its sinks.
///
/// Arguments:
/// - `source = EXPR` or `source = [EXPR, ..]` (required): streams, [`timer`]s, or `static`
///   shared handles ([`Proxy`], [`Shared`]) named by their path. Several sources are merged.
/// - `sink = [EXPR, ..]`: every output goes to every sink, in order.
/// - `pipe = [EXPR, ..]`: stream stages applied to the source before the handler, each a
///   `FnOnce(BoxStream<'static, T>) -> impl Stream<Item = U>`. Acknowledgements pass through:
///   an item a stage drops is acknowledged with the next item it yields (or when the source
///   ends), items it batches are acknowledged together, and items it makes of one share that
///   one's acknowledgement. A stage that reads ahead of what it yields (`buffered`) hands the
///   acknowledgements of what it has read to the next item it yields.
/// - `name = ".."`: the handler's name (the function's name by default).
/// - `on_error = "stop" | "skip"`, or `dead_letter = "topic"`: the error policy (see
///   [`OnError`]; `stop` by default).
/// - `retry = N`, `backoff_ms = N`: try a failed item N more times, waiting `backoff_ms`
///   (100 by default, doubling) before each (see [`Retry`]).
/// - `crate = path`: where the `slipstream` crate is, if it was renamed.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// #[handle(source = stream::iter(0..5u64), sink = [print])]
/// fn evens(n: u64) {
///     if n.is_multiple_of(2) {
///         emit!(format!("even: {n}"));
///     }
/// }
/// ```
pub use slipstream_macros::handle;

/// Sends a value to the outputs of the handler it is written in; `emit!(key, value)` sends the
/// pair `(key, value)`. Only valid inside a function annotated with [`#[handle]`](macro@handle),
/// which rewrites every `emit!` of its body; anywhere else it is a compile error.
///
/// ```
/// use futures::stream;
/// use slipstream::prelude::*;
///
/// #[handle(source = stream::iter(["a b", "c"]), sink = [print])]
/// fn words(line: &'static str) {
///     for word in line.split(' ') {
///         emit!(word);
///     }
/// }
/// ```
#[macro_export]
macro_rules! emit {
    ($($value:tt)*) => {
        ::core::compile_error!(
            "`emit!` can only be used in the body of a function annotated with `#[slipstream::handle]`"
        )
    };
}

/// Everything a slipstream application usually needs: `use slipstream::prelude::*;`.
pub mod prelude {
    pub use crate::emit;
    #[cfg(feature = "cache")]
    pub use slipstream_cache::Cache;
    pub use slipstream_core::{
        App, IntoSink, IntoSource, OnError, Pausable, Proxy, Shared, Sink, print, run, timer,
    };
    pub use slipstream_core::{Checkpoint, Dependency};
    #[cfg(feature = "kafka")]
    pub use slipstream_kafka::{Conf, Message, StartAt, Topic};
    pub use slipstream_macros::handle;
}

#[doc(hidden)]
pub mod __private {
    pub use slipstream_core::__private::*;
}
