//! `Cache`: persistent, ordered key-value state in RocksDB, usable as a handler sink (stores and
//! publishes each update) and source (the update feed).

mod checkpoint;
mod follow;
mod iter;
mod key;
mod replica;

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rocksdb::{
    BoundColumnFamily, DBCompactionStyle, DBCompressionType, DBRecoveryMode, DBWithThreadMode,
    FifoCompactOptions, MultiThreaded, Options, WriteBatch,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use slipstream_core::__component::{Hub, Outside, lock};
use slipstream_core::{
    BoxError, BuildCx, CacheErrorKind, Error, Feed, Pausable, PauseHandle, Sink, SinkHandle,
    SourceHandle, SourceStream, Writer,
};

pub use iter::{Items, Iter, Keys, KeysOf, PairsOf, Project, Snapshot, Values, ValuesOf};
pub use key::{CacheKey, KeyError, KeyLike};

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

/// Options of a [`Cache`]. The defaults follow the Python original: they bound the disk a cache
/// uses, not the data it keeps — FIFO compaction drops the oldest table files once the tables
/// exceed `max_size` (25 MB), write buffers are small (1 MB, two of them), tables are LZ4
/// compressed, and one small info log file is kept.
///
/// ```no_run
/// use slipstream::{Cache, CacheOptions};
///
/// let cache: Cache<String, u64> = CacheOptions::new()
///     .max_size(100 * 1024 * 1024)
///     .locks(32)
///     .open("db/counts")?;
/// # Ok::<(), slipstream::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct CacheOptions {
    max_size: u64,
    write_buffer_size: usize,
    locks: usize,
    recover_corrupt_log: bool,
}

impl Default for CacheOptions {
    fn default() -> Self {
        CacheOptions {
            max_size: 25 * MB as u64,
            write_buffer_size: MB,
            locks: 16,
            recover_corrupt_log: false,
        }
    }
}

