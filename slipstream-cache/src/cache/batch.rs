//! Writes applied together: a [`Batch`], made by [`Cache::batch`] and applied by
//! [`Cache::write`]. Below: the cache, place (where writes go), keys. Must not name the feed.

use rocksdb::WriteBatch;

use slipstream_core::{CacheErrorKind, Error};

use super::key::KeyLike;
use super::place::Place;
use super::{Cache, ValueLike, cache_error};

impl<K, V> Cache<K, V> {
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
}

/// Writes applied together (see [`Cache::batch`]).
pub struct Batch<'a, K, V> {
    cache: &'a Cache<K, V>,
    batch: WriteBatch,
    /// Where it goes (`None` when it cannot be written: writing says why).
    place: Option<Place<'a>>,
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
