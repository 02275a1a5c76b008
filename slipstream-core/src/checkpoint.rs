//! `Checkpoint` and `Dependency`: detect a stalled dependency stream by comparing event times,
//! pause the stream that depends on it, and resume (and reprocess) once it has caught up.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::future::Future;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDateTime, TimeDelta, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{BoxError, Error};
use crate::pause::{Pausable, PauseHandle};
use crate::sync::lock;

/// The dependent stream's state recorded by [`Checkpoint::check_pulse`] (for example partition
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

type CheckFn<M, T> = Arc<
    dyn Fn(CheckpointView<M>, DependencyView<M>) -> BoxFuture<'static, Result<T, BoxError>>
        + Send
        + Sync,
>;
type CallbackFn<M> =
    Arc<dyn Fn(CheckpointView<M>, DependencyView<M>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Functions that can be checks or callbacks: sync or async, returning `T` or `Result<T, E>`.
/// `S` is a marker that keeps the implementations apart; it is always inferred.
pub trait IntoHook<M, T, S> {
    /// The boxed hook.
    fn into_hook(self) -> CheckFn<M, T>;
}

/// Marker types for [`IntoHook`].
pub mod hooks {
    /// A sync function returning the value.
    pub enum Sync {}
    /// A sync function returning `Result`.
    pub struct TrySync<E>(std::marker::PhantomData<E>);
    /// An async function returning the value.
    pub struct Async<F>(std::marker::PhantomData<F>);
    /// An async function returning `Result`.
    pub struct TryAsync<F, E>(std::marker::PhantomData<(F, E)>);
}

impl<M: 'static, T: 'static, F> IntoHook<M, T, hooks::Sync> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> T + Send + Sync + 'static,
    T: Send,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| std::future::ready(Ok(self(c, d))).boxed())
    }
}

impl<M: 'static, T: 'static, E, F> IntoHook<M, T, hooks::TrySync<E>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Result<T, E> + Send + Sync + 'static,
    T: Send,
    E: Into<BoxError> + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| std::future::ready(self(c, d).map_err(Into::into)).boxed())
    }
}

impl<M: 'static, T: 'static, F, Fut> IntoHook<M, T, hooks::Async<Fut>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| self(c, d).map(Ok).boxed())
    }
}

impl<M: 'static, T: 'static, E, F, Fut> IntoHook<M, T, hooks::TryAsync<Fut, E>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| self(c, d).map(|r| r.map_err(Into::into)).boxed())
    }
}

