//! Run with: cargo run --example pipeline
//!
//! A producer → topic → consumer pipeline of handlers: `produce` writes `(key, value)` pairs into
//! the `greetings` topic (the topic as a sink); `consume` reads them back (the topic as a
//! source) and prints each message. The topic ends at the end of its partition, so the run
//! ends. Uses the embedded broker unless `SLIPSTREAM_BOOTSTRAP_SERVERS` is set. Prints:
//! ```text
//! trophy Hello 🏆!
//! phone Hello 📞!
//! fish Hello 🐟!
//! ok Hello 👌!
//! ```

use std::sync::LazyLock;

use futures::stream::{self, Stream};
use slipstream::prelude::*;
use slipstream_kafka::{Conf, Message, Topic};

static GREETINGS: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new("greetings")
        .conf([("group_id", "pipeline"), ("auto_offset_reset", "earliest")])
        .stop_at_end(true)
});

fn emoji() -> impl Stream<Item = (&'static str, &'static str)> {
    stream::iter([
        ("trophy", "🏆"),
        ("phone", "📞"),
        ("fish", "🐟"),
        ("ok", "👌"),
    ])
}

#[handle(source = emoji(), sink = [GREETINGS])]
fn produce((name, emoji): (&'static str, &'static str)) -> (String, String) {
    (name.to_string(), format!("Hello {emoji}!"))
}

// Joining the consumer group takes a few seconds, by when everything has been produced: the
// partition's end is the end of the pipeline.
#[handle(source = GREETINGS, sink = [print])]
fn consume(msg: Message<String, String>) -> Message<String, String> {
    msg
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    GREETINGS.create(1).await?;
    slipstream::run().await?;
    Ok(())
}