impl CacheOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// The total size of table files beyond which the oldest are dropped (25 MB by default).
    pub fn max_size(mut self, bytes: u64) -> Self {
        self.max_size = bytes;
        self
    }

    /// The size of each in-memory write buffer (1 MB by default).
    pub fn write_buffer_size(mut self, bytes: usize) -> Self {
        self.write_buffer_size = bytes;
        self
    }

    /// How many locks [`Cache::transaction`] hashes keys onto (16 by default; at least 1).
    pub fn locks(mut self, locks: usize) -> Self {
        self.locks = locks.max(1);
        self
    }

    /// Whether to open a cache whose write-ahead log is corrupt by dropping what follows the
    /// corruption (off by default: opening fails with [`CacheErrorKind::Corrupt`]).
    ///
    /// The log holds the writes not yet in table files. A process killed mid-write leaves an
    /// incomplete last record, which is always tolerated (that write was never acknowledged).
    /// Corruption before the end (a damaged disk, a file edited by hand) means acknowledged
    /// writes cannot be read back: by default opening fails and says so; with this option the
    /// cache opens with the writes up to the corruption, and an error is logged saying that
    /// the rest of the log was dropped.
    ///
    /// [`CacheErrorKind::Corrupt`]: slipstream_core::CacheErrorKind::Corrupt
    pub fn recover_corrupt_log(mut self, recover: bool) -> Self {
        self.recover_corrupt_log = recover;
        self
    }

    /// The RocksDB options these settings stand for.
    #[doc(hidden)]
    pub fn rocksdb_options(&self) -> Options {
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get() as i32);
        let mut options = Options::default();
        options.create_if_missing(true);
        options.create_missing_column_families(true);
        // Also sets the number of background jobs.
        options.increase_parallelism(cpus);
        options.set_log_file_time_to_roll(30 * 60);
        options.set_keep_log_file_num(1);
        options.set_max_log_file_size(MB / 10);
        options.set_max_manifest_file_size(MB);
        let mut fifo = FifoCompactOptions::default();
        fifo.set_max_table_files_size(self.max_size);
        options.set_fifo_compaction_options(&fifo);
        options.set_compaction_style(DBCompactionStyle::Fifo);
        options.set_level_zero_file_num_compaction_trigger(4);
        options.set_level_zero_slowdown_writes_trigger(6);
        options.set_level_zero_stop_writes_trigger(8);
        options.set_max_write_buffer_number(2);
        options.set_write_buffer_size(self.write_buffer_size);
        options.set_compression_type(DBCompressionType::Lz4);
        options.set_delete_obsolete_files_period_micros(10_000);
        // RocksDB's default (point-in-time recovery) silently drops everything after a
        // corrupt log record; this tolerates only an incomplete last record (a crash).
        options.set_wal_recovery_mode(DBRecoveryMode::TolerateCorruptedTailRecords);
        options
    }

    /// Opens (or creates) the cache at `path`.
    pub fn open<K, V>(&self, path: impl AsRef<Path>) -> Result<Cache<K, V>, Error> {
        let path = path.as_ref().to_owned();
        let options = self.rocksdb_options();
        let families = if path.join("CURRENT").exists() {
            Db::list_cf(&options, &path).map_err(|e| db_error(&path, e))?
        } else {
            Vec::new()
        };
        let descriptors = |options: &Options| {
            families
                .iter()
                .map(|name| {
                    let options = if follow::is_partition_family(name) {
                        follow::partition_options(options)
                    } else {
                        options.clone()
                    };
                    rocksdb::ColumnFamilyDescriptor::new(name, options)
                })
                .collect::<Vec<_>>()
        };
        let db = match Db::open_cf_descriptors(&options, &path, descriptors(&options)) {
            Ok(db) => db,
            Err(error) if error.kind() == rocksdb::ErrorKind::Corruption => {
                let corrupt = db_error(&path, error);
                if !self.recover_corrupt_log {
                    return Err(cache_error(
                        &path,
                        CacheErrorKind::Corrupt,
                        format!(
                            "{}; acknowledged writes cannot all be read back. Open it with \
                             `CacheOptions::recover_corrupt_log(true)` to keep the writes up to the \
                             corruption and drop the rest, or restore the directory from a backup",
                            corrupt_message(&corrupt)
                        ),
                    ));
                }
                let mut recovering = options.clone();
                recovering.set_wal_recovery_mode(DBRecoveryMode::PointInTime);
                let db = Db::open_cf_descriptors(&recovering, &path, descriptors(&recovering))
                    .map_err(|e| db_error(&path, e))?;
                tracing::error!(
                    path = %path.display(),
                    error = %corrupt_message(&corrupt),
                    "the cache's write-ahead log is corrupt: opened with the writes up to the corruption; the rest of the log was dropped"
                );
                db
            }
            Err(error) => return Err(db_error(&path, error)),
        };
        let locks = (0..self.locks)
            .map(|_| Arc::new(tokio::sync::Mutex::new(())))
            .collect();
        Ok(Cache {
            shared: Arc::new(Shared {
                db,
                path,
                options,
                locks,
            }),
            family: None,
            pause: PauseHandle::new(),
            updates: Arc::default(),
            outside: std::sync::Mutex::new(None),
            follow: None,
            replica: None,
            _types: PhantomData,
        })
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

    /// A batch of writes applied together by [`write`](Cache::write).
    pub fn batch(&self) -> Batch<'_, K, V> {
        Batch {
            cache: self,
            batch: WriteBatch::default(),
            place: self.place().ok(),
            changes: Vec::new(),
            refused: false,
        }
    }

    /// Applies a batch atomically.
    pub fn write(&self, batch: Batch<'_, K, V>) -> Result<(), Error> {
        let Some(place) = batch.place.as_ref().filter(|_| !batch.refused) else {
            self.place()?;
            return Err(cache_error(
                &self.shared.path,
                CacheErrorKind::Partition,
                "the batch was made where the cache could not be written: its writes were refused",
            ));
        };
        self.shared
            .db
            .write(batch.batch)
            .map_err(|e| self.error(e))?;
        for (key, value) in &batch.changes {
            self.record(place, key, value.as_deref())?;
        }
        Ok(())
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

/// Writes applied together (see [`Cache::batch`]).
pub struct Batch<'a, K, V> {
    cache: &'a Cache<K, V>,
    batch: WriteBatch,
    /// Where it goes (`None` when it cannot be written: writing says why).
    place: Option<follow::Place<'a>>,
    /// Its writes, for a following cache's changelog.
    changes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
    /// Whether a write was refused (the cache could not be written where it was made).
    refused: bool,
}

impl<K, V> Batch<'_, K, V> {
    /// Adds a write of `value` under `key`.
    pub fn put<Q, W>(&mut self, key: &Q, value: &W) -> Result<&mut Self, Error>
    where
        Q: KeyLike<K> + ?Sized,
        W: ValueLike<V> + ?Sized,
    {
        let key = Cache::<K, V>::encode_key(key);
        let value = self.cache.encode_value(value)?;
        let Some(place) = &self.place else {
            self.refused = true;
            self.cache.place()?;
            return Err(cache_error(
                &self.cache.shared.path,
                CacheErrorKind::Partition,
                "the batch was made where the cache could not be written",
            ));
        };
        match &place.family {
            Some(cf) => self.batch.put_cf(cf, &key, &value),
            None => self.batch.put(&key, &value),
        }
        if place.partition.is_some() {
            self.changes.push((key, Some(value)));
        }
        Ok(self)
    }

    /// Adds a deletion of `key`.
    pub fn delete<Q: KeyLike<K> + ?Sized>(&mut self, key: &Q) -> &mut Self {
        let key = Cache::<K, V>::encode_key(key);
        let Some(place) = &self.place else {
            self.refused = true;
            return self;
        };
        match &place.family {
            Some(cf) => self.batch.delete_cf(cf, &key),
            None => self.batch.delete(&key),
        }
        if place.partition.is_some() {
            self.changes.push((key, None));
        }
        self
    }

    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.batch.len()
    }

    /// Whether it holds no write.
    pub fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }
}

