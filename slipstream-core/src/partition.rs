//! State that follows the partitions of a source read by a group of instances.
//!
//! A partitioned source (a Kafka topic read in a consumer group) spreads its partitions over
//! the instances of an application. State kept per partition moves with them: a store
//! ([`PartitionState`], a cache) keeps what handlers write while working on an item of
//! partition *p* under *p* and records it in a changelog ([`Changelog`], a compacted topic);
//! when *p* is assigned to an instance, the instance brings its copy of *p* up to date from the
//! changelog before handling *p*'s items. The source ([`Partitioned`]) ties the two together.
//!
//! Applications use this through `Cache::follow`; these traits are what a store or a source of
//! another kind implements to take part.
//!
//! Below: ack and error. Must not name the monitor, the context or the runtime.

use std::sync::Arc;

use crate::ack::Ack;
use crate::error::Error;

pub use crate::ack::Origin;

/// The origin of the item the running handler is working on, when its source is partitioned:
/// what a handler's writes to partitioned state are stored under. `None` outside handlers, for
/// and items of other sources. For items a pipe combined (a batch, or an item following ones a
/// filter dropped), the newest one's.
///
/// ```
/// // Outside a handler there is no item.
/// assert_eq!(slipstream::partition::origin(), None);
/// ```
pub fn origin() -> Option<Origin> {
    crate::ack::current_origin()
}

/// A holder of the acknowledgement of the item the running handler is working on, if it has
/// one: a write that is delivered later (a changelog record) holds it until then, so that the
/// item counts as done only once the write is.
pub fn current_ack() -> Option<Ack> {
    crate::ack::current()
}

/// One change of a partition's state, as its changelog records it: `value` `None` is a
/// deletion (a tombstone).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The key, in the store's encoding.
    pub key: Vec<u8>,
    /// The value, in the store's encoding, or `None` for a deletion.
    pub value: Option<Vec<u8>>,
}

/// State kept per partition of a [`Partitioned`] source (a cache that follows a topic).
///
/// Positions are changelog offsets: the position of a partition is the offset of the first
/// changelog record the local copy has not applied.
pub trait PartitionState: Send + Sync + 'static {
    /// A name for the state in logs and errors (a cache's directory).
    fn name(&self) -> String;

    /// What tells this state apart from other states following the same source, in its
    /// changelog's name; `None` (the default) for a source's only state. It must come from the
    /// code (a column family's name), never from anything local such as a directory's name:
    /// every instance of the application must name the same changelog.
    fn store(&self) -> Option<String> {
        None
    }

    /// The position of the local copy of `partition`; `None` when it holds nothing of it.
    fn position(&self, partition: i32) -> Result<Option<i64>, Error>;

    /// Drops the local copy of `partition` and its position (it follows another changelog: one
    /// renamed, or deleted and created again), so that it is restored from the changelog's
    /// start.
    fn reset(&self, partition: i32) -> Result<(), Error>;

    /// Applies changelog records of `partition` and records `next` as its position, atomically
    /// (a restoration interrupted at any point resumes from the last batch applied).
    fn apply(&self, partition: i32, changes: &[Change], next: i64) -> Result<(), Error>;

    /// The changelog acknowledged a record of `partition` at `offset`: the local copy, which
    /// held the change already, is up to date through it.
    fn delivered(&self, partition: i32, offset: i64);

    /// The changelog refused a change of `partition` (the application stops): the local copy
    /// holds a change its changelog lacks, so it must not be trusted after a restart.
    fn refused(&self, partition: i32) {
        let _ = partition;
    }

    /// `partitions` are this instance's and up to date: handlers may use them.
    fn ready(&self, partitions: &[i32]);

    /// Whether `partition` is this instance's and up to date.
    fn is_ready(&self, partition: i32) -> bool;

    /// `partitions` went to another instance: their local copies are kept, with their
    /// positions, for a fast return.
    fn revoked(&self, partitions: &[i32]);
}

