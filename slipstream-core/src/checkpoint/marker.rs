//! What a checkpoint compares and shows: [`Marker`]s (event times), the recorded [`State`],
//! the views checks and callbacks get, a [`Heartbeat`]'s answer. Below: error only. Must not
//! name the other checkpoint files, the context or the runtime.

use std::collections::BTreeMap;
use std::fmt::Debug;

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::Error;

/// The dependent stream's state recorded by [`Checkpoint::check_pulse`](crate::Checkpoint::check_pulse) (for example partition
/// → offset): whatever lets the application seek back and reprocess.
pub type State = BTreeMap<String, Value>;

/// A marker: the event time (or another position) of a stream. `chrono` date-times work with
/// the default checks; other types need custom ones.
pub trait Marker: Clone + Debug + Send + Sync + Serialize + DeserializeOwned + 'static {
    /// How far `dependent` is ahead of `dependency`, when markers are times.
    fn lag(dependent: &Self, dependency: &Self) -> Option<TimeDelta>;
}

impl Marker for DateTime<Utc> {
    fn lag(dependent: &Self, dependency: &Self) -> Option<TimeDelta> {
        Some(*dependent - *dependency)
    }
}

impl Marker for NaiveDateTime {
    fn lag(dependent: &Self, dependency: &Self) -> Option<TimeDelta> {
        Some(*dependent - *dependency)
    }
}

macro_rules! untimed {
    ($($t:ty),*) => {$(
        impl Marker for $t {
            fn lag(_: &Self, _: &Self) -> Option<TimeDelta> {
                None
            }
        }
    )*};
}

untimed!(i64, u64, i32, u32, f64, String);

/// What checks and callbacks see of the checkpoint.
#[derive(Clone, Debug)]
pub struct CheckpointView<M> {
    /// The checkpoint's name.
    pub name: String,
    /// The partition of the dependent stream this state is of, when the checkpoint keeps one
    /// per partition (its store follows the dependent topic's partitions); `None` otherwise.
    pub partition: Option<i32>,
    /// The dependent stream's latest state.
    pub state: State,
    /// The dependent stream's latest marker.
    pub state_marker: Option<M>,
}

/// What checks and callbacks see of a dependency.
#[derive(Clone, Debug, PartialEq)]
pub struct DependencyView<M> {
    /// The dependency's name.
    pub name: String,
    /// The dependent's state when the dependency's checkpoint was last recorded.
    pub checkpoint_state: Option<State>,
    /// The dependency's latest marker.
    pub checkpoint_marker: Option<M>,
    /// How far behind the dependency may fall before it counts as down.
    pub downtime_threshold: TimeDelta,
    /// Whether it is down.
    pub is_down: bool,
}

/// What [`Checkpoint::heartbeat`](crate::Checkpoint::heartbeat) tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat<M> {
    /// Whether the dependency is (still) down: its events are behind the dependent's.
    pub is_late: bool,
    /// The dependent stream's latest marker.
    pub dependent_marker: Option<M>,
    /// The dependency's latest marker.
    pub dependency_marker: Option<M>,
}

pub(super) fn checkpoint_error(message: String) -> Error {
    Error::Checkpoint(message)
}
