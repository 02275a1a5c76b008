//! Run with: cargo run --example topic
//!
//! The seed's first example: a `Topic` used on its own — send two records, then read them back.
//! Uses the embedded development broker unless `SLIPSTREAM_BOOTSTRAP_SERVERS` points at a real
//! one. Prints:
//! ```text
//! trophy 🏆
//! fish 🐟
//! ```

use std::sync::LazyLock;

use futures::StreamExt;
use slipstream_kafka::{Conf, Topic};

static EMOJI: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new("emoji")
        .conf([
            ("auto_offset_reset", "earliest"),
            ("group_instance_id", "demo"),
            ("group_id", "demo"),
        ])
        // End the stream once everything sent so far has been read.
        .stop_at_end(true)
});

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    EMOJI.create(1).await?;

    EMOJI.send("trophy", "🏆").await?;
    EMOJI.send("fish", "🐟").await?;

    let mut messages = EMOJI.stream()?;
    while let Some(msg) = messages.next().await {
        println!("{} {}", msg.key.unwrap_or_default(), msg.value);
    }
    Ok(())
}
