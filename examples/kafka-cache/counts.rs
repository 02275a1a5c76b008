//! Run with: cargo run --example counts
//!
//! Persistence: emojis arrive on a topic; a handler counts them in a cache (a transaction per
//! emoji keeps concurrent updates of one count apart); a timer handler prints the counts every
//! second until Ctrl-C. The counts live in a RocksDB directory, so they survive a restart: run
//! it twice and the second run continues from the first run's counts. Uses the embedded broker
//! unless `SLIPSTREAM_BOOTSTRAP_SERVERS` is set. The first run prints, once the six emojis are
//! counted:
//! ```text
//! 🏆 3, 🐟 2, 📞 1
//! ```
//! and a second run `🏆 6, 🐟 4, 📞 2`. Delete the directory it names on standard error to
//! start over.

use std::sync::LazyLock;
use std::time::Duration;

use futures::stream;
use slipstream::prelude::*;
use slipstream_cache::Cache;
use slipstream_kafka::{Conf, Message, Topic};

static EMOJI: LazyLock<Topic> = LazyLock::new(|| {
    // Read in a group from its committed offsets: on a broker that keeps the topic between
    // runs, each emoji is counted once (the embedded broker starts empty each run anyway).
    Topic::new("emoji-counts").conf([("group.id", "counts"), ("auto.offset.reset", "earliest")])
});

static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    let path = std::env::temp_dir().join("slipstream-example-counts");
    eprintln!("counts are kept in {}", path.display());
    Cache::open(path).expect("the cache opens")
});

/// Sends six emojis.
#[handle(source = stream::iter(["🏆", "🐟", "🏆", "📞", "🐟", "🏆"]), sink = [EMOJI])]
fn send(emoji: &'static str) -> String {
    emoji.to_owned()
}

/// Counts each emoji in the cache.
#[handle(source = EMOJI)]
async fn count(msg: Message<String, String>) -> Result<(), slipstream::Error> {
    let _guard = COUNTS.transaction(&msg.value).await;
    let count = COUNTS.get(&msg.value)?.unwrap_or(0);
    COUNTS.put(&msg.value, &(count + 1))
}

/// Prints the counts every second.
#[handle(source = timer(Duration::from_secs(1)), sink = [print])]
fn show() -> Result<Option<String>, slipstream::Error> {
    let counts = COUNTS
        .items()
        .map(|item| item.map(|(emoji, count)| format!("{emoji} {count}")))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((!counts.is_empty()).then(|| counts.join(", ")))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    EMOJI.create(1).await?;
    slipstream::run().await?;
    Ok(())
}
