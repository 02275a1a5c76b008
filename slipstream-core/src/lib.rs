//! The runtime and components of [slipstream](https://docs.rs/slipstream). Applications depend
//! on the `slipstream` crate, which re-exports everything here together with the `#[handle]`
//! macro.

#![warn(missing_docs)]

#[cfg(feature = "cache")]
pub mod cache;
pub mod checkpoint;
mod codec;
#[cfg(feature = "kafka")]
mod conf;
mod context;
mod error;
mod handler;
#[cfg(feature = "http")]
mod http;
mod hub;
#[cfg(feature = "kafka")]
pub mod kafka;
mod monitor;
mod pause;
mod proxy;
mod registry;
mod runtime;
mod shutdown;
pub mod sink;
pub mod source;
mod sync;

#[cfg(feature = "cache")]
pub use cache::{
    Batch, Cache, CacheErrorKind, CacheKey, CacheOptions, CacheSink, KeyLike, Snapshot,
    Transaction, ValueLike,
};
pub use checkpoint::{
    Checkpoint, CheckpointBuilder, CheckpointView, Dependency, DependencyView, Heartbeat, Marker,
};
pub use codec::{Codec, DefaultCodec, JsonCodec, Raw, Utf8};
#[cfg(feature = "kafka")]
pub use conf::Conf;
pub use context::BuildCx;
pub use error::{BoxError, Error, Result};
pub use hub::Feed;
#[cfg(feature = "kafka")]
pub use kafka::{Message, StartAt, Topic, TopicSink};
pub use monitor::{HandlerCounters, HandlerState, HandlerStatus, Health};
pub use pause::{Pausable, PauseHandle};
pub use proxy::{Proxy, ProxySink};
pub use registry::{HandlerInfo, OnError, handlers};
pub use runtime::{App, AppHandle, on_shutdown, on_shutdown_async, run};
pub use shutdown::Shutdown;
pub use sink::{IntoSink, Print, Sink, SinkHandle, print};
pub use source::{IntoSource, Shared, SourceHandle, SourceStream, Timer, timer};

/// What `#[handle]` expands to refers to these; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::context::BuildCx;
    pub use crate::handler::{
        Emitter, GenReturn, Outbox, drive_async, drive_async_gen, drive_sync, emit, handler_error,
        returning,
    };
    pub use crate::registry::HandlerInfo;
    pub use crate::sink::Sinks;
    pub use crate::source::{boxed, merge, pipe, source};
    pub use inventory;
}
