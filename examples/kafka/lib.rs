//! Kafka examples of slipstream (librdkafka, no RocksDB); run one with `cargo run --example NAME` from the repository root.
//! This library is empty: Cargo needs a target in every package.
