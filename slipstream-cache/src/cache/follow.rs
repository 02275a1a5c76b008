//! A cache whose state follows the partitions of a source ([`Cache::follow`]): one column
//! family per partition, the changelog positions of each next to the data. Below: the cache.
//! Must not name place, batches, the feed or options.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rocksdb::{BoundColumnFamily, WriteBatch};

use slipstream_core::__component::lock;
use slipstream_core::partition::{Change, Changelog, PartitionState, Partitioned};
use slipstream_core::{CacheErrorKind, Error};

use super::{Cache, Shared, cache_error, db_error};

/// The column family holding each partition's changelog position.
pub(super) const POSITIONS: &str = "slipstream.positions";
/// The suffix of the mark of a partition taken and not released cleanly.
const TAKEN: &str = ".taken";
/// How often positions learnt from deliveries are written down (they are also written when
/// partitions are revoked; a position written late only makes a restart restore more).
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Whether a column family holds a partition of a following cache (or the positions).
pub(super) fn is_partition_family(name: &str) -> bool {
    name == POSITIONS
        || name.rsplit_once("partition-").is_some_and(|(head, n)| {
            (head.is_empty() || head.ends_with('/')) && n.parse::<u32>().is_ok()
        })
}

/// The options of a partition's column family: the cache's, with level compaction instead of
/// the size-bounded FIFO one (which drops the oldest data: the local copy would then lack what
/// its changelog position claims).
pub(super) fn partition_options(options: &rocksdb::Options) -> rocksdb::Options {
    let mut options = options.clone();
    options.set_compaction_style(rocksdb::DBCompactionStyle::Level);
    options
}

impl Shared {
    /// A column family of partitioned state, or the positions', created when missing (with
    /// [`partition_options`], which the cache reopens it with).
    pub(super) fn partition_family(&self, name: &str) -> Result<Arc<BoundColumnFamily<'_>>, Error> {
        let db = &self.db;
        if let Some(cf) = db.cf_handle(name) {
            return Ok(cf);
        }
        match db.create_cf(name, &partition_options(&self.options)) {
            Ok(()) => {}
            // Created meanwhile by another thread.
            Err(_) if db.cf_handle(name).is_some() => {}
            Err(error) => return Err(db_error(&self.path, error)),
        }
        db.cf_handle(name)
            .ok_or_else(|| cache_error(&self.path, CacheErrorKind::Io, "no column family"))
    }

    /// The position stored under `key` in the positions column family, if any.
    pub(super) fn stored_position(&self, key: &str) -> Result<Option<i64>, Error> {
        let Some(cf) = self.db.cf_handle(POSITIONS) else {
            return Ok(None);
        };
        let stored = self
            .db
            .get_pinned_cf(&cf, key)
            .map_err(|e| db_error(&self.path, e))?;
        Ok(stored.and_then(|bytes| Some(i64::from_be_bytes(bytes.as_ref().try_into().ok()?))))
    }
}

/// What a following cache is attached to.
pub(super) struct Follow {
    /// The source's name, as item origins give it.
    pub(super) source: Arc<str>,
    pub(super) partitions: Arc<Partitions>,
    pub(super) changelog: Arc<dyn Changelog>,
}

impl Follow {
    /// Restores `partition` unless it is ready; an error when it is not this instance's.
    pub(super) fn restored(&self, path: &std::path::Path, partition: i32) -> Result<(), Error> {
        if self.partitions.is_ready(partition) {
            return Ok(());
        }
        if !self.changelog.owns(partition) {
            return Err(cache_error(
                path,
                CacheErrorKind::Partition,
                format!(
                    "partition {partition} of `{}` is no longer this instance's: its state is not written here",
                    self.source
                ),
            ));
        }
        self.changelog.restore(&[partition])
    }
}

