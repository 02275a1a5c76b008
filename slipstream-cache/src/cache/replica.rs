//! A cache every instance holds whole ([`Cache::replicate`]): fed, in the background, with every
//! partition of a topic or of a following cache's changelog; the position reached in each
//! partition is kept next to the data.

use std::sync::{Arc, OnceLock};

use rocksdb::WriteBatch;
use serde::Serialize;
use serde::de::DeserializeOwned;

use slipstream_core::partition::{Change, Encode, Replica, Replicated, Replication};
use slipstream_core::{CacheErrorKind, Error};

use super::follow::POSITIONS;
use super::{Cache, CacheKey, Shared, cache_error, db_error};

/// The feed of a replicated cache; dropping it (with the cache) stops the feed.
pub(super) struct Replicating {
    pub(super) source: String,
    replication: Arc<dyn Replication>,
}

impl Drop for Replicating {
    fn drop(&mut self) {
        self.replication.stop();
    }
}

type Updates<K, V> = Arc<OnceLock<tokio::sync::broadcast::Sender<(K, V)>>>;

/// What the feed writes into.
struct Store<K, V> {
    shared: Arc<Shared>,
    family: Option<String>,
    updates: Updates<K, V>,
}

impl<K, V> Store<K, V> {
    /// The key of `partition`'s position in the positions column family.
    fn position_key(&self, partition: i32) -> String {
        match &self.family {
            Some(family) => format!("{family}/replica-{partition}"),
            None => format!("replica-{partition}"),
        }
    }

    fn error(&self, error: rocksdb::Error) -> Error {
        db_error(&self.shared.path, error)
    }
}

impl<K, V> Replica for Store<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: DeserializeOwned + Clone + Send + Sync + 'static,
{
    fn name(&self) -> String {
        self.shared.path.display().to_string()
    }

    fn position(&self, partition: i32) -> Result<Option<i64>, Error> {
        self.shared.stored_position(&self.position_key(partition))
    }

    fn apply(&self, partition: i32, changes: &[Change], next: i64) -> Result<(), Error> {
        let db = &self.shared.db;
        let positions = self.shared.partition_family(POSITIONS)?;
        let data = match &self.family {
            Some(name) => Some(db.cf_handle(name).ok_or_else(|| {
                cache_error(
                    &self.shared.path,
                    CacheErrorKind::Io,
                    format!("no column family `{name}`"),
                )
            })?),
            None => None,
        };
        let mut batch = WriteBatch::default();
        for change in changes {
            match (&data, &change.value) {
                (Some(cf), Some(value)) => batch.put_cf(cf, &change.key, value),
                (Some(cf), None) => batch.delete_cf(cf, &change.key),
                (None, Some(value)) => batch.put(&change.key, value),
                (None, None) => batch.delete(&change.key),
            }
        }
        batch.put_cf(&positions, self.position_key(partition), next.to_be_bytes());
        db.write(batch).map_err(|e| self.error(e))?;
        self.publish(changes);
        Ok(())
    }
}

impl<K, V> Store<K, V>
where
    K: CacheKey + Clone + Send + 'static,
    V: DeserializeOwned + Clone + Send + 'static,
{
    /// Tells [`Cache::updates`] readers of the values stored, if any listen.
    fn publish(&self, changes: &[Change]) {
        let Some(readers) = self.updates.get().filter(|r| r.receiver_count() > 0) else {
            return;
        };
        for change in changes {
            let Some(value) = &change.value else { continue };
            let decoded = K::decode_key(&change.key)
                .ok()
                .zip(rmp_serde::from_slice::<V>(value).ok());
            if let Some(update) = decoded {
                let _ = readers.send(update);
            }
        }
    }
}

