//! What a running application knows about itself: the state and counters of each handler and
//! the partitions of each topic consumer. [`report`] turns it into health, Prometheus metrics
//! and handler statuses.
//!
//! Handler states and consumers are always tracked (a few writes per run). Per-item counters
//! and the processing-time histogram are kept only when metrics are enabled, so the loop of an
//! application that does not scrape them pays one branch per item.
//!
//! Below: policy, pause, error, sync. Must not name the controls, context, handlers, runtime,
//! handle or http. Inside, bottom to top: probe, stats, board, report.

mod board;
mod probe;
mod report;
mod stats;

pub(crate) use board::Monitor;
pub use probe::{ConsumerProbe, ConsumerStatus, HealthProbe, PartitionReport, RestoreReport};
pub use report::{HandlerCounters, HandlerStatus, Health};
pub use stats::HandlerState;
pub(crate) use stats::{ErrorKind, HandlerLabel, HandlerStats};