/// The partitions of a following cache in its database.
pub(super) struct Partitions {
    shared: Arc<Shared>,
    /// The cache's own column family (`None`: the default one).
    base: Option<String>,
    /// Partitions this instance holds and has restored, each with the number of the
    /// assignment that brought it (a partition that comes back gets a new one).
    ready: Mutex<BTreeMap<i32, u64>>,
    assignments: AtomicU64,
    positions: Mutex<Positions>,
    /// Changes recorded and not delivered yet, per partition.
    pending: Mutex<HashMap<i32, u64>>,
    /// Partitions with a change the changelog refused: never released cleanly.
    refused: Mutex<BTreeSet<i32>>,
}

#[derive(Default)]
struct Positions {
    /// Positions applied or delivered since the cache opened.
    known: HashMap<i32, i64>,
    /// Positions not written down yet.
    unsaved: BTreeSet<i32>,
    saved_at: Option<Instant>,
}

impl Partitions {
    pub(super) fn new(shared: Arc<Shared>, base: Option<String>) -> Self {
        Partitions {
            shared,
            base,
            ready: Mutex::default(),
            assignments: AtomicU64::new(0),
            positions: Mutex::default(),
            pending: Mutex::default(),
            refused: Mutex::default(),
        }
    }

    /// The mark of a partition taken and not released cleanly (in the positions family).
    fn taken_key(&self, partition: i32) -> String {
        format!("{}{TAKEN}", self.family_name(partition))
    }

    /// Marks `partitions` as taken: until they are released cleanly, their local copies may
    /// hold changes their changelog lacks (a crash loses what was not delivered).
    fn take(&self, partitions: &[i32]) -> Result<(), Error> {
        let cf = self.family(POSITIONS)?;
        let mut batch = WriteBatch::default();
        for &partition in partitions {
            batch.put_cf(&cf, self.taken_key(partition), []);
        }
        self.shared.db.write(batch).map_err(|e| self.error(e))
    }

    /// Releases `partitions` whose changes are all delivered (and none refused): their local
    /// copies match their changelog up to their positions, written down before.
    fn release(&self, partitions: &[i32]) -> Result<(), Error> {
        let pending = lock(&self.pending);
        let refused = lock(&self.refused);
        let cf = self.family(POSITIONS)?;
        let mut batch = WriteBatch::default();
        for &partition in partitions {
            if pending.get(&partition).is_none_or(|n| *n == 0) && !refused.contains(&partition) {
                batch.delete_cf(&cf, self.taken_key(partition));
            }
        }
        self.shared.db.write(batch).map_err(|e| self.error(e))
    }

    /// A change of `partition` went to the changelog (`delta` 1) or was settled (-1).
    pub(super) fn count_pending(&self, partition: i32, delta: i64) {
        let mut pending = lock(&self.pending);
        let count = pending.entry(partition).or_default();
        *count = count.saturating_add_signed(delta);
    }

    /// Drops the local copies of the partitions left taken by an earlier run that did not
    /// release them (a crash): they may hold changes their changelog lacks, so they are
    /// restored from the changelog's start instead.
    pub(super) fn drop_unreleased(&self) -> Result<(), Error> {
        let db = &self.shared.db;
        let Some(cf) = db.cf_handle(POSITIONS) else {
            return Ok(());
        };
        let prefix = self.family_name(0);
        let prefix = prefix.trim_end_matches('0');
        let mut unreleased = Vec::new();
        for item in db.prefix_iterator_cf(&cf, prefix.as_bytes()) {
            let (key, _) = item.map_err(|e| self.error(e))?;
            let Some(rest) = std::str::from_utf8(&key)
                .ok()
                .and_then(|k| k.strip_prefix(prefix))
            else {
                break;
            };
            if let Some(partition) = rest.strip_suffix(TAKEN).and_then(|n| n.parse::<i32>().ok()) {
                unreleased.push(partition);
            }
        }
        for partition in unreleased {
            tracing::warn!(path = %self.shared.path.display(), partition, "partition not released cleanly (the last run crashed): it is restored from its changelog's start");
            self.drop_partition(partition)?;
        }
        Ok(())
    }

