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

    /// Whether `code` names `path` itself (not a longer name starting with it: `crate::handle`
    /// is not `crate::handler`).
    fn names(code: &str, path: &str) -> bool {
        code.match_indices(path).any(|(at, _)| {
            !code[at + path.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    }

    /// Imports go down the layers only. From the bottom: the basics (sync, error, shutdown,
    /// panics, policy, ack, partition, pause, hub); the monitor; the controls; the handlers'
    /// context; sources, sinks, proxies and the handler loops; checkpoints (a component); the
    /// [`AppHandle`](crate::AppHandle); the admin server; the runtime on top. The admin server
    /// sees the run only through the handle.
    #[test]
    fn no_module_names_one_above_it() {
        const ABOVE_BASICS: [&str; 8] = [
            "monitor",
            "controls",
            "context",
            "handler",
            "checkpoint",
            "handle",
            "http",
            "runtime",
        ];
        let above_monitor = &ABOVE_BASICS[1..];
        let above_context = &ABOVE_BASICS[3..];
        let above_handlers = &ABOVE_BASICS[4..];
        let rules: [(&str, &str, &[&str]); 35] = [
            ("sync", include_str!("sync.rs"), &ABOVE_BASICS),
            ("error", include_str!("error.rs"), &ABOVE_BASICS),
            ("shutdown", include_str!("shutdown.rs"), &ABOVE_BASICS),
            ("panics", include_str!("panics.rs"), &ABOVE_BASICS),
            ("policy", include_str!("policy.rs"), &ABOVE_BASICS),
            ("ack", include_str!("ack.rs"), &ABOVE_BASICS),
            ("partition", include_str!("partition.rs"), &ABOVE_BASICS),
            ("pause", include_str!("pause.rs"), &ABOVE_BASICS),
            ("hub", include_str!("hub.rs"), &ABOVE_BASICS),
            ("monitor/mod", include_str!("monitor/mod.rs"), above_monitor),
            (
                "monitor/probe",
                include_str!("monitor/probe.rs"),
                above_monitor,
            ),
            (
                "monitor/stats",
                include_str!("monitor/stats.rs"),
                above_monitor,
            ),
            (
                "monitor/board",
                include_str!("monitor/board.rs"),
                above_monitor,
            ),
            (
                "monitor/report",
                include_str!("monitor/report.rs"),
                above_monitor,
            ),
            ("controls", include_str!("controls.rs"), &ABOVE_BASICS[2..]),
            ("context", include_str!("context.rs"), above_context),
            ("source", include_str!("source.rs"), above_handlers),
            ("sink", include_str!("sink.rs"), above_handlers),
            ("proxy", include_str!("proxy.rs"), above_handlers),
            (
                "handler/mod",
                include_str!("handler/mod.rs"),
                above_handlers,
            ),
            (
                "handler/support",
                include_str!("handler/support.rs"),
                above_handlers,
            ),
            (
                "handler/step",
                include_str!("handler/step.rs"),
                above_handlers,
            ),
            (
                "handler/drive",
                include_str!("handler/drive.rs"),
                above_handlers,
            ),
            // A component: it reaches the runtime through its public traits only.
            (
                "checkpoint/mod",
                include_str!("checkpoint/mod.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/marker",
                include_str!("checkpoint/marker.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/hook",
                include_str!("checkpoint/hook.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/dependency",
                include_str!("checkpoint/dependency.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/store",
                include_str!("checkpoint/store.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/pulse",
                include_str!("checkpoint/pulse.rs"),
                &CHECKPOINT,
            ),
            (
                "checkpoint/builder",
                include_str!("checkpoint/builder.rs"),
                &CHECKPOINT,
            ),
            ("handle", include_str!("handle.rs"), &ABOVE_BASICS[6..]),
            // The run's public surface only.
            ("http", include_str!("http.rs"), &HTTP),
            ("runtime/mod", include_str!("runtime/mod.rs"), &[]),
            ("runtime/hooks", include_str!("runtime/hooks.rs"), &[]),
            ("runtime/signals", include_str!("runtime/signals.rs"), &[]),
        ];
        const CHECKPOINT: [&str; 7] = [
            "controls", "context", "handler", "monitor", "handle", "http", "runtime",
        ];
        const HTTP: [&str; 5] = ["monitor", "controls", "context", "handler", "runtime"];
        // Inside a folder, a file names no sibling above it.
        let siblings: [(&str, &str, &[&str]); 12] = [
            (
                "monitor/probe",
                include_str!("monitor/probe.rs"),
                &["stats", "board", "report"],
            ),
            (
                "monitor/stats",
                include_str!("monitor/stats.rs"),
                &["board", "report"],
            ),
            (
                "monitor/board",
                include_str!("monitor/board.rs"),
                &["report"],
            ),
            (
                "handler/support",
                include_str!("handler/support.rs"),
                &["step", "drive"],
            ),
            ("handler/step", include_str!("handler/step.rs"), &["drive"]),
            (
                "checkpoint/marker",
                include_str!("checkpoint/marker.rs"),
                &["hook", "dependency", "store", "pulse", "builder"],
            ),
            (
                "checkpoint/hook",
                include_str!("checkpoint/hook.rs"),
                &["dependency", "store", "pulse", "builder"],
            ),
            (
                "checkpoint/dependency",
                include_str!("checkpoint/dependency.rs"),
                &["store", "pulse", "builder"],
            ),
            (
                "checkpoint/store",
                include_str!("checkpoint/store.rs"),
                &["pulse", "builder"],
            ),
            (
                "checkpoint/pulse",
                include_str!("checkpoint/pulse.rs"),
                &["builder"],
            ),
            (
                "runtime/hooks",
                include_str!("runtime/hooks.rs"),
                &["app", "signals"],
            ),
            (
                "runtime/signals",
                include_str!("runtime/signals.rs"),
                &["app"],
            ),
        ];
        let crate_paths = rules.map(|(module, text, above)| {
            let paths: Vec<String> = above.iter().map(|m| format!("crate::{m}")).collect();
            (module, text, paths)
        });
        let sibling_paths = siblings.map(|(module, text, above)| {
            let paths: Vec<String> = above.iter().map(|m| format!("super::{m}")).collect();
            (module, text, paths)
        });
        for (module, text, paths) in crate_paths.into_iter().chain(sibling_paths) {
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for path in &paths {
                    assert!(
                        !names(code, path),
                        "{module}.rs:{}: names `{path}`, a layer above it: {line}",
                        n + 1
                    );
                }
            }
        }
    }
}
