//! `Checkpoint` and `Dependency`: detect a stalled dependency stream by comparing event times,
//! pause the stream that depends on it, and resume (and reprocess) once it has caught up.
//! A component on the runtime's public traits (pause, partition): it must not name the
//! context, controls, handlers or the runtime. Inside, bottom to top: marker, hook,
//! dependency, store, pulse (the checkpoint), builder.

mod builder;
mod dependency;
mod hook;
mod marker;
mod pulse;
mod store;

pub use builder::CheckpointBuilder;
pub use dependency::Dependency;
pub use hook::{IntoHook, hooks};
pub use marker::{CheckpointView, DependencyView, Heartbeat, Marker, State};
pub use pulse::Checkpoint;
pub use store::CheckpointStore;
