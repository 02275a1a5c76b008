//! The [`Checkpoint`] itself and what it does while the application runs: heartbeats of the
//! dependencies, pulses of the dependent stream, pausing and resuming it, persisting each
//! record. Below: dependency, marker, hook, store, partition, pause. Must not name the
//! builder, the context or the runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use super::dependency::{Dependency, Inner, default_downtime, default_recovery, view, views};
use super::hook::CallbackFn;
use super::marker::{CheckpointView, DependencyView, Heartbeat, Marker, State, checkpoint_error};
use super::store::{CheckpointStore, keys, load};
use crate::error::Error;
use crate::pause::PauseHandle;
use crate::sync::lock;

/// A checkpoint's records: one, or one per partition of the dependent stream held here.
pub(super) struct Parts<M> {
    /// The dependencies as configured.
    pub(super) template: Vec<Dependency<M>>,
    /// Each partition's record (`None`: the only one of a checkpoint kept whole), with the
    /// store's number of the assignment it was loaded in.
    pub(super) parts: BTreeMap<Option<i32>, (u64, Inner<M>)>,
    /// Each dependency's latest heartbeat, given to the partitions loaded later.
    pub(super) heartbeats: Vec<Option<M>>,
    /// The partition whose pulse was checked last (what [`Checkpoint::view`] shows).
    pub(super) last: Option<i32>,
    /// Whether this checkpoint paused the dependent stream.
    pub(super) paused: bool,
}

/// Ties a dependent stream to the streams it depends on: when a dependency's events fall behind
/// the dependent's by more than its threshold, the dependent stream is paused (a topic pauses
/// its consumer) and a downtime callback runs; once every dependency has caught up it is
/// resumed and a recovery callback runs — which can seek the dependent topic back to the state
/// recorded at the checkpoint and reprocess what was handled with stale data.
///
/// A cheap handle: clones share the checkpoint. Operations run one at a time; callbacks must
/// not call the checkpoint's own `heartbeat` or `check_pulse`.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), slipstream::Error> {
/// use chrono::{TimeDelta, TimeZone, Utc};
/// use slipstream::{Checkpoint, Dependency, PauseHandle};
///
/// let (activities, weather) = (PauseHandle::new(), PauseHandle::new());
/// let checkpoint = Checkpoint::new("activities", &activities, [Dependency::new("weather", &weather)]);
/// let at = |h, m| Utc.with_ymd_and_hms(2025, 1, 1, h, m, 0).unwrap();
///
/// checkpoint.check_pulse(at(10, 0), [("offset", 8)]).await?;
/// assert!(!checkpoint.heartbeat(at(10, 30)).await?.is_late);
/// assert_eq!(checkpoint.check_pulse(at(11, 0), [("offset", 9)]).await?, Some(TimeDelta::minutes(30)));
/// assert!(activities.is_paused());
/// assert!(checkpoint.heartbeat(at(10, 45)).await?.is_late);
/// assert!(!checkpoint.heartbeat(at(11, 1)).await?.is_late);
/// assert!(!activities.is_paused());
/// # Ok(()) }
/// ```
pub struct Checkpoint<M = DateTime<Utc>> {
    pub(super) shared: Arc<Shared<M>>,
}

impl<M> Clone for Checkpoint<M> {
    fn clone(&self) -> Self {
        Checkpoint {
            shared: Arc::clone(&self.shared),
        }
    }
}

pub(super) struct Shared<M> {
    pub(super) name: String,
    pub(super) dependent: PauseHandle,
    pub(super) pause_dependent: bool,
    pub(super) downtime_callback: Option<CallbackFn<M>>,
    pub(super) recovery_callback: Option<CallbackFn<M>>,
    pub(super) store: Option<&'static dyn CheckpointStore>,
    pub(super) inner: tokio::sync::Mutex<Parts<M>>,
    /// The latest views, readable without waiting for an operation.
    pub(super) views: Mutex<(CheckpointView<M>, Vec<DependencyView<M>>)>,
}

