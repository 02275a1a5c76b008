//! The runtime and components of [slipstream](https://docs.rs/slipstream). Applications depend
//! on the `slipstream` crate, which re-exports everything here together with the `#[handle]`
//! macro.

#![warn(missing_docs)]

pub mod checkpoint;
mod context;
mod error;
mod handler;
#[cfg(feature = "http")]
mod http;
mod hub;
mod monitor;
mod pause;
mod proxy;
mod registry;
mod runtime;
mod shutdown;
pub mod sink;
pub mod source;
mod sync;

pub use checkpoint::{
    Checkpoint, CheckpointBuilder, CheckpointStore, CheckpointView, Dependency, DependencyView,
    Heartbeat, Marker,
};
pub use context::BuildCx;
pub use error::{BoxError, CacheErrorKind, Error, Result};
pub use hub::Feed;
pub use monitor::{HandlerCounters, HandlerState, HandlerStatus, Health};
pub use pause::{Pausable, PauseHandle};
pub use proxy::{Proxy, ProxySink};
pub use registry::{HandlerInfo, OnError, handlers};
pub use runtime::{App, AppHandle, on_shutdown, on_shutdown_async, run};
pub use shutdown::Shutdown;
pub use sink::{IntoSink, Print, Sink, SinkHandle, print};
pub use source::{IntoSource, Shared, SourceHandle, SourceStream, Timer, timer};

/// What slipstream's component crates (`slipstream-kafka`, `slipstream-cache`) build on: the
/// runtime's shared feeds and the consumer reports of the admin server. Not a public API: those
/// crates are released together with this one.
#[doc(hidden)]
pub mod __component {
    pub use crate::context::ItemOrigin;
    pub use crate::hub::Hub;
    pub use crate::monitor::{ConsumerProbe, ConsumerStatus, PartitionReport};
    pub use crate::sync::lock;
}

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