impl<K, V> Pausable for Cache<K, V> {
    fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }
}

impl<K, V> Cache<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn key(&'static self) -> usize {
        self as *const Self as usize
    }

    /// The cache's update hub in this run, created by the first handler that names it.
    fn hub<'cx>(&'static self, cx: &'cx mut BuildCx<'_>) -> &'cx mut Hub<(K, V)> {
        let hub = cx.hub(self.key(), || Hub::writers(self.pause.clone()));
        *lock(&self.outside) = hub.outside();
        hub
    }
}

impl<K, V> Cache<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The updates written through the cache's sink interface from now on, for readers
    /// outside handlers (an HTTP endpoint streaming them, say). A reader that falls more than
    /// 1,024 updates behind skips the oldest (and a warning is logged).
    ///
    /// ```no_run
    /// # async fn demo(cache: &'static slipstream::Cache<String, String>) {
    /// use futures::StreamExt;
    /// let mut updates = std::pin::pin!(cache.updates());
    /// while let Some((key, value)) = updates.next().await {
    ///     println!("{key} = {value}");
    /// }
    /// # }
    /// ```
    pub fn updates(&self) -> impl futures::Stream<Item = (K, V)> + Send + 'static {
        use tokio::sync::broadcast::error::RecvError;
        let sender = self
            .updates
            .get_or_init(|| tokio::sync::broadcast::channel(1024).0);
        futures::stream::unfold(sender.subscribe(), |mut updates| async move {
            loop {
                match updates.recv().await {
                    Ok(update) => return Some((update, updates)),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a cache update reader fell behind; skipping")
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }
}

impl<K, V> Cache<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    /// Stores `(key, value)` and publishes it, from outside handlers (an HTTP endpoint, say),
    /// like the original's `await cache(key, value)`: to the handlers reading the cache's
    /// update feed in the running application (waiting for room) and to [`updates`](Cache::updates)
    /// readers. What a sink of a handler does, for code that is not a handler.
    ///
    /// ```no_run
    /// # async fn demo(cache: &'static slipstream::Cache<String, String>) -> Result<(), slipstream::Error> {
    /// cache.send("trophy".to_owned(), "🏆".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, key: K, value: V) -> Result<(), Error> {
        self.put(&key, &value)?;
        self.publish_update(&key, &value);
        let outside = lock(&self.outside).clone();
        if let Some(outside) = outside {
            // A feed that has ended (the application stopped) has nobody left to tell.
            let _ = outside.send((key, value)).await;
        }
        Ok(())
    }

    /// Tells [`updates`](Cache::updates) readers, if any.
    fn publish_update(&self, key: &K, value: &V) {
        if let Some(readers) = self.updates.get()
            && readers.receiver_count() > 0
        {
            let _ = readers.send((key.clone(), value.clone()));
        }
    }
}

impl<K, V> SourceHandle for Cache<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = (K, V);
    type Stream = Feed<(K, V)>;

    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Feed<(K, V)>>, Error> {
        self.hub(cx);
        let feed = cx.subscribe(self.key(), || unreachable!("created above"));
        Ok(SourceStream::internal(feed))
    }
}

impl<K, V> SinkHandle<(K, V)> for Cache<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    type Sink = CacheSink<K, V>;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<CacheSink<K, V>, Error> {
        // A following cache's changelog is checked at start-up; a replica is never a sink.
        if let Some(error) = self.read_only() {
            return Err(error);
        }
        self.prepare()?;
        self.hub(cx);
        let feed = cx
            .writer(self.key(), || unreachable!("created above"))
            .expect("a cache's hub takes writers");
        Ok(CacheSink { cache: self, feed })
    }
}

/// A handler's writer into a [`Cache`]: stores each `(key, value)`, then publishes it to the
/// cache's update feed.
pub struct CacheSink<K: 'static, V: 'static> {
    cache: &'static Cache<K, V>,
    feed: Writer<(K, V)>,
}

impl<K, V> std::fmt::Debug for CacheSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSink")
            .field("cache", &self.cache)
            .finish()
    }
}

impl<K, V> Sink<(K, V)> for CacheSink<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    async fn send(&mut self, (key, value): (K, V)) -> Result<(), BoxError> {
        self.cache.put(&key, &value)?;
        self.cache.publish_update(&key, &value);
        self.feed
            .send((key, value))
            .await
            .map_err(|_| "the cache's update feed has stopped".into())
    }
}
