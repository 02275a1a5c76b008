//! Examples of slipstream with Kafka and the cache; run one with `cargo run --example NAME` from the repository root.
//! This library is empty: Cargo needs a target in every package.