    /// Drops `partition`'s data, position and mark.
    fn drop_partition(&self, partition: i32) -> Result<(), Error> {
        let db = &self.shared.db;
        let cf = self.family(POSITIONS)?;
        let data = self.family_name(partition);
        if db.cf_handle(&data).is_some() {
            db.drop_cf(&data).map_err(|e| self.error(e))?;
        }
        let mut batch = WriteBatch::default();
        batch.delete_cf(&cf, &data);
        batch.delete_cf(&cf, self.taken_key(partition));
        db.write(batch).map_err(|e| self.error(e))?;
        lock(&self.positions).known.remove(&partition);
        Ok(())
    }

    /// The column family of `partition`'s data.
    fn family_name(&self, partition: i32) -> String {
        match &self.base {
            Some(base) => format!("{base}/partition-{partition}"),
            None => format!("partition-{partition}"),
        }
    }

    fn error(&self, error: rocksdb::Error) -> Error {
        db_error(&self.shared.path, error)
    }

    /// A column family, created when missing.
    fn family(&self, name: &str) -> Result<Arc<BoundColumnFamily<'_>>, Error> {
        self.shared.partition_family(name)
    }

    /// The column family of `partition`'s data.
    pub(super) fn data(&self, partition: i32) -> Result<Arc<BoundColumnFamily<'_>>, Error> {
        self.family(&self.family_name(partition))
    }

    pub(super) fn is_ready(&self, partition: i32) -> bool {
        lock(&self.ready).contains_key(&partition)
    }

    /// The partitions this instance holds.
    pub(super) fn held(&self) -> Vec<i32> {
        lock(&self.ready).keys().copied().collect()
    }

    /// The partitions this instance holds, with the numbers of their assignments.
    pub(super) fn assignments(&self) -> Vec<(i32, u64)> {
        lock(&self.ready).iter().map(|(p, a)| (*p, *a)).collect()
    }

    fn stored_position(&self, partition: i32) -> Result<Option<i64>, Error> {
        self.shared.stored_position(&self.family_name(partition))
    }

    /// Writes down the positions of `partitions` (all unsaved ones when `None`).
    fn save(&self, partitions: Option<&[i32]>) -> Result<(), Error> {
        let mut positions = lock(&self.positions);
        let chosen: Vec<(i32, i64)> = positions
            .unsaved
            .iter()
            .filter(|p| partitions.is_none_or(|only| only.contains(p)))
            .filter_map(|p| positions.known.get(p).map(|o| (*p, *o)))
            .collect();
        positions.saved_at = Some(Instant::now());
        if chosen.is_empty() {
            return Ok(());
        }
        let cf = self.family(POSITIONS)?;
        let mut batch = WriteBatch::default();
        for (partition, position) in &chosen {
            batch.put_cf(&cf, self.family_name(*partition), position.to_be_bytes());
        }
        self.shared.db.write(batch).map_err(|e| self.error(e))?;
        for (partition, _) in chosen {
            positions.unsaved.remove(&partition);
        }
        Ok(())
    }
}

/// What the changelog side (the source's restoration and deliveries) asks of the cache.
pub(super) struct State {
    pub(super) partitions: Arc<Partitions>,
    pub(super) name: String,
    /// The column family, when the cache is one.
    pub(super) store: Option<String>,
}

impl PartitionState for State {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn store(&self) -> Option<String> {
        self.store.clone()
    }

    fn reset(&self, partition: i32) -> Result<(), Error> {
        self.partitions.drop_partition(partition)
    }

    fn position(&self, partition: i32) -> Result<Option<i64>, Error> {
        let known = lock(&self.partitions.positions)
            .known
            .get(&partition)
            .copied();
        match known {
            Some(position) => Ok(Some(position)),
            None => self.partitions.stored_position(partition),
        }
    }

    fn apply(&self, partition: i32, changes: &[Change], next: i64) -> Result<(), Error> {
        let partitions = &self.partitions;
        let data = partitions.data(partition)?;
        let positions = partitions.family(POSITIONS)?;
        let mut batch = WriteBatch::default();
        for change in changes {
            match &change.value {
                Some(value) => batch.put_cf(&data, &change.key, value),
                None => batch.delete_cf(&data, &change.key),
            }
        }
        batch.put_cf(
            &positions,
            partitions.family_name(partition),
            next.to_be_bytes(),
        );
        partitions
            .shared
            .db
            .write(batch)
            .map_err(|e| partitions.error(e))?;
        let mut positions = lock(&partitions.positions);
        let known = positions.known.entry(partition).or_insert(next);
        *known = (*known).max(next);
        positions.unsaved.remove(&partition);
        Ok(())
    }