impl<M: Marker> Checkpoint<M> {
    /// The checkpoint's name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The dependency called `name`, as it is now (`checkpoint["name"]` in the original).
    pub fn dependency(&self, name: &str) -> Option<DependencyView<M>> {
        let views = lock(&self.shared.views);
        views.1.iter().find(|d| d.name == name).cloned()
    }

    /// The dependent stream's latest state and marker.
    pub fn view(&self) -> CheckpointView<M> {
        lock(&self.shared.views).0.clone()
    }

    fn publish(&self, partition: Option<i32>, inner: &Inner<M>) {
        *lock(&self.shared.views) = views(&self.shared.name, partition, inner);
    }

    fn persist(
        &self,
        partition: Option<i32>,
        key: String,
        value: &impl Serialize,
    ) -> Result<(), Error> {
        if let Some(store) = self.shared.store {
            let value = serde_json::to_value(value).map_err(|e| checkpoint_error(e.to_string()))?;
            match partition {
                Some(partition) => store.save_in(partition, &key, &value)?,
                None => store.save(&key, &value)?,
            }
        }
        Ok(())
    }

    fn save_checkpoint(
        &self,
        partition: Option<i32>,
        dependency: &mut Dependency<M>,
        state: &State,
        marker: Option<M>,
    ) -> Result<(), Error> {
        let (name, dependency_name) = (&self.shared.name, &dependency.name);
        self.persist(
            partition,
            keys::dependency_state(name, dependency_name),
            state,
        )?;
        self.persist(
            partition,
            keys::dependency_marker(name, dependency_name),
            &marker,
        )?;
        dependency.checkpoint_state = Some(state.clone());
        dependency.checkpoint_marker = marker;
        Ok(())
    }

    /// The partition whose record a pulse checked now goes to: `None` for a checkpoint kept
    /// whole; the item's partition for one kept per partition.
    fn pulse_partition(&self) -> Result<Option<i32>, Error> {
        if self.shared.store.and_then(|s| s.held()).is_none() {
            return Ok(None);
        }
        match crate::partition::origin() {
            Some(origin) => Ok(Some(origin.partition)),
            None => Err(checkpoint_error(format!(
                "checkpoint `{}` keeps its state per partition of the dependent topic (its cache follows the topic): check its pulse in a handler reading that topic",
                self.shared.name
            ))),
        }
    }

