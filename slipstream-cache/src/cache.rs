//! `Cache`: persistent, ordered key-value state in RocksDB, usable as a handler sink (stores and
//! publishes each update) and source (the update feed). Here: the cache itself and its reads
//! and writes; its children hold how it opens (options), where reads and writes go (place),
//! batches, its feed and sink, the state following a topic's partitions (follow), replicas,
//! iteration and key encoding.

mod batch;
mod checkpoint;
mod feed;
mod follow;
mod iter;
mod key;
mod options;
mod place;
mod replica;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{BoundColumnFamily, DBWithThreadMode, MultiThreaded, Options};
use serde::Serialize;
use serde::de::DeserializeOwned;

use slipstream_core::__component::Outside;
use slipstream_core::{CacheErrorKind, Error, PauseHandle};

pub use batch::Batch;
pub use feed::CacheSink;
pub use iter::{Items, Iter, Keys, KeysOf, PairsOf, Project, Snapshot, Values, ValuesOf};
pub use key::{CacheKey, KeyError, KeyLike};
pub use options::CacheOptions;

type Db = DBWithThreadMode<MultiThreaded>;

const MB: usize = 1024 * 1024;

fn cache_error(path: &Path, kind: CacheErrorKind, message: impl Into<String>) -> Error {
    Error::Cache {
        path: path.to_owned(),
        kind,
        message: message.into(),
    }
}

fn db_error(path: &Path, error: rocksdb::Error) -> Error {
    let message = error.to_string();
    let kind = match error.kind() {
        rocksdb::ErrorKind::Corruption => CacheErrorKind::Corrupt,
        // RocksDB's messages for a LOCK file held by another process, or by this one.
        _ if message.contains("While lock file")
            || message.contains("lock hold by current process") =>
        {
            CacheErrorKind::Locked
        }
        _ => CacheErrorKind::Io,
    };
    cache_error(path, kind, message)
}

/// The message of a cache error.
fn corrupt_message(error: &Error) -> String {
    match error {
        Error::Cache { message, .. } => message.clone(),
        other => other.to_string(),
    }
}

struct Shared {
    db: Db,
    path: PathBuf,
    options: Options,
    locks: Vec<Arc<tokio::sync::Mutex<()>>>,
}

/// A persistent, ordered key-value store (RocksDB) of `K` keys and `V` values.
///
/// Keys are encoded so that their bytes sort like the keys ([`CacheKey`]): iteration is in key
/// order, integers and floats numerically (negative ones too), timestamps chronologically,
/// strings lexicographically. Values are stored as MessagePack (`rmp-serde`, with field names,
/// so that adding a field to a struct does not make older values unreadable).
///
/// As a handler sink (`sink = [CACHE]`) it stores each `(key, value)` and publishes it to its
/// update feed; as a source (`source = CACHE`) it yields those updates, and the feed ends when
/// every handler writing into it has finished. Data survives restarts (and crashes: RocksDB's
/// write-ahead log).
///
/// ```no_run
/// use slipstream::Cache;
///
/// let cache: Cache<String, String> = Cache::open("db")?;
/// cache.put("prize", "🏆")?;
/// cache.put("phone", "📞")?;
/// for item in cache.items() {
///     let (key, value) = item?;
///     println!("{key} {value}"); // phone 📞, then prize 🏆
/// }
/// # Ok::<(), slipstream::Error>(())
/// ```
pub struct Cache<K, V> {
    shared: Arc<Shared>,
    family: Option<String>,
    pause: PauseHandle,
    /// Updates for readers outside handlers ([`Cache::updates`]), once one asks.
    updates: Arc<std::sync::OnceLock<tokio::sync::broadcast::Sender<(K, V)>>>,
    /// Publishes into the running update feed from outside handlers ([`Cache::send`]).
    outside: std::sync::Mutex<Option<Outside<(K, V)>>>,
    /// The partitioned source whose partitions the cache follows ([`Cache::follow`]).
    follow: Option<Arc<follow::Follow>>,
    /// The feed of a replicated cache ([`Cache::replicate`]).
    replica: Option<replica::Replicating>,
    _types: PhantomData<fn() -> (K, V)>,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache")
            .field("path", &self.shared.path)
            .field("column_family", &self.family)
            .finish_non_exhaustive()
    }
}

/// Something that encodes like a value of type `V` (a `&str` for `String` values).
pub trait ValueLike<V> {
    /// The value's stored bytes.
    fn encode_value(&self) -> Result<Vec<u8>, rmp_serde::encode::Error>;
}

impl<V: Serialize> ValueLike<V> for V {
    fn encode_value(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }
}

impl ValueLike<String> for str {
    fn encode_value(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(self)
    }
}

impl ValueLike<String> for &str {
    fn encode_value(&self) -> Result<Vec<u8>, rmp_serde::encode::Error> {
        rmp_serde::to_vec_named(*self)
    }
}