impl<K, V> Cache<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Makes the cache a replica every instance holds whole: fed in the background with every
    /// partition of `source`, a Kafka topic (read without a consumer group, so every instance
    /// reads all of it) or a cache that follows a topic's partitions (its changelog). For
    /// lookups that are not partitioned like the stream: a temporal join with a table of
    /// reference data, say, when the application runs as several instances.
    ///
    /// - Reads wait until the replica has caught up with what the source held when the feed
    ///   started (a restart with the directory reads only what it lacks: the position reached
    ///   in each partition is kept next to the data); afterwards they see records as they
    ///   arrive, a few milliseconds behind the source.
    /// - A record's key and value are decoded with the topic's codecs and stored; a record
    ///   without a payload (a tombstone) deletes its key, one without a key is skipped.
    /// - Only the feed writes: `put`, `delete` and batches are an error. Values the feed stores
    ///   are published to [`updates`](Cache::updates) readers (a handler can read them as its
    ///   source).
    /// - The feed stops when the cache is dropped; an error that stops it (the topic does not
    ///   exist, say) makes reads fail with it.
    ///
    /// ```no_run
    /// use std::sync::LazyLock;
    /// use slipstream::prelude::*;
    ///
    /// // Weather reports keyed by their time ("08:00").
    /// static WEATHER: LazyLock<Topic> = LazyLock::new(|| Topic::new("weather"));
    /// static REPORTS: LazyLock<Cache<String, String>> = LazyLock::new(|| {
    ///     Cache::open("db/weather").expect("the cache opens").replicate(&WEATHER)
    /// });
    ///
    /// // Activities keyed by name, valued by their time, read by a group of instances.
    /// static ACTIVITIES: LazyLock<Topic> =
    ///     LazyLock::new(|| Topic::new("activities").conf([("group.id", "join")]));
    ///
    /// // Whichever instance an activity's partition is given to sees every weather report.
    /// #[handle(source = ACTIVITIES, sink = [print])]
    /// fn join(msg: Message<String, String>) -> Result<String, slipstream::Error> {
    ///     let sky = match REPORTS.values().from_key(&msg.value).backwards().next() {
    ///         Some(sky) => sky?,
    ///         None => "unknown".into(),
    ///     };
    ///     Ok(format!("{} under {sky}", msg.key.unwrap_or_default()))
    /// }
    /// ```
    pub fn replicate<S: Replicated<K, V>>(mut self, source: &'static S) -> Self {
        assert!(
            self.follow.is_none(),
            "the cache at {} follows a topic's partitions: it cannot also replicate `{}`",
            self.shared.path.display(),
            source.replicated_name()
        );
        let store = Arc::new(Store {
            shared: Arc::clone(&self.shared),
            family: self.family.clone(),
            updates: Arc::clone(&self.updates),
        });
        let path = self.shared.path.clone();
        let encode: Encode<K, V> = Arc::new(move |key: &K, value: Option<&V>| {
            let mut bytes = Vec::with_capacity(16);
            key.encode_key(&mut bytes);
            let value = value
                .map(rmp_serde::to_vec_named)
                .transpose()
                .map_err(|e| cache_error(&path, CacheErrorKind::Encode, e.to_string()))?;
            Ok(Change { key: bytes, value })
        });
        let replication = source.replicate(store, encode);
        self.replica = Some(Replicating {
            source: source.replicated_name(),
            replication,
        });
        self
    }

    /// Records the feed of a replicated cache has applied since it started (for tests and
    /// tools).
    #[doc(hidden)]
    pub fn replicated_records(&self) -> u64 {
        self.replica.as_ref().map_or(0, |r| r.replication.applied())
    }
}

/// A following cache can be replicated: its changelog feeds the replica.
impl<K, V> Replicated<K, V> for Cache<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    fn replicated_name(&self) -> String {
        format!("the cache at {}", self.shared.path.display())
    }

    fn replicate(
        &'static self,
        replica: Arc<dyn Replica>,
        _: Encode<K, V>,
    ) -> Arc<dyn Replication> {
        match &self.follow {
            Some(follow) => Arc::clone(&follow.changelog).replicate(replica),
            None => Arc::new(Refused(self.replicated_name())),
        }
    }
}

/// The feed of a cache that keeps no changelog: none.
struct Refused(String);

impl Replication for Refused {
    fn caught_up(&self) -> Result<(), Error> {
        Err(Error::Cache {
            path: Default::default(),
            kind: CacheErrorKind::Partition,
            message: format!(
                "{} does not follow a topic's partitions, so it has no changelog to replicate",
                self.0
            ),
        })
    }

    fn applied(&self) -> u64 {
        0
    }

    fn stop(&self) {}
}

impl<K, V> Cache<K, V> {
    /// Waits for a replicated cache's feed to catch up (nothing for other caches).
    pub(super) fn caught_up(&self) -> Result<(), Error> {
        match &self.replica {
            Some(replica) => replica.replication.caught_up(),
            None => Ok(()),
        }
    }

    /// The error a write to a replicated cache is.
    pub(super) fn read_only(&self) -> Option<Error> {
        self.replica.as_ref().map(|replica| {
            cache_error(
                &self.shared.path,
                CacheErrorKind::Partition,
                format!(
                    "the cache replicates `{}`: only its feed writes it (write to the source instead)",
                    replica.source
                ),
            )
        })
    }
}