/// Where a [`PartitionState`] records its changes (a compacted topic with a partition per
/// source partition).
pub trait Changelog: Send + Sync + 'static {
    /// The changelog's name, once it is known.
    fn name(&self) -> Result<String, Error>;

    /// Checks (or creates) the changelog. Called at start-up by the components that know the
    /// state is used; every other call does it too when it has not been done.
    fn prepare(&self) -> Result<(), Error>;

    /// Records a change of `partition`, delivered in the background; `ack` is held until the
    /// changelog has it (a refused record fails it and stops the application).
    fn append(&self, partition: i32, change: Change, ack: Option<Ack>) -> Result<(), Error>;

    /// Whether the group has assigned `partition` to this instance (a handler still working on
    /// an item of a partition revoked meanwhile must not restore it: its new owner handles the
    /// item again).
    fn owns(&self, partition: i32) -> bool;

    /// Brings the local copies of `partitions` up to date from the changelog, blocking until
    /// done, then marks them ready.
    fn restore(&self, partitions: &[i32]) -> Result<(), Error>;

    /// Feeds `replica` with every partition of the changelog (a replicated cache of the state:
    /// every instance holds all of it), checking (or creating) the changelog first.
    fn replicate(self: Arc<Self>, replica: Arc<dyn Replica>) -> Arc<dyn Replication>;
}

/// A source whose partitions state can follow (a Kafka topic read in a consumer group).
pub trait Partitioned: Send + Sync + 'static {
    /// The source's name, as [`Origin::source`] gives it.
    fn source_name(&self) -> &str;

    /// Attaches `state` to the source: from now on its partitions are restored when the source
    /// is assigned them and released when they are revoked. Returns the changelog the state
    /// records its changes in. Nothing is checked yet (see [`Changelog::prepare`]).
    fn follow(
        &'static self,
        state: Arc<dyn PartitionState>,
        changelog: Option<String>,
    ) -> Arc<dyn Changelog>;
}

impl<T: Partitioned, F: FnOnce() -> T + Send + 'static> Partitioned for std::sync::LazyLock<T, F> {
    fn source_name(&self) -> &str {
        (**self).source_name()
    }

    fn follow(
        &'static self,
        state: Arc<dyn PartitionState>,
        changelog: Option<String>,
    ) -> Arc<dyn Changelog> {
        let source: &'static T = self;
        source.follow(state, changelog)
    }
}

/// A store every instance of an application holds whole (a replicated cache), fed with the
/// records of every partition of a [`Replicated`] source.
///
/// Positions are per source partition: the offset of the first record not applied yet.
pub trait Replica: Send + Sync + 'static {
    /// A name for the store, for logs and errors (a cache's directory).
    fn name(&self) -> String;

    /// The position of the replica in `partition`; `None` when it holds nothing of it.
    fn position(&self, partition: i32) -> Result<Option<i64>, Error>;

    /// Applies records of `partition` and records `next` as its position, atomically.
    fn apply(&self, partition: i32, changes: &[Change], next: i64) -> Result<(), Error>;
}

/// How a replicated source's keys and values become [`Change`]s in the replica's encoding
/// (`None` value: a deletion).
pub type Encode<K, V> = Arc<dyn Fn(&K, Option<&V>) -> Result<Change, Error> + Send + Sync>;

/// A source a [`Replica`] can hold whole: a Kafka topic (read without a group: every partition),
/// or a following cache (its changelog).
pub trait Replicated<K, V>: Send + Sync + 'static {
    /// The source's name, for errors.
    fn replicated_name(&self) -> String;

    /// Starts feeding `replica` in the background, from its positions; `encode` turns decoded
    /// records into changes (sources already in the replica's encoding ignore it).
    fn replicate(
        &'static self,
        replica: Arc<dyn Replica>,
        encode: Encode<K, V>,
    ) -> Arc<dyn Replication>;
}

impl<K, V, T, F> Replicated<K, V> for std::sync::LazyLock<T, F>
where
    T: Replicated<K, V>,
    F: FnOnce() -> T + Send + 'static,
{
    fn replicated_name(&self) -> String {
        (**self).replicated_name()
    }

    fn replicate(
        &'static self,
        replica: Arc<dyn Replica>,
        encode: Encode<K, V>,
    ) -> Arc<dyn Replication> {
        let source: &'static T = self;
        source.replicate(replica, encode)
    }
}

/// The background work feeding a [`Replica`].
pub trait Replication: Send + Sync + 'static {
    /// Waits until the replica holds everything the source held when the feed started (at once
    /// afterwards); the error that stopped the feed, if one did.
    fn caught_up(&self) -> Result<(), Error>;

    /// Records applied since the feed started.
    fn applied(&self) -> u64;

    /// Stops the feed and waits for it to let go of the replica.
    fn stop(&self);
}
