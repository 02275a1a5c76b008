//! Run with: cargo run --example codec
//!
//! Values encoded as JSON with `JsonCodec` (here the default codec of `serde_json::Value`; use
//! `Topic::json` for your own serde types). Uses the embedded broker unless
//! `SLIPSTREAM_BOOTSTRAP_SERVERS` is set. Prints:
//! ```text
//! {"msg":"🐟"}
//! ```

use std::sync::LazyLock;

use futures::StreamExt;
use serde_json::{Value, json};
use slipstream_kafka::{Conf, Topic};

static EMOJI: LazyLock<Topic<String, Value>> = LazyLock::new(|| {
    Topic::new("emoji-json")
        .conf([("auto_offset_reset", "earliest"), ("group_id", "demo")])
        .stop_at_end(true)
});

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    EMOJI.create(1).await?;

    EMOJI.send("fish", json!({"msg": "🐟"})).await?;

    let mut messages = EMOJI.stream()?;
    while let Some(msg) = messages.next().await {
        println!("{}", msg.value);
    }
    Ok(())
}
