//! Run with: cargo run --example group-counts
//!
//! State that follows its partitions, across processes. Emojis arrive on a 6-partition topic; an
//! application counts them in a cache that follows the topic (`Cache::follow`) and writes each
//! new count to an output topic. This program starts the embedded broker (unless
//! `SLIPSTREAM_BOOTSTRAP_SERVERS` is set) and runs the application as two instances (two child
//! processes of itself, each with a cache directory of its own) in one consumer group, which
//! shares the partitions between them. Once they have counted 60 emojis, one instance stops;
//! the other takes over its partitions, restores their counts from the changelog topic, and
//! counts 60 more. Reading the counts back from the output topic, it prints:
//! ```text
//! two instances counted: 🏆 30, 🐟 20, 📞 10
//! one instance counted on: 🏆 60, 🐟 40, 📞 20
//! ```
//! To run instances yourself, in several terminals against one broker:
//! `SLIPSTREAM_BOOTSTRAP_SERVERS=host:9092 cargo run --example group-counts -- instance DIR`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::LazyLock;

use futures::StreamExt;
use slipstream::prelude::*;
use slipstream_cache::Cache;
use slipstream_kafka::{Conf, Message, StartAt, Topic};

const EVENTS: &str = "group-counts-events";
const COUNTED: &str = "group-counts-counted";
const GROUP: &str = "group-counts";
const EMOJIS: [&str; 6] = ["🏆", "🐟", "🏆", "📞", "🐟", "🏆"];

/// The cache's directory (the instance's second argument).
fn directory() -> PathBuf {
    PathBuf::from(std::env::args().nth(2).expect("instance DIR"))
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new(EVENTS).conf([("group.id", GROUP), ("auto.offset.reset", "earliest")])
});
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| Topic::new(COUNTED));

/// The one line that makes the counts follow the partitions of the input.
static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    Cache::open(directory().join("counts"))
        .expect("the cache opens")
        .follow(&INPUT)
});

/// Counts each emoji, and writes its new count to the output.
#[handle(source = INPUT, sink = [OUTPUT])]
fn count(msg: Message<String, String>) -> Result<(String, String), slipstream::Error> {
    let count = COUNTS.get(&msg.value)?.unwrap_or(0) + 1;
    COUNTS.put(&msg.value, &count)?;
    Ok((msg.value, count.to_string()))
}

/// Starts an instance of the application: this program, as a child process.
fn instance(servers: &str, dir: &std::path::Path) -> std::io::Result<Child> {
    let mut command = Command::new(std::env::current_exe()?);
    if std::env::var("SLIPSTREAM_BOOTSTRAP_SERVERS").is_err() {
        // The embedded broker's rebalances wait out the session timeout: a short one, as an
        // application using it in-process gets.
        command
            .env("SLIPSTREAM_SESSION_TIMEOUT_MS", "6000")
            .env("SLIPSTREAM_HEARTBEAT_INTERVAL_MS", "500");
    }
    command
        .arg("instance")
        .arg(dir)
        .env("SLIPSTREAM_BOOTSTRAP_SERVERS", servers)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
}

/// Stops an instance as Ctrl-C would (a graceful shutdown), and waits for it.
fn stop(mut instance: Child) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-INT", &instance.id().to_string()])
        .status()?;
    let status = instance.wait()?;
    anyhow::ensure!(status.success(), "an instance stopped with {status}");
    Ok(())
}

/// Sends the six emojis `times` times, keyed by emoji.
async fn send(times: usize) -> anyhow::Result<()> {
    for _ in 0..times {
        for emoji in EMOJIS {
            INPUT.send(emoji, emoji).await?;
        }
    }
    Ok(())
}

/// Reads the output until the counts are `expected` (emoji, count) and formats them.
async fn counted(
    output: &mut (impl futures::Stream<Item = Message<String, String>> + Unpin),
    counts: &mut BTreeMap<String, u64>,
    expected: [(&str, u64); 3],
) -> anyhow::Result<String> {
    let done = |counts: &BTreeMap<String, u64>| {
        expected
            .iter()
            .all(|(emoji, n)| counts.get(*emoji) == Some(n))
    };
    while !done(counts) {
        let msg = output
            .next()
            .await
            .ok_or(anyhow::anyhow!("the output ended"))?;
        counts.insert(msg.key.unwrap_or_default(), msg.value.parse()?);
    }
    let shown: Vec<String> = expected.iter().map(|(e, n)| format!("{e} {n}")).collect();
    Ok(shown.join(", "))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if std::env::args().nth(1).as_deref() == Some("instance") {
        slipstream::run().await?;
        return Ok(());
    }
    let servers = match std::env::var("SLIPSTREAM_BOOTSTRAP_SERVERS") {
        Ok(servers) => servers,
        Err(_) => {
            Conf::set([("bootstrap_servers", "embedded")]);
            slipstream_kafka::embedded_address()?
        }
    };
    for topic in [EVENTS, COUNTED, &format!("{GROUP}-{EVENTS}-changelog")] {
        Topic::<String, String>::new(topic).create(6).await?;
    }
    let root = std::env::temp_dir().join(format!(
        "slipstream-example-group-counts-{}",
        std::process::id()
    ));
    let reader: Topic = Topic::new(COUNTED).start(StartAt::Beginning);
    let mut output = reader.stream()?;
    let mut counts = BTreeMap::new();

    let first = instance(&servers, &root.join("a"))?;
    let second = instance(&servers, &root.join("b"))?;
    send(10).await?;
    let shown = counted(
        &mut output,
        &mut counts,
        [("🏆", 30), ("🐟", 20), ("📞", 10)],
    )
    .await?;
    println!("two instances counted: {shown}");

    stop(second)?;
    send(10).await?;
    let shown = counted(
        &mut output,
        &mut counts,
        [("🏆", 60), ("🐟", 40), ("📞", 20)],
    )
    .await?;
    println!("one instance counted on: {shown}");
    stop(first)?;
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}
