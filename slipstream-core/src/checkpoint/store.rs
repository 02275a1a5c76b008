//! Where a checkpoint persists its state, and the keys it uses there. Below: dependency,
//! marker, error. Must not name the pulse or builder, nor the runtime.

use serde::de::DeserializeOwned;
use serde_json::Value;

use super::dependency::Inner;
use super::marker::{Marker, checkpoint_error};
use crate::error::Error;

/// Where a [`Checkpoint`](super::Checkpoint) persists its state
/// ([`CheckpointBuilder::cache`](super::CheckpointBuilder::cache)): a
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

    /// For a store that keeps its state per partition of the dependent topic (a cache that
    /// follows it): the partitions this instance holds, each with a number that changes
    /// whenever the partition is (re)assigned to it. `None`, the default, for a store kept
    /// whole: the checkpoint then keeps one state.
    fn held(&self) -> Option<Vec<(i32, u64)>> {
        None
    }

    /// The value stored under `key` in `partition` (a store kept whole ignores the partition).
    fn load_in(&self, partition: i32, key: &str) -> Result<Option<Value>, Error> {
        let _ = partition;
        self.load(key)
    }

    /// Stores `value` under `key` in `partition` (a store kept whole ignores the partition).
    fn save_in(&self, partition: i32, key: &str, value: &Value) -> Result<(), Error> {
        let _ = partition;
        self.save(key, value)
    }
}

impl<S: CheckpointStore, F: FnOnce() -> S + Send> CheckpointStore for std::sync::LazyLock<S, F> {
    fn load(&self, key: &str) -> Result<Option<Value>, Error> {
        (**self).load(key)
    }
    fn save(&self, key: &str, value: &Value) -> Result<(), Error> {
        (**self).save(key, value)
    }
    fn held(&self) -> Option<Vec<(i32, u64)>> {
        (**self).held()
    }
    fn load_in(&self, partition: i32, key: &str) -> Result<Option<Value>, Error> {
        (**self).load_in(partition, key)
    }
    fn save_in(&self, partition: i32, key: &str, value: &Value) -> Result<(), Error> {
        (**self).save_in(partition, key, value)
    }
}

/// The cache keys a checkpoint's state is kept under (the original's): written by
/// `Checkpoint::persist` callers, read back by [`load`].
pub(super) mod keys {
    /// The dependent stream's state.
    pub(in crate::checkpoint) fn state(checkpoint: &str) -> String {
        format!("_{checkpoint}__state")
    }

    /// The dependent stream's marker.
    pub(in crate::checkpoint) fn state_marker(checkpoint: &str) -> String {
        format!("_{checkpoint}__state_marker")
    }

    /// A dependency's checkpoint state.
    pub(in crate::checkpoint) fn dependency_state(checkpoint: &str, dependency: &str) -> String {
        format!("_{checkpoint}_{dependency}_checkpoint_state")
    }

    /// A dependency's checkpoint marker.
    pub(in crate::checkpoint) fn dependency_marker(checkpoint: &str, dependency: &str) -> String {
        format!("_{checkpoint}_{dependency}_checkpoint_marker")
    }
}

pub(super) fn load<M: Marker>(
    store: &dyn CheckpointStore,
    partition: Option<i32>,
    name: &str,
    inner: &mut Inner<M>,
) -> Result<(), Error> {
    let read = |key: String| -> Result<Option<Value>, Error> {
        match partition {
            Some(partition) => store.load_in(partition, &key),
            None => store.load(&key),
        }
    };
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
