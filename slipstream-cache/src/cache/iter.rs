//! Ordered iteration over a cache, and snapshots.

use std::marker::PhantomData;

use rocksdb::{DBRawIteratorWithThreadMode, ReadOptions, SnapshotWithThreadMode};
use serde::de::DeserializeOwned;

use slipstream_core::{CacheErrorKind, Error};

use super::key::{CacheKey, KeyLike};
use super::{Cache, Db, cache_error};

/// What an iteration yields from each stored pair.
pub trait Project<K, V> {
    /// The item.
    type Item;
    /// Reads one item.
    fn project(cache: &Cache<K, V>, key: &[u8], value: &[u8]) -> Result<Self::Item, Error>;
}

/// Yields `(key, value)`.
#[derive(Debug)]
pub enum PairsOf {}
/// Yields keys.
#[derive(Debug)]
pub enum KeysOf {}
/// Yields values.
#[derive(Debug)]
pub enum ValuesOf {}

fn decode_key<K: CacheKey, V>(cache: &Cache<K, V>, key: &[u8]) -> Result<K, Error> {
    K::decode_key(key)
        .map_err(|e| cache_error(&cache.shared.path, CacheErrorKind::Decode, e.to_string()))
}

impl<K: CacheKey, V: DeserializeOwned> Project<K, V> for PairsOf {
    type Item = (K, V);
    fn project(cache: &Cache<K, V>, key: &[u8], value: &[u8]) -> Result<(K, V), Error> {
        Ok((decode_key(cache, key)?, cache.decode_value(value)?))
    }
}

impl<K: CacheKey, V> Project<K, V> for KeysOf {
    type Item = K;
    fn project(cache: &Cache<K, V>, key: &[u8], _value: &[u8]) -> Result<K, Error> {
        decode_key(cache, key)
    }
}

impl<K, V: DeserializeOwned> Project<K, V> for ValuesOf {
    type Item = V;
    fn project(cache: &Cache<K, V>, _key: &[u8], value: &[u8]) -> Result<V, Error> {
        cache.decode_value(value)
    }
}

/// An ordered iteration over a cache (see [`Cache::items`]): set where it starts, its direction
/// and a prefix before the first item is read.
pub struct Iter<'a, K, V, P> {
    cache: &'a Cache<K, V>,
    snapshot: Option<&'a SnapshotWithThreadMode<'a, Db>>,
    from: Option<Vec<u8>>,
    prefix: Option<Vec<u8>>,
    backwards: bool,
    /// One iterator per column family read (several: the partitions of a following cache),
    /// merged in key order.
    raws: Option<Vec<DBRawIteratorWithThreadMode<'a, Db>>>,
    done: bool,
    _project: PhantomData<fn() -> P>,
}

/// `(key, value)` pairs in key order.
pub type Items<'a, K, V> = Iter<'a, K, V, PairsOf>;
/// Keys in order.
pub type Keys<'a, K, V> = Iter<'a, K, V, KeysOf>;
/// Values in key order.
pub type Values<'a, K, V> = Iter<'a, K, V, ValuesOf>;

impl<'a, K, V, P> Iter<'a, K, V, P> {
    fn new(cache: &'a Cache<K, V>, snapshot: Option<&'a SnapshotWithThreadMode<'a, Db>>) -> Self {
        Iter {
            cache,
            snapshot,
            from: None,
            prefix: None,
            backwards: false,
            raws: None,
            done: false,
            _project: PhantomData,
        }
    }

    /// Starts at `key` (or, when it is absent, at the next key in the direction of iteration).
    #[allow(clippy::wrong_self_convention)] // the original's name for it
    pub fn from_key<Q: KeyLike<K> + ?Sized>(mut self, key: &Q) -> Self {
        self.from = Some(Cache::<K, V>::encode_key(key));
        self
    }

    /// Iterates from the last key to the first.
    pub fn backwards(mut self) -> Self {
        self.backwards = true;
        self
    }

    /// Only keys whose encoding starts with that of `prefix` (for `String` keys: keys that start
    /// with the string); the iteration ends after the last of them.
    pub fn prefix<Q: KeyLike<K> + ?Sized>(mut self, prefix: &Q) -> Self {
        self.prefix = Some(Cache::<K, V>::encode_key(prefix));
        self
    }