impl<K, V> Cache<K, V> {
    /// Opens (or creates) the cache at `path` with the default [`CacheOptions`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, Error> {
        CacheOptions::new().open(path)
    }

    /// Deletes the database at `path` and its files (it must not be open).
    pub fn destroy(path: impl AsRef<Path>) -> Result<(), Error> {
        let path = path.as_ref();
        Db::destroy(&CacheOptions::new().rocksdb_options(), path).map_err(|e| db_error(path, e))
    }

    /// The directory of the database.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// A cache of other types in the column family `name` of the same database (created if it
    /// does not exist yet).
    pub fn column_family<K2, V2>(&self, name: &str) -> Result<Cache<K2, V2>, Error> {
        let shared = &self.shared;
        if shared.db.cf_handle(name).is_none() {
            shared
                .db
                .create_cf(name, &shared.options)
                .map_err(|e| db_error(&shared.path, e))?;
        }
        Ok(Cache {
            shared: Arc::clone(shared),
            family: Some(name.to_owned()),
            pause: PauseHandle::new(),
            updates: Arc::default(),
            outside: std::sync::Mutex::new(None),
            follow: None,
            replica: None,
            _types: PhantomData,
        })
    }

    fn family(&self) -> Option<Arc<BoundColumnFamily<'_>>> {
        self.family
            .as_deref()
            .and_then(|name| self.shared.db.cf_handle(name))
    }

    fn error(&self, error: rocksdb::Error) -> Error {
        db_error(&self.shared.path, error)
    }

    fn encode_key<Q: KeyLike<K> + ?Sized>(key: &Q) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(16);
        key.encode_like(&mut bytes);
        bytes
    }

    fn encode_value<W: ValueLike<V> + ?Sized>(&self, value: &W) -> Result<Vec<u8>, Error> {
        value
            .encode_value()
            .map_err(|e| cache_error(&self.shared.path, CacheErrorKind::Encode, e.to_string()))
    }

    /// Stores `value` under `key`.
    pub fn put<Q, W>(&self, key: &Q, value: &W) -> Result<(), Error>
    where
        Q: KeyLike<K> + ?Sized,
        W: ValueLike<V> + ?Sized,
    {
        let key = Self::encode_key(key);
        let value = self.encode_value(value)?;
        let db = &self.shared.db;
        let place = self.place()?;
        match &place.family {
            Some(cf) => db.put_cf(cf, &key, &value),
            None => db.put(&key, &value),
        }
        .map_err(|e| self.error(e))?;
        self.record(&place, &key, Some(&value))
    }

    /// Removes `key` (nothing happens if it is absent).
    pub fn delete<Q: KeyLike<K> + ?Sized>(&self, key: &Q) -> Result<(), Error> {
        let key = Self::encode_key(key);
        let db = &self.shared.db;
        let place = self.place()?;
        match &place.family {
            Some(cf) => db.delete_cf(cf, &key),
            None => db.delete(&key),
        }
        .map_err(|e| self.error(e))?;
        self.record(&place, &key, None)
    }

    /// Whether `key` is stored.
    pub fn contains<Q: KeyLike<K> + ?Sized>(&self, key: &Q) -> Result<bool, Error> {
        Ok(self.get_bytes(key)?.is_some())
    }

    fn get_bytes<Q: KeyLike<K> + ?Sized>(
        &self,
        key: &Q,
    ) -> Result<Option<rocksdb::DBPinnableSlice<'_>>, Error> {
        let key = Self::encode_key(key);
        let db = &self.shared.db;
        if self.follow.is_none() {
            self.caught_up()?;
            return match self.family() {
                Some(cf) => db.get_pinned_cf(&cf, key),
                None => db.get_pinned(key),
            }
            .map_err(|e| self.error(e));
        }
        for family in self.read_places()? {
            let found = match family {
                Some(cf) => db.get_pinned_cf(&cf, &key),
                None => db.get_pinned(&key),
            }
            .map_err(|e| self.error(e))?;
            if found.is_some() {
                return Ok(found);
            }
        }
        Ok(None)
    }

    /// Writes the memtables to disk.
    pub fn flush(&self) -> Result<(), Error> {
        let db = &self.shared.db;
        if self.follow.is_some() {
            return db.flush().map_err(|e| self.error(e));
        }
        match self.family() {
            Some(cf) => db.flush_cf(&cf),
            None => db.flush(),
        }
        .map_err(|e| self.error(e))
    }

    /// Waits for the lock of `key` (one of a fixed pool, chosen by hashing the key) and holds it
    /// until the guard is dropped: transactions on one key run one at a time. Plain reads and
    /// writes do not take the lock and are never blocked by it.
    ///
    /// ```no_run
    /// # async fn demo(cache: &slipstream::Cache<String, u64>) -> Result<(), slipstream::Error> {
    /// let _guard = cache.transaction("fish").await;
    /// let count = cache.get("fish")?.unwrap_or(0);
    /// cache.put("fish", &(count + 1))?;
    /// # Ok(()) }
    /// ```
    pub async fn transaction<Q: KeyLike<K> + ?Sized>(&self, key: &Q) -> Transaction {
        let mut hasher = DefaultHasher::new();
        Self::encode_key(key).hash(&mut hasher);
        let locks = &self.shared.locks;
        let lock = &locks[(hasher.finish() % locks.len() as u64) as usize];
        Transaction {
            _guard: Arc::clone(lock).lock_owned().await,
        }
    }
}

impl<K, V: DeserializeOwned> Cache<K, V> {
    fn decode_value(&self, bytes: &[u8]) -> Result<V, Error> {
        rmp_serde::from_slice(bytes)
            .map_err(|e| cache_error(&self.shared.path, CacheErrorKind::Decode, e.to_string()))
    }

    /// The value stored under `key`, if any.
    pub fn get<Q: KeyLike<K> + ?Sized>(&self, key: &Q) -> Result<Option<V>, Error> {
        self.get_bytes(key)?
            .map(|bytes| self.decode_value(&bytes))
            .transpose()
    }
}

/// Holds the lock of one key (see [`Cache::transaction`]).
#[derive(Debug)]
pub struct Transaction {
    _guard: tokio::sync::OwnedMutexGuard<()>,
}
