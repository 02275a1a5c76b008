//! How a [`Checkpoint`] is made: [`Checkpoint::new`], [`Checkpoint::builder`] and the
//! [`CheckpointBuilder`]'s callbacks and store, loading the persisted state. Below: pulse,
//! dependency, marker, hook, store. Must not name the context or the runtime.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::FutureExt;

use super::dependency::{Dependency, Inner, views};
use super::hook::{CallbackFn, IntoHook};
use super::marker::Marker;
use super::pulse::{Checkpoint, Parts, Shared};
use super::store::{CheckpointStore, load};
use crate::error::Error;
use crate::pause::{Pausable, PauseHandle};

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
    /// Calls `hook` (sync or async) with the checkpoint and the dependency when downtime
    /// is detected.
    pub fn on_downtime<S>(mut self, hook: impl IntoHook<M, (), S>) -> Self {
        self.downtime_callback = Some(callback(hook));
        self
    }

    /// Calls `hook` (sync or async) once every dependency has recovered.
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

    /// The checkpoint, with its persisted state loaded (a checkpoint whose store follows the
    /// dependent topic's partitions loads each partition's when it first needs it).
    pub fn build(self) -> Result<Checkpoint<M>, Error> {
        let mut parts = Parts {
            heartbeats: vec![None; self.dependencies.len()],
            template: self.dependencies,
            parts: BTreeMap::new(),
            last: None,
            paused: false,
        };
        let partitioned = self.store.and_then(|s| s.held()).is_some();
        let mut whole = Inner::new(&parts.template);
        if !partitioned && let Some(store) = self.store {
            load(store, None, &self.name, &mut whole)?;
        }
        let views = views(&self.name, None, &whole);
        if !partitioned {
            parts.parts.insert(None, (0, whole));
        }
        Ok(Checkpoint {
            shared: Arc::new(Shared {
                name: self.name,
                dependent: self.dependent,
                pause_dependent: self.pause_dependent,
                downtime_callback: self.downtime_callback,
                recovery_callback: self.recovery_callback,
                store: self.store,
                inner: tokio::sync::Mutex::new(parts),
                views: Mutex::new(views),
            }),
        })
    }
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
}