/// A stream the dependent stream of a [`Checkpoint`] depends on (its "heartbeat").
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
    name: String,
    source: PauseHandle,
    downtime_threshold: TimeDelta,
    downtime_check: Option<CheckFn<M, Option<TimeDelta>>>,
    recovery_check: Option<CheckFn<M, bool>>,
    checkpoint_state: Option<State>,
    checkpoint_marker: Option<M>,
    is_down: bool,
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

    fn view(&self) -> DependencyView<M> {
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

fn default_downtime<M: Marker>(
    c: &CheckpointView<M>,
    d: &DependencyView<M>,
) -> Result<Option<TimeDelta>, BoxError> {
    let (Some(dependent), Some(dependency)) = (&c.state_marker, &d.checkpoint_marker) else {
        return Err(markers_error("downtime_check", c, d));
    };
    let lag = M::lag(dependent, dependency).ok_or_else(|| markers_error("downtime_check", c, d))?;
    Ok((lag > d.downtime_threshold).then_some(lag))
}

fn default_recovery<M: Marker>(
    c: &CheckpointView<M>,
    d: &DependencyView<M>,
) -> Result<bool, BoxError> {
    let (Some(dependent), Some(dependency)) = (&c.state_marker, &d.checkpoint_marker) else {
        return Err(markers_error("recovery_check", c, d));
    };
    let lag = M::lag(dependent, dependency).ok_or_else(|| markers_error("recovery_check", c, d))?;
    Ok(lag < TimeDelta::zero())
}

/// What [`Checkpoint::heartbeat`] tells.
#[derive(Clone, Debug, PartialEq)]
pub struct Heartbeat<M> {
    /// Whether the dependency is (still) down: its events are behind the dependent's.
    pub is_late: bool,
    /// The dependent stream's latest marker.
    pub dependent_marker: Option<M>,
    /// The dependency's latest marker.
    pub dependency_marker: Option<M>,
}

struct Inner<M> {
    state: State,
    state_marker: Option<M>,
    dependencies: Vec<Dependency<M>>,
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
    shared: Arc<Shared<M>>,
}

impl<M> Clone for Checkpoint<M> {
    fn clone(&self) -> Self {
        Checkpoint {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<M> {
    name: String,
    dependent: PauseHandle,
    pause_dependent: bool,
    downtime_callback: Option<CallbackFn<M>>,
    recovery_callback: Option<CallbackFn<M>>,
    store: Option<&'static dyn CheckpointStore>,
    inner: tokio::sync::Mutex<Inner<M>>,
    /// The latest views, readable without waiting for an operation.
    views: Mutex<(CheckpointView<M>, Vec<DependencyView<M>>)>,
}

/// Where a [`Checkpoint`] persists its state ([`CheckpointBuilder::cache`]): a
/// `Cache<String, serde_json::Value>` (with the `cache` feature), or your own store.
///
/// ```
/// use std::collections::HashMap;
/// use std::sync::Mutex;
/// use serde_json::Value;
/// use slipstream::CheckpointStore;
///
/// #[derive(Default)]
/// struct Memory(Mutex<HashMap<String, Value>>);
///
/// impl CheckpointStore for Memory {
///     fn load(&self, key: &str) -> slipstream::Result<Option<Value>> {
///         Ok(self.0.lock().unwrap().get(key).cloned())
///     }
///     fn save(&self, key: &str, value: &Value) -> slipstream::Result<()> {
///         self.0.lock().unwrap().insert(key.to_owned(), value.clone());
///         Ok(())
///     }
/// }
/// ```
pub trait CheckpointStore: Send + Sync {
    /// The value stored under `key`, if any.
    fn load(&self, key: &str) -> Result<Option<Value>, Error>;
    /// Stores `value` under `key` (durably, for a restart to find it).
    fn save(&self, key: &str, value: &Value) -> Result<(), Error>;
}

impl<S: CheckpointStore, F: FnOnce() -> S + Send> CheckpointStore for std::sync::LazyLock<S, F> {
    fn load(&self, key: &str) -> Result<Option<Value>, Error> {
        (**self).load(key)
    }
    fn save(&self, key: &str, value: &Value) -> Result<(), Error> {
        (**self).save(key, value)
    }
}

/// A builder of [`Checkpoint`]s with callbacks and persistence.
pub struct CheckpointBuilder<M> {
    name: String,
    dependent: PauseHandle,
    dependencies: Vec<Dependency<M>>,
    pause_dependent: bool,
    downtime_callback: Option<CallbackFn<M>>,
    recovery_callback: Option<CallbackFn<M>>,
    store: Option<&'static dyn CheckpointStore>,
}

fn callback<M: Marker, S>(hook: impl IntoHook<M, (), S>) -> CallbackFn<M> {
    let hook = hook.into_hook();
    Arc::new(move |c, d| {
        let hook = Arc::clone(&hook);
        async move {
            if let Err(error) = hook(c, d).await {
                tracing::error!(%error, "a checkpoint callback failed");
            }
        }
        .boxed()
    })
}

impl<M: Marker> CheckpointBuilder<M> {
    /// Calls `callback` (sync or async) with the checkpoint and the dependency when downtime
    /// is detected.
    pub fn on_downtime<S>(mut self, hook: impl IntoHook<M, (), S>) -> Self {
        self.downtime_callback = Some(callback(hook));
        self
    }

    /// Calls `callback` (sync or async) once every dependency has recovered.
    pub fn on_recovery<S>(mut self, hook: impl IntoHook<M, (), S>) -> Self {
        self.recovery_callback = Some(callback(hook));
        self
    }

    /// Whether downtime pauses the dependent stream (on by default).
    pub fn pause_dependent(mut self, pause: bool) -> Self {
        self.pause_dependent = pause;
        self
    }

    /// Persists the checkpoint in `store`, typically a `Cache<String, serde_json::Value>` (keys
    /// start with `_{name}_`): a restarted application continues from the recorded state.
    pub fn cache(mut self, store: &'static impl CheckpointStore) -> Self {
        self.store = Some(store);
        self
    }

    /// The checkpoint, with its persisted state loaded.
    pub fn build(self) -> Result<Checkpoint<M>, Error> {
        let mut inner = Inner {
            state: State::new(),
            state_marker: None,
            dependencies: self.dependencies,
        };
        if let Some(store) = self.store {
            load(store, &self.name, &mut inner)?;
        }
        let views = views(&self.name, &inner);
        Ok(Checkpoint {
            shared: Arc::new(Shared {
                name: self.name,
                dependent: self.dependent,
                pause_dependent: self.pause_dependent,
                downtime_callback: self.downtime_callback,
                recovery_callback: self.recovery_callback,
                store: self.store,
                inner: tokio::sync::Mutex::new(inner),
                views: Mutex::new(views),
            }),
        })
    }
}

fn views<M: Marker>(name: &str, inner: &Inner<M>) -> (CheckpointView<M>, Vec<DependencyView<M>>) {
    (
        CheckpointView {
            name: name.to_owned(),
            state: inner.state.clone(),
            state_marker: inner.state_marker.clone(),
        },
        inner.dependencies.iter().map(Dependency::view).collect(),
    )
}

fn checkpoint_error(message: String) -> Error {
    Error::Checkpoint(message)
}

/// The cache keys a checkpoint's state is kept under (the original's): written by
/// `Checkpoint::persist` callers, read back by [`load`].
mod keys {
    /// The dependent stream's state.
    pub(super) fn state(checkpoint: &str) -> String {
        format!("_{checkpoint}__state")
    }

    /// The dependent stream's marker.
    pub(super) fn state_marker(checkpoint: &str) -> String {
        format!("_{checkpoint}__state_marker")
    }

    /// A dependency's checkpoint state.
    pub(super) fn dependency_state(checkpoint: &str, dependency: &str) -> String {
        format!("_{checkpoint}_{dependency}_checkpoint_state")
    }

    /// A dependency's checkpoint marker.
    pub(super) fn dependency_marker(checkpoint: &str, dependency: &str) -> String {
        format!("_{checkpoint}_{dependency}_checkpoint_marker")
    }
}

fn load<M: Marker>(
    store: &dyn CheckpointStore,
    name: &str,
    inner: &mut Inner<M>,
) -> Result<(), Error> {
    let read = |key: String| -> Result<Option<Value>, Error> { store.load(&key) };
    fn decode<T: DeserializeOwned>(name: &str, value: Value) -> Result<T, Error> {
        serde_json::from_value(value)
            .map_err(|e| checkpoint_error(format!("checkpoint `{name}` in the cache: {e}")))
    }
    if let Some(state) = read(keys::state(name))? {
        inner.state = decode(name, state)?;
    }
    if let Some(marker) = read(keys::state_marker(name))? {
        inner.state_marker = decode(name, marker)?;
    }
    for dependency in &mut inner.dependencies {
        if let Some(state) = read(keys::dependency_state(name, &dependency.name))? {
            dependency.checkpoint_state = decode(name, state)?;
        }
        if let Some(marker) = read(keys::dependency_marker(name, &dependency.name))? {
            dependency.checkpoint_marker = decode(name, marker)?;
        }
    }
    Ok(())
}

impl<M: Marker> Checkpoint<M> {
    /// A checkpoint called `name` (the name keys its persisted state: keep it stable) of the
    /// `dependent` stream on `dependencies`, with no callbacks and no persistence.
    pub fn new(
        name: impl Into<String>,
        dependent: &impl Pausable,
        dependencies: impl IntoIterator<Item = Dependency<M>>,
    ) -> Self {
        Self::builder(name, dependent, dependencies)
            .build()
            .expect("nothing to load without a cache")
    }

    /// A checkpoint with callbacks or persistence.
    pub fn builder(
        name: impl Into<String>,
        dependent: &impl Pausable,
        dependencies: impl IntoIterator<Item = Dependency<M>>,
    ) -> CheckpointBuilder<M> {
        CheckpointBuilder {
            name: name.into(),
            dependent: dependent.pause_handle(),
            dependencies: dependencies.into_iter().collect(),
            pause_dependent: true,
            downtime_callback: None,
            recovery_callback: None,
            store: None,
        }
    }

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

    fn publish(&self, inner: &Inner<M>) {
        *lock(&self.shared.views) = views(&self.shared.name, inner);
    }

    fn persist(&self, key: String, value: &impl Serialize) -> Result<(), Error> {
        if let Some(store) = self.shared.store {
            let value = serde_json::to_value(value).map_err(|e| checkpoint_error(e.to_string()))?;
            store.save(&key, &value)?;
        }
        Ok(())
    }

    fn save_checkpoint(
        &self,
        dependency: &mut Dependency<M>,
        state: &State,
        marker: Option<M>,
    ) -> Result<(), Error> {
        let (name, dependency_name) = (&self.shared.name, &dependency.name);
        self.persist(keys::dependency_state(name, dependency_name), state)?;
        self.persist(keys::dependency_marker(name, dependency_name), &marker)?;
        dependency.checkpoint_state = Some(state.clone());
        dependency.checkpoint_marker = marker;
        Ok(())
    }

    /// Records a dependency's latest marker (its event time). Name the dependency when there
    /// are several. If it was down and its `recovery_check` passes, it is marked up; once no
    /// dependency is down, the dependent stream resumes and the recovery callback runs.
    pub async fn heartbeat(&self, marker: M) -> Result<Heartbeat<M>, Error> {
        self.heartbeat_of(None, marker).await
    }

    /// [`heartbeat`](Checkpoint::heartbeat) for the dependency called `dependency`.
    pub async fn heartbeat_for(&self, dependency: &str, marker: M) -> Result<Heartbeat<M>, Error> {
        self.heartbeat_of(Some(dependency), marker).await
    }

    async fn heartbeat_of(&self, name: Option<&str>, marker: M) -> Result<Heartbeat<M>, Error> {
        let mut inner = self.shared.inner.lock().await;
        let index = match name {
            Some(name) => inner
                .dependencies
                .iter()
                .position(|d| d.name == name)
                .ok_or_else(|| {
                    checkpoint_error(format!(
                        "checkpoint `{}` has no dependency `{name}`",
                        self.shared.name
                    ))
                })?,
            None if inner.dependencies.len() == 1 => 0,
            None => {
                return Err(checkpoint_error(format!(
                    "checkpoint `{}` has {} dependencies: name the one this heartbeat is for",
                    self.shared.name,
                    inner.dependencies.len()
                )));
            }
        };
        let state = inner.state.clone();
        let Inner {
            dependencies,
            state: dependent_state,
            state_marker,
        } = &mut *inner;
        self.save_checkpoint(&mut dependencies[index], &state, Some(marker))?;
        let view = CheckpointView {
            name: self.shared.name.clone(),
            state: dependent_state.clone(),
            state_marker: state_marker.clone(),
        };
        if dependencies[index].is_down {
            let dependency = dependencies[index].view();
            let recovered = match &dependencies[index].recovery_check {
                Some(check) => check(view.clone(), dependency).await,
                None => default_recovery(&view, &dependency),
            }
            .map_err(|e| checkpoint_error(e.to_string()))?;
            if recovered {
                dependencies[index].is_down = false;
            }
            if !dependencies.iter().any(|d| d.is_down) {
                tracing::info!(checkpoint = %self.shared.name, dependency = %dependencies[index].name, "dependency caught up; resuming");
                if self.shared.pause_dependent {
                    self.shared.dependent.resume();
                }
                if let Some(callback) = &self.shared.recovery_callback {
                    callback(view, dependencies[index].view()).await;
                }
            }
        }
        let result = Heartbeat {
            is_late: dependencies[index].is_down,
            dependent_marker: state_marker.clone(),
            dependency_marker: dependencies[index].checkpoint_marker.clone(),
        };
        self.publish(&inner);
        Ok(result)
    }

    /// Records the dependent stream's marker and state (merged into the recorded state), gives
    /// every dependency without a checkpoint the current one, and checks each dependency for
    /// downtime: a dependency that is down pauses the dependent stream, runs the downtime
    /// callback and is marked down. Returns the longest downtime of the dependencies this pulse
    /// found down (`None` when it found none, even if one is still down from before).
    pub async fn check_pulse<K, V>(
        &self,
        marker: M,
        state: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Option<TimeDelta>, Error>
    where
        K: Into<String>,
        V: Serialize,
    {
        let mut inner = self.shared.inner.lock().await;
        for (key, value) in state {
            let value = serde_json::to_value(value).map_err(|e| checkpoint_error(e.to_string()))?;
            inner.state.insert(key.into(), value);
        }
        inner.state_marker = Some(marker.clone());
        self.persist(keys::state(&self.shared.name), &inner.state)?;
        self.persist(keys::state_marker(&self.shared.name), &inner.state_marker)?;

        let Inner {
            dependencies,
            state,
            state_marker,
        } = &mut *inner;
        let view = CheckpointView {
            name: self.shared.name.clone(),
            state: state.clone(),
            state_marker: state_marker.clone(),
        };
        let mut downtime = None;
        for dependency in dependencies.iter_mut() {
            if dependency.checkpoint_marker.is_none() {
                self.save_checkpoint(dependency, state, state_marker.clone())?;
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
        self.publish(&inner);
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
