//! [`CacheOptions`]: how a cache is opened (RocksDB's settings, a corrupt log), and opening it.
//! Below: the cache and follow's column-family options. Must not name batches or the feed.

use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use rocksdb::{DBCompactionStyle, DBCompressionType, DBRecoveryMode, FifoCompactOptions, Options};

use slipstream_core::{CacheErrorKind, Error, PauseHandle};

use super::{Cache, Db, MB, Shared, cache_error, corrupt_message, db_error, follow};

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
