//! Where a cache's reads and writes go: its column family or, in a following cache, the
//! partition of the item being handled; and the changelog record of each write there. Below:
//! the cache and follow. Must not name batches, the feed or options.

use std::sync::Arc;

use rocksdb::BoundColumnFamily;

use slipstream_core::partition::Change;
use slipstream_core::{CacheErrorKind, Error};

use super::{Cache, cache_error};

/// Where a write, or a read in a handler, goes.
pub(super) struct Place<'a> {
    pub(super) family: Option<Arc<BoundColumnFamily<'a>>>,
    /// The partition, in a following cache.
    pub(super) partition: Option<i32>,
}

impl<K, V> Cache<K, V> {
    /// Where writes go: the cache's column family or, in a following cache, the partition of the
    /// item being handled (restored first if it was not yet).
    pub(super) fn place(&self) -> Result<Place<'_>, Error> {
        let Some(follow) = &self.follow else {
            if let Some(error) = self.read_only() {
                return Err(error);
            }
            return Ok(Place {
                family: self.family(),
                partition: None,
            });
        };
        let path = &self.shared.path;
        let origin = slipstream_core::partition::origin();
        match origin {
            Some(origin) if *origin.source == *follow.source => {
                let partition = origin.partition;
                follow.restored(path, partition)?;
                Ok(Place {
                    family: Some(follow.partitions.data(partition)?),
                    partition: Some(partition),
                })
            }
            Some(origin) => Err(cache_error(
                path,
                CacheErrorKind::Partition,
                format!(
                    "the cache follows the partitions of `{}`, but it is written while handling an item of `{}`: write it in handlers reading `{}`",
                    follow.source, origin.source, follow.source
                ),
            )),
            None => Err(cache_error(
                path,
                CacheErrorKind::Partition,
                format!(
                    "the cache follows the partitions of `{}`: it is written in handlers reading `{}` (elsewhere the partition is unknown)",
                    follow.source, follow.source
                ),
            )),
        }
    }

    /// Where writes and reads of `partition` go (for the checkpoint of a dependent topic, which
    /// records heartbeats in each partition held): the cache's column family when it does not
    /// follow partitions.
    pub(super) fn place_in(&self, partition: i32) -> Result<Place<'_>, Error> {
        let Some(follow) = &self.follow else {
            return self.place();
        };
        follow.restored(&self.shared.path, partition)?;
        Ok(Place {
            family: Some(follow.partitions.data(partition)?),
            partition: Some(partition),
        })
    }

    /// Where reads go: where writes go in a handler reading the followed source; elsewhere,
    /// every partition this instance holds.
    pub(super) fn read_places(&self) -> Result<Vec<Option<Arc<BoundColumnFamily<'_>>>>, Error> {
        let Some(follow) = &self.follow else {
            self.caught_up()?;
            return Ok(vec![self.family()]);
        };
        let origin = slipstream_core::partition::origin();
        if origin.is_some_and(|o| *o.source == *follow.source) {
            return Ok(vec![self.place()?.family]);
        }
        follow
            .partitions
            .held()
            .into_iter()
            .map(|p| follow.partitions.data(p).map(Some))
            .collect()
    }

    /// Records a write in the changelog, in a following cache.
    pub(super) fn record(
        &self,
        place: &Place<'_>,
        key: &[u8],
        value: Option<&[u8]>,
    ) -> Result<(), Error> {
        let (Some(follow), Some(partition)) = (&self.follow, place.partition) else {
            return Ok(());
        };
        let change = Change {
            key: key.to_vec(),
            value: value.map(<[u8]>::to_vec),
        };
        let partitions = &follow.partitions;
        partitions.count_pending(partition, 1);
        follow
            .changelog
            .append(partition, change, slipstream_core::partition::current_ack())
    }
}