    fn delivered(&self, partition: i32, offset: i64) {
        let partitions = &self.partitions;
        partitions.count_pending(partition, -1);
        if !partitions.is_ready(partition) {
            // A late change of a partition gone to another instance: its records may follow
            // the new owner's, which the local copy does not hold.
            return;
        }
        let due = {
            let mut positions = lock(&partitions.positions);
            let known = positions.known.entry(partition).or_insert(offset + 1);
            *known = (*known).max(offset + 1);
            positions.unsaved.insert(partition);
            positions
                .saved_at
                .is_none_or(|at| at.elapsed() >= SAVE_EVERY)
        };
        if due && let Err(error) = partitions.save(None) {
            tracing::warn!(%error, "cannot write down the cache's changelog positions");
        }
    }

    fn refused(&self, partition: i32) {
        lock(&self.partitions.refused).insert(partition);
        self.partitions.count_pending(partition, -1);
    }

    fn ready(&self, ready: &[i32]) {
        let partitions = &self.partitions;
        if let Err(error) = partitions.take(ready) {
            tracing::warn!(%error, "cannot mark the cache's partitions taken (a crash would keep their local copies)");
        }
        let mut held = lock(&partitions.ready);
        for &partition in ready {
            held.entry(partition)
                .or_insert_with(|| partitions.assignments.fetch_add(1, Ordering::Relaxed));
        }
    }

    fn is_ready(&self, partition: i32) -> bool {
        self.partitions.is_ready(partition)
    }

    fn revoked(&self, revoked: &[i32]) {
        let partitions = &self.partitions;
        // Only partitions restored in this assignment are released cleanly: one never restored
        // here (no item of it handled since a late open, or an assignment taken as the consumer
        // closed) keeps the mark an earlier crash may have left on its local copy.
        let held: Vec<i32> = {
            let mut ready = lock(&partitions.ready);
            revoked
                .iter()
                .copied()
                .filter(|partition| ready.remove(partition).is_some())
                .collect()
        };
        let released = partitions
            .save(Some(&held))
            .and_then(|()| partitions.release(&held));
        if let Err(error) = released {
            tracing::warn!(%error, "cannot write down the cache's changelog positions");
        }
    }
}

