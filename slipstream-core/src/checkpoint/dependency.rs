//! A [`Dependency`] as configured and as recorded ([`Inner`], one record of the dependent
//! stream), with the default downtime and recovery checks. Below: marker, hook, pause. Must
//! not name the checkpoint itself (pulse, builder), the context or the runtime.

use chrono::{DateTime, TimeDelta, Utc};
use std::fmt::Debug;

use super::hook::{CheckFn, IntoHook};
use super::marker::{CheckpointView, DependencyView, Marker, State};
use crate::error::BoxError;
use crate::pause::{Pausable, PauseHandle};

/// A stream the dependent stream of a [`Checkpoint`](crate::Checkpoint) depends on (its "heartbeat").
///
/// ```
/// use chrono::TimeDelta;
/// use slipstream::{Dependency, PauseHandle};
///
/// let weather = Dependency::<chrono::DateTime<chrono::Utc>>::new("weather", &PauseHandle::new())
///     .downtime_threshold(TimeDelta::minutes(15));
/// assert_eq!(weather.name(), "weather");
/// ```
pub struct Dependency<M = DateTime<Utc>> {
    pub(super) name: String,
    source: PauseHandle,
    downtime_threshold: TimeDelta,
    pub(super) downtime_check: Option<CheckFn<M, Option<TimeDelta>>>,
    pub(super) recovery_check: Option<CheckFn<M, bool>>,
    pub(super) checkpoint_state: Option<State>,
    pub(super) checkpoint_marker: Option<M>,
    pub(super) is_down: bool,
}

impl<M: Marker> Dependency<M> {
    /// A dependency called `name` (the name keys its persisted checkpoint: keep it stable),
    /// on the stream `source`.
    pub fn new(name: impl Into<String>, source: &impl Pausable) -> Self {
        Dependency {
            name: name.into(),
            source: source.pause_handle(),
            downtime_threshold: TimeDelta::minutes(10),
            downtime_check: None,
            recovery_check: None,
            checkpoint_state: None,
            checkpoint_marker: None,
            is_down: false,
        }
    }

    /// How far the dependency may fall behind the dependent stream before it counts as down
    /// (10 minutes by default).
    pub fn downtime_threshold(mut self, threshold: TimeDelta) -> Self {
        self.downtime_threshold = threshold;
        self
    }

    /// Replaces the check that tells downtime (by default: the dependent's marker minus the
    /// dependency's, when above the threshold). Returns the downtime, or `None`.
    pub fn downtime_check<S>(mut self, check: impl IntoHook<M, Option<TimeDelta>, S>) -> Self {
        self.downtime_check = Some(check.into_hook());
        self
    }

    /// Replaces the check that tells recovery (by default: the dependency's marker is past the
    /// dependent's).
    pub fn recovery_check<S>(mut self, check: impl IntoHook<M, bool, S>) -> Self {
        self.recovery_check = Some(check.into_hook());
        self
    }

    /// The dependency's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The dependency's stream.
    pub fn source(&self) -> &PauseHandle {
        &self.source
    }

    /// The dependency as configured, with nothing recorded (a partition's checkpoint starts so).
    fn fresh(&self) -> Self {
        Dependency {
            name: self.name.clone(),
            source: self.source.clone(),
            downtime_threshold: self.downtime_threshold,
            downtime_check: self.downtime_check.clone(),
            recovery_check: self.recovery_check.clone(),
            checkpoint_state: None,
            checkpoint_marker: None,
            is_down: false,
        }
    }

    pub(super) fn view(&self) -> DependencyView<M> {
        DependencyView {
            name: self.name.clone(),
            checkpoint_state: self.checkpoint_state.clone(),
            checkpoint_marker: self.checkpoint_marker.clone(),
            downtime_threshold: self.downtime_threshold,
            is_down: self.is_down,
        }
    }
}

fn markers_error<M: Debug>(check: &str, c: &CheckpointView<M>, d: &DependencyView<M>) -> BoxError {
    format!(
        "the default {check} compares date-time markers; got {:?} and {:?}: give the dependency a custom {check}",
        c.state_marker, d.checkpoint_marker
    )
    .into()
}

pub(super) fn default_downtime<M: Marker>(
    c: &CheckpointView<M>,
    d: &DependencyView<M>,
) -> Result<Option<TimeDelta>, BoxError> {
    let (Some(dependent), Some(dependency)) = (&c.state_marker, &d.checkpoint_marker) else {
        return Err(markers_error("downtime_check", c, d));
    };
    let lag = M::lag(dependent, dependency).ok_or_else(|| markers_error("downtime_check", c, d))?;
    Ok((lag > d.downtime_threshold).then_some(lag))
}

pub(super) fn default_recovery<M: Marker>(
    c: &CheckpointView<M>,
    d: &DependencyView<M>,
) -> Result<bool, BoxError> {
    let (Some(dependent), Some(dependency)) = (&c.state_marker, &d.checkpoint_marker) else {
        return Err(markers_error("recovery_check", c, d));
    };
    let lag = M::lag(dependent, dependency).ok_or_else(|| markers_error("recovery_check", c, d))?;
    Ok(lag < TimeDelta::zero())
}

/// A checkpoint's record of the dependent stream (or of one of its partitions).
pub(super) struct Inner<M> {
    pub(super) state: State,
    pub(super) state_marker: Option<M>,
    pub(super) dependencies: Vec<Dependency<M>>,
    /// Which dependency recovered last, while one of another partition was still down: the
    /// recovery callback runs once none is.
    pub(super) recovered: Option<usize>,
}

impl<M: Marker> Inner<M> {
    pub(super) fn new(template: &[Dependency<M>]) -> Self {
        Inner {
            state: State::new(),
            state_marker: None,
            dependencies: template.iter().map(Dependency::fresh).collect(),
            recovered: None,
        }
    }
}

pub(super) fn views<M: Marker>(
    name: &str,
    partition: Option<i32>,
    inner: &Inner<M>,
) -> (CheckpointView<M>, Vec<DependencyView<M>>) {
    (
        view(name, partition, inner),
        inner.dependencies.iter().map(Dependency::view).collect(),
    )
}

pub(super) fn view<M: Marker>(
    name: &str,
    partition: Option<i32>,
    inner: &Inner<M>,
) -> CheckpointView<M> {
    CheckpointView {
        name: name.to_owned(),
        partition,
        state: inner.state.clone(),
        state_marker: inner.state_marker.clone(),
    }
}
