//! Cache examples of slipstream (RocksDB, no librdkafka); run one with `cargo run --example NAME` from the repository root.
//! This library is empty: Cargo needs a target in every package.