impl<K, V> Cache<K, V> {
    /// Makes the cache follow the partitions of `source`, a Kafka topic read in a consumer
    /// group: what a handler writes while working on a message of partition *p* is stored under
    /// *p* and recorded in partition *p* of a compacted changelog topic; what it reads is the
    /// state of *p*. When the group assigns *p* to this instance, *p*'s state is restored from
    /// the changelog before its messages reach the handlers, so state moves with its partitions
    /// between the instances of an application and counts do not depend on how many run.
    ///
    /// The changelog topic is `{group.id}-{topic}-changelog` (for a column family,
    /// `{group.id}-{topic}-{family}-changelog`; see
    /// [`follow_with_changelog`](Cache::follow_with_changelog) to name it): it is named from
    /// what the code says, never from the directory, so instances whose directories are named
    /// differently share it. Two caches following one topic under one name are an error at
    /// start-up. The changelog is created when missing, with the source's partition count and
    /// `cleanup.policy=compact`; one with another partition count is an error at start-up. A
    /// changelog missing while the group has already committed positions in the topic is an
    /// error too (the state those messages built would be lost without a word: a renamed
    /// changelog, say), unless the topic's `state.fresh` setting is `true`
    /// (`SLIPSTREAM_STATE_FRESH=true` for one run). Keys and values are recorded in the cache's
    /// own encoding; deletions as tombstones.
    ///
    /// - Writes (`put`, `delete`, batches, the cache as a handler's sink) happen in handlers
    ///   reading `source` (or downstream of them, through proxies): elsewhere the partition is
    ///   unknown and they fail. A message is acknowledged (its offset committed) once its
    ///   changelog records are delivered.
    /// - Keep state keyed like the topic (by the message's key, or something derived from it
    ///   alone): a key written from two partitions has two values, one in each.
    /// - Reads in such a handler see the message's partition. Elsewhere (a timer, an HTTP
    ///   endpoint) they see every partition this instance holds: `get` looks in each, and
    ///   iteration merges them in key order.
    /// - Partitions revoked from this instance are kept on disk with their changelog position:
    ///   if one comes back (or the instance restarts with its directory), only the changelog's
    ///   tail is applied. An empty directory restores everything.
    ///
    /// ```no_run
    /// use std::sync::LazyLock;
    /// use slipstream::prelude::*;
    ///
    /// static EVENTS: LazyLock<Topic> = LazyLock::new(|| {
    ///     Topic::new("events").conf([("group.id", "counter"), ("auto.offset.reset", "earliest")])
    /// });
    /// static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    ///     Cache::open("db/counts").expect("the cache opens").follow(&EVENTS)
    /// });
    ///
    /// // Counted by the message's key: the keys of one partition's state are the keys the topic
    /// // puts in that partition, so each count lives in one partition.
    /// #[handle(source = EVENTS, sink = [print])]
    /// fn count(msg: Message<String, String>) -> Result<String, slipstream::Error> {
    ///     let key = msg.key.unwrap_or_default();
    ///     let count = COUNTS.get(&key)?.unwrap_or(0) + 1;
    ///     COUNTS.put(&key, &count)?;
    ///     Ok(format!("{key} {count}"))
    /// }
    /// ```
    pub fn follow<S: Partitioned>(self, source: &'static S) -> Self {
        self.follow_changelog(source, None)
    }

    /// [`follow`](Cache::follow), with the changelog topic named `changelog`.
    pub fn follow_with_changelog<S: Partitioned>(
        self,
        source: &'static S,
        changelog: impl Into<String>,
    ) -> Self {
        self.follow_changelog(source, Some(changelog.into()))
    }

    fn follow_changelog<S: Partitioned>(
        mut self,
        source: &'static S,
        changelog: Option<String>,
    ) -> Self {
        assert!(
            self.replica.is_none(),
            "the cache at {} replicates `{}`: it cannot also follow a topic's partitions",
            self.shared.path.display(),
            self.replica.as_ref().map_or("", |r| &r.source)
        );
        let partitions = Arc::new(Partitions::new(
            Arc::clone(&self.shared),
            self.family.clone(),
        ));
        if let Err(error) = partitions.drop_unreleased() {
            panic!(
                "the cache at {} cannot drop the partitions a crash left: {error}",
                self.shared.path.display()
            );
        }
        let state = Arc::new(State {
            partitions: Arc::clone(&partitions),
            name: self.state_name(),
            store: self.family.clone(),
        });
        let changelog = source.follow(state, changelog);
        self.follow = Some(Arc::new(Follow {
            source: source.source_name().into(),
            partitions,
            changelog,
        }));
        self
    }

    /// The cache's name in logs and errors: its directory's, and its column family's.
    fn state_name(&self) -> String {
        let directory = self
            .shared
            .path
            .file_name()
            .map_or_else(|| "cache".into(), |n| n.to_string_lossy().into_owned());
        match &self.family {
            Some(family) => format!("{directory}-{family}"),
            None => directory,
        }
    }

    /// The changelog of a following cache (for benchmarks and tools: restoring partitions
    /// directly).
    #[doc(hidden)]
    pub fn changelog(&self) -> Option<Arc<dyn Changelog>> {
        self.follow.as_ref().map(|f| Arc::clone(&f.changelog))
    }

    /// Checks (or creates) the changelog of a following cache; nothing otherwise.
    pub(super) fn prepare(&self) -> Result<(), Error> {
        match &self.follow {
            Some(follow) => follow.changelog.prepare(),
            None => Ok(()),
        }
    }
}
