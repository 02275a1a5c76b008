//! A cache as the store of a `Checkpoint`; one that follows the dependent topic's partitions
//! keeps the checkpoint's record of each partition in that partition.

use serde_json::Value;

use slipstream_core::{CheckpointStore, Error};

use super::Cache;

/// A checkpoint persists its state in a `Cache<String, serde_json::Value>`
/// (`CheckpointBuilder::cache`). When the cache follows the dependent topic's partitions
/// ([`Cache::follow`]), the checkpoint keeps a record per partition, which moves with it.
impl CheckpointStore for Cache<String, Value> {
    fn load(&self, key: &str) -> Result<Option<Value>, Error> {
        self.get(key)
    }

    fn save(&self, key: &str, value: &Value) -> Result<(), Error> {
        self.put(key, value)
    }

    fn held(&self) -> Option<Vec<(i32, u64)>> {
        self.follow.as_ref().map(|f| f.partitions.assignments())
    }

    fn load_in(&self, partition: i32, key: &str) -> Result<Option<Value>, Error> {
        if self.follow.is_none() {
            return self.load(key);
        }
        let place = self.place_in(partition)?;
        let key = Self::encode_key(key);
        let db = &self.shared.db;
        let found = match &place.family {
            Some(cf) => db.get_pinned_cf(cf, &key),
            None => db.get_pinned(&key),
        }
        .map_err(|e| self.error(e))?;
        found.map(|bytes| self.decode_value(&bytes)).transpose()
    }

    fn save_in(&self, partition: i32, key: &str, value: &Value) -> Result<(), Error> {
        if self.follow.is_none() {
            return self.save(key, value);
        }
        let place = self.place_in(partition)?;
        let key = Self::encode_key(key);
        let value = self.encode_value(value)?;
        let db = &self.shared.db;
        match &place.family {
            Some(cf) => db.put_cf(cf, &key, &value),
            None => db.put(&key, &value),
        }
        .map_err(|e| self.error(e))?;
        self.record(&place, &key, Some(&value))
    }
}
