//! The runtime and components of [slipstream](https://docs.rs/slipstream). Applications depend
//! on the `slipstream` crate, which re-exports everything here together with the `#[handle]`
//! macro.

#![warn(missing_docs)]

mod ack;
pub mod checkpoint;
mod context;
mod controls;
mod error;
mod handle;
mod handler;
#[cfg(feature = "http")]
mod http;
mod hub;
mod monitor;
mod panics;
pub mod partition;
mod pause;
mod policy;
mod proxy;
mod runtime;
mod shutdown;
pub mod sink;
pub mod source;
mod sync;

pub use ack::{Ack, Acknowledge, DeadLetter};
pub use checkpoint::{
    Checkpoint, CheckpointBuilder, CheckpointStore, CheckpointView, Dependency, DependencyView,
    Heartbeat, Marker,
};
pub use context::{BuildCx, HandlerInfo, handlers};
pub use error::{BoxError, CacheErrorKind, Error, Result};
pub use handle::AppHandle;
pub use hub::{Feed, Writer};
pub use monitor::{HandlerCounters, HandlerState, HandlerStatus, Health};
pub use pause::{Pausable, PauseHandle};
pub use policy::{OnError, Retry};
pub use proxy::{Proxy, ProxySink};
pub use runtime::{App, on_shutdown, on_shutdown_async, run};
pub use shutdown::Shutdown;
pub use sink::{IntoSink, Print, Sink, SinkHandle, print};
pub use source::{Acked, IntoSource, Shared, SourceHandle, SourceStream, Timer, acked, timer};

/// What slipstream's component crates (`slipstream-kafka`, `slipstream-cache`) build on: the
/// runtime's shared feeds and the consumer reports of the admin server. Not a public API: those
/// crates are released together with this one.
#[doc(hidden)]
pub mod __component {
    pub use crate::ack::AckScope;
    pub use crate::hub::{Hub, Outside};
    pub use crate::monitor::{
        ConsumerProbe, ConsumerStatus, HealthProbe, PartitionReport, RestoreReport,
    };
    pub use crate::pause::PauseChanges;
    pub use crate::sync::lock;
}

/// What `#[handle]` expands to refers to these; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::context::BuildCx;
    pub use crate::context::HandlerInfo;
    pub use crate::handler::{
        CanClone, CannotClone, Emitter, GenReturn, Outbox, clone_probe, drive_async,
        drive_async_gen, drive_sync, emit, handler_error, returning,
    };
    pub use crate::sink::Sinks;
    pub use crate::source::{boxed, merge, pipe, source};
    pub use inventory;
}

#[cfg(test)]
mod layering {
    /// The runtime knows no component: Kafka, the cache and checkpoints reach it only through
    /// its traits (sources, sinks, acknowledgements), as a third party's would.
    #[test]
    fn the_runtime_modules_name_no_component() {
        let runtime = [
            ("handler/mod", include_str!("handler/mod.rs")),
            ("handler/support", include_str!("handler/support.rs")),
            ("handler/step", include_str!("handler/step.rs")),
            ("handler/drive", include_str!("handler/drive.rs")),
            ("context", include_str!("context.rs")),
            ("controls", include_str!("controls.rs")),
            ("runtime/mod", include_str!("runtime/mod.rs")),
            ("runtime/app", include_str!("runtime/app.rs")),
            ("runtime/hooks", include_str!("runtime/hooks.rs")),
            ("runtime/signals", include_str!("runtime/signals.rs")),
            ("handle", include_str!("handle.rs")),
            ("source", include_str!("source.rs")),
            ("sink", include_str!("sink.rs")),
            ("hub", include_str!("hub.rs")),
            ("pause", include_str!("pause.rs")),
            ("policy", include_str!("policy.rs")),
            ("shutdown", include_str!("shutdown.rs")),
            ("ack", include_str!("ack.rs")),
        ];
        for (module, text) in runtime {
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for component in [
                    "kafka",
                    "cache",
                    "checkpoint",
                    "Kafka",
                    "Cache",
                    "Checkpoint",
                ] {
                    assert!(
                        !code.contains(component),
                        "{module}.rs:{}: names `{component}`: {line}",
                        n + 1
                    );
                }
            }
        }
    }
}