    fn start(&self) -> Result<Vec<DBRawIteratorWithThreadMode<'a, Db>>, Error> {
        let families = self.cache.read_places()?;
        Ok(families
            .into_iter()
            .map(|family| self.start_one(family))
            .collect())
    }

    fn start_one(
        &self,
        family: Option<std::sync::Arc<rocksdb::BoundColumnFamily<'a>>>,
    ) -> DBRawIteratorWithThreadMode<'a, Db> {
        let mut options = ReadOptions::default();
        if let Some(snapshot) = self.snapshot {
            options.set_snapshot(snapshot);
        }
        let db = &self.cache.shared.db;
        let mut raw = match family {
            Some(cf) => db.raw_iterator_cf_opt(&cf, options),
            None => db.raw_iterator_opt(options),
        };
        match (self.backwards, &self.prefix, &self.from) {
            (false, prefix, from) => match (prefix, from) {
                (Some(p), Some(f)) => raw.seek(p.max(f)),
                (Some(p), None) => raw.seek(p),
                (None, Some(f)) => raw.seek(f),
                (None, None) => raw.seek_to_first(),
            },
            (true, prefix, from) => {
                // The last key at or before both `from` and the end of the prefix.
                let end = prefix.as_deref().and_then(successor);
                match (end, from) {
                    (Some(end), Some(f)) if f.as_slice() < end.as_slice() => raw.seek_for_prev(f),
                    (Some(end), _) => {
                        raw.seek_for_prev(&end);
                        if raw.key() == Some(end.as_slice()) {
                            raw.prev();
                        }
                    }
                    (None, Some(f)) => raw.seek_for_prev(f),
                    (None, None) => raw.seek_to_last(),
                }
            }
        }
        raw
    }
}

/// The smallest byte string greater than every string that starts with `prefix`, if any.
fn successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

impl<K, V, P: Project<K, V>> Iterator for Iter<'_, K, V, P> {
    type Item = Result<P::Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.raws.is_none() {
            match self.start() {
                Ok(raws) => self.raws = Some(raws),
                Err(error) => {
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
        let backwards = self.backwards;
        let raws = self.raws.as_mut().expect("started");
        // The iterator whose key comes first in the direction of iteration.
        let mut first: Option<usize> = None;
        for (i, raw) in raws.iter().enumerate() {
            let Some(key) = raw.key() else {
                if let Err(error) = raw.status() {
                    self.done = true;
                    return Some(Err(super::db_error(&self.cache.shared.path, error)));
                }
                continue;
            };
            let better = first.is_none_or(|f| {
                let best = raws[f].key().expect("valid");
                if backwards { key > best } else { key < best }
            });
            if better {
                first = Some(i);
            }
        }
        let Some(first) = first else {
            self.done = true;
            return None;
        };
        let raw = &mut raws[first];
        let (key, value) = raw.item().expect("valid");
        if let Some(prefix) = &self.prefix
            && !key.starts_with(prefix)
        {
            self.done = true;
            return None;
        }
        let item = P::project(self.cache, key, value);
        if self.backwards {
            raw.prev();
        } else {
            raw.next();
        }
        Some(item)
    }
}

impl<K, V> Cache<K, V> {
    /// `(key, value)` pairs in key order (see [`Iter`] for ranges, prefixes and direction).
    ///
    /// ```no_run
    /// # fn demo(cache: &slipstream::Cache<i64, String>) -> Result<(), slipstream::Error> {
    /// // The last entry at or before 100 (a temporal join's nearest earlier event).
    /// let latest = cache.items().from_key(&100).backwards().next().transpose()?;
    /// # Ok(()) }
    /// ```
    pub fn items(&self) -> Items<'_, K, V> {
        Iter::new(self, None)
    }

    /// Keys in order.
    pub fn keys(&self) -> Keys<'_, K, V> {
        Iter::new(self, None)
    }

    /// Values in key order.
    pub fn values(&self) -> Values<'_, K, V> {
        Iter::new(self, None)
    }

    /// A consistent read-only view of the cache as it is now; later writes do not show in it.
    pub fn snapshot(&self) -> Snapshot<'_, K, V> {
        Snapshot {
            cache: self,
            snapshot: self.shared.db.snapshot(),
        }
    }
}

/// A read-only view of a cache at one moment (see [`Cache::snapshot`]).
pub struct Snapshot<'a, K, V> {
    cache: &'a Cache<K, V>,
    snapshot: SnapshotWithThreadMode<'a, Db>,
}

impl<K, V> Snapshot<'_, K, V> {
    /// `(key, value)` pairs in key order, as they were.
    pub fn items(&self) -> Items<'_, K, V> {
        Iter::new(self.cache, Some(&self.snapshot))
    }

    /// Keys in order, as they were.
    pub fn keys(&self) -> Keys<'_, K, V> {
        Iter::new(self.cache, Some(&self.snapshot))
    }
}

impl<K, V: DeserializeOwned> Snapshot<'_, K, V> {
    /// The value of `key`, as it was.
    pub fn get<Q: KeyLike<K> + ?Sized>(&self, key: &Q) -> Result<Option<V>, Error> {
        let key = Cache::<K, V>::encode_key(key);
        for family in self.cache.read_places()? {
            let found = match family {
                Some(cf) => self.snapshot.get_cf(&cf, &key),
                None => self.snapshot.get(&key),
            }
            .map_err(|e| super::db_error(&self.cache.shared.path, e))?;
            if let Some(bytes) = found {
                return self.cache.decode_value(&bytes).map(Some);
            }
        }
        Ok(None)
    }
}