    /// The record of `partition`, loaded from the store when this instance does not hold it
    /// yet or held it in an earlier assignment (another instance may have moved it on). A
    /// partition loaded gets the latest heartbeat of each dependency seen here.
    fn part<'a>(
        &self,
        parts: &'a mut Parts<M>,
        partition: Option<i32>,
    ) -> Result<&'a mut Inner<M>, Error> {
        let name = &self.shared.name;
        if let (Some(partition), Some(store)) = (partition, self.shared.store) {
            let assignment = |store: &dyn CheckpointStore| {
                store
                    .held()
                    .and_then(|held| held.into_iter().find(|(p, _)| *p == partition))
                    .map(|(_, assignment)| assignment)
            };
            let assignment = match assignment(store) {
                Some(assignment) => assignment,
                None => {
                    // Not restored yet: a read in the partition's handler restores it.
                    store.load_in(partition, &keys::state(name))?;
                    assignment(store).ok_or_else(|| {
                        checkpoint_error(format!(
                            "checkpoint `{name}`: partition {partition} of the dependent topic is not this instance's"
                        ))
                    })?
                }
            };
            let current = parts
                .parts
                .get(&Some(partition))
                .is_some_and(|(loaded, _)| *loaded == assignment);
            if !current {
                let mut inner = Inner::new(&parts.template);
                load(store, Some(partition), name, &mut inner)?;
                let state = inner.state.clone();
                for (dependency, heartbeat) in inner.dependencies.iter_mut().zip(&parts.heartbeats)
                {
                    if let Some(marker) = heartbeat {
                        dependency
                            .checkpoint_state
                            .get_or_insert_with(|| state.clone());
                        dependency.checkpoint_marker = Some(marker.clone());
                    }
                }
                parts.parts.insert(Some(partition), (assignment, inner));
            }
        }
        parts
            .parts
            .get_mut(&partition)
            .map(|(_, inner)| inner)
            .ok_or_else(|| checkpoint_error(format!("checkpoint `{name}` has no record")))
    }

    /// The records a heartbeat goes to: the only one, or those of the partitions held now
    /// (loaded when needed; those of partitions gone elsewhere are dropped).
    fn held(&self, parts: &mut Parts<M>) -> Result<Vec<Option<i32>>, Error> {
        let Some(held) = self.shared.store.and_then(|s| s.held()) else {
            return Ok(vec![None]);
        };
        parts
            .parts
            .retain(|key, _| key.is_some_and(|p| held.iter().any(|(h, _)| *h == p)));
        let keys: Vec<Option<i32>> = held.iter().map(|(p, _)| Some(*p)).collect();
        for key in &keys {
            self.part(parts, *key)?;
        }
        Ok(keys)
    }

    /// Records a dependency's latest marker (its event time). Name the dependency when there
    /// are several. If it was down and its `recovery_check` passes, it is marked up; once no
    /// dependency is down, the dependent stream resumes and the recovery callback runs. A
    /// checkpoint kept per partition records the heartbeat in each partition held here, and
    /// runs the recovery callback for each partition that recovered.
    pub async fn heartbeat(&self, marker: M) -> Result<Heartbeat<M>, Error> {
        self.heartbeat_of(None, marker).await
    }

    /// [`heartbeat`](Checkpoint::heartbeat) for the dependency called `dependency`.
    pub async fn heartbeat_for(&self, dependency: &str, marker: M) -> Result<Heartbeat<M>, Error> {
        self.heartbeat_of(Some(dependency), marker).await
    }

    async fn heartbeat_of(&self, name: Option<&str>, marker: M) -> Result<Heartbeat<M>, Error> {
        let mut guard = self.shared.inner.lock().await;
        let parts = &mut *guard;
        let index = match name {
            Some(name) => parts
                .template
                .iter()
                .position(|d| d.name == name)
                .ok_or_else(|| {
                    checkpoint_error(format!(
                        "checkpoint `{}` has no dependency `{name}`",
                        self.shared.name
                    ))
                })?,
            None if parts.template.len() == 1 => 0,
            None => {
                return Err(checkpoint_error(format!(
                    "checkpoint `{}` has {} dependencies: name the one this heartbeat is for",
                    self.shared.name,
                    parts.template.len()
                )));
            }
        };
        parts.heartbeats[index] = Some(marker.clone());
        let keys = self.held(parts)?;
        let mut is_late = false;
        for key in &keys {
            let inner = self.part(parts, *key)?;
            let state = inner.state.clone();
            let dependency = &mut inner.dependencies[index];
            self.save_checkpoint(*key, dependency, &state, Some(marker.clone()))?;
            if dependency.is_down {
                let (view, dependency_view) = (
                    view(&self.shared.name, *key, inner),
                    inner.dependencies[index].view(),
                );
                let recovered = match &inner.dependencies[index].recovery_check {
                    Some(check) => check(view.clone(), dependency_view).await,
                    None => default_recovery(&view, &dependency_view),
                }
                .map_err(|e| checkpoint_error(e.to_string()))?;
                if recovered {
                    inner.dependencies[index].is_down = false;
                    if !inner.dependencies.iter().any(|d| d.is_down) {
                        inner.recovered = Some(index);
                    }
                }
            }
            is_late |= inner.dependencies[index].is_down;
        }
        let down = parts
            .parts
            .values()
            .any(|(_, inner)| inner.dependencies.iter().any(|d| d.is_down));
        let recovered: Vec<Option<i32>> = parts
            .parts
            .iter()
            .filter(|(_, (_, inner))| inner.recovered.is_some())
            .map(|(key, _)| *key)
            .collect();
        if !down && (parts.paused || !recovered.is_empty()) {
            tracing::info!(checkpoint = %self.shared.name, dependency = %parts.template[index].name, "dependency caught up; resuming");
            if self.shared.pause_dependent {
                self.shared.dependent.resume();
            }
            parts.paused = false;
            for key in recovered {
                let inner = self.part(parts, key)?;
                let Some(which) = inner.recovered.take() else {
                    continue;
                };
                if let Some(callback) = &self.shared.recovery_callback {
                    let view = view(&self.shared.name, key, inner);
                    callback(view, inner.dependencies[which].view()).await;
                }
            }
        }
        let shown = parts.last.filter(|p| parts.parts.contains_key(&Some(*p)));
        let shown = if keys.contains(&None) {
            None
        } else {
            shown.or(keys.first().copied().flatten())
        };
        let dependent_marker = match parts.parts.get(&shown) {
            Some((_, inner)) => {
                self.publish(shown, inner);
                inner.state_marker.clone()
            }
            None => None,
        };
        Ok(Heartbeat {
            is_late,
            dependent_marker,
            dependency_marker: Some(marker),
        })
    }

    /// Records the dependent stream's marker and state (merged into the recorded state), gives
    /// every dependency without a checkpoint the current one, and checks each dependency for
    /// downtime: a dependency that is down pauses the dependent stream, runs the downtime
    /// callback and is marked down. Returns the longest downtime of the dependencies this pulse
    /// found down (`None` when it found none, even if one is still down from before).
    ///
    /// A checkpoint whose store follows the dependent topic's partitions keeps a record per
    /// partition: the pulse goes to the partition of the message being handled (so it is
    /// checked in a handler reading the topic), and moves with it to another instance.
    pub async fn check_pulse<K, V>(
        &self,
        marker: M,
        state: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Option<TimeDelta>, Error>
    where
        K: Into<String>,
        V: Serialize,
    {
        let key = self.pulse_partition()?;
        let mut guard = self.shared.inner.lock().await;
        let parts = &mut *guard;
        parts.last = key;
        let inner = self.part(parts, key)?;
        for (name, value) in state {
            let value = serde_json::to_value(value).map_err(|e| checkpoint_error(e.to_string()))?;
            inner.state.insert(name.into(), value);
        }
        inner.state_marker = Some(marker.clone());
        self.persist(key, keys::state(&self.shared.name), &inner.state)?;
        self.persist(
            key,
            keys::state_marker(&self.shared.name),
            &inner.state_marker,
        )?;

        let Inner {
            dependencies,
            state,
            state_marker,
            ..
        } = &mut *inner;
        let view = CheckpointView {
            name: self.shared.name.clone(),
            partition: key,
            state: state.clone(),
            state_marker: state_marker.clone(),
        };
        let mut downtime = None;
        for dependency in dependencies.iter_mut() {
            if dependency.checkpoint_marker.is_none() {
                self.save_checkpoint(key, dependency, state, state_marker.clone())?;
            }
            let dependency_view = dependency.view();
            let down = match &dependency.downtime_check {
                Some(check) => check(view.clone(), dependency_view.clone()).await,
                None => default_downtime(&view, &dependency_view),
            }
            .map_err(|e| checkpoint_error(e.to_string()))?;
            if let Some(down) = down {
                tracing::warn!(checkpoint = %self.shared.name, dependency = %dependency.name, %down, "dependency is down; pausing");
                if self.shared.pause_dependent {
                    self.shared.dependent.pause();
                }
                if let Some(callback) = &self.shared.downtime_callback {
                    callback(view.clone(), dependency_view).await;
                }
                dependency.is_down = true;
                downtime = downtime.max(Some(down));
            }
        }
        if downtime.is_some() {
            parts.paused = true;
        }
        let inner = self.part(parts, key)?;
        self.publish(key, inner);
        Ok(downtime)
    }
}

impl<M> std::fmt::Debug for Checkpoint<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Checkpoint")
            .field("name", &self.shared.name)
            .finish_non_exhaustive()
    }
}
