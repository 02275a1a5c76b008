//! The per-handler loops `#[handle]` generates calls to: read an item, run the handler, send
//! its outputs to the sinks, apply the error policy. Each loop is monomorphic in the source,
//! the handler and the sinks; nothing is boxed or allocated per item. Inside, `drive` sits on
//! `step`, which sits on `support`. Must not name the runtime, the handle or http.

mod drive;
mod step;
mod support;

pub use drive::{drive_async, drive_async_gen, drive_sync};
pub use step::{Emitter, Outbox, emit};
pub use support::{CanClone, CannotClone, GenReturn, clone_probe, handler_error, returning};
