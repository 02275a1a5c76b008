//! The persistent cache of [slipstream](https://docs.rs/slipstream): [`Cache`], ordered
//! key-value state in RocksDB, usable as a handler sink (it stores and publishes each update)
//! and source (the update feed).
//!
//! Applications usually reach these through the `cache` feature of the `slipstream` crate
//! (`slipstream::Cache`); depending on this crate directly gives the same types.

#![warn(missing_docs)]

mod cache;

pub use cache::{
    Batch, Cache, CacheKey, CacheOptions, CacheSink, Items, Iter, KeyError, KeyLike, Keys, KeysOf,
    PairsOf, Project, Snapshot, Transaction, ValueLike, Values, ValuesOf,
};
pub use slipstream_core::CacheErrorKind;
