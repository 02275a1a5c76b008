//! Run with: cargo bench -p slipstream-tests --bench exactly_once
//!
//! The same topic → handler → topic pipeline (read N records, upper-case each value, produce
//! it) run twice on one broker in one run: at-least-once, then exactly-once
//! (`processing.guarantee = exactly_once`, a transaction every 100 ms). Prints both rates and
//! their ratio. Uses librdkafka's mock cluster, or the fresh broker at `BENCH_KAFKA_BROKER` (one that
//! commits transactions).

#[path = "common/mock.rs"]
mod mock;

use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use slipstream::prelude::*;
use slipstream::{Message, StartAt, Topic};

const N: usize = 200_000;
const PARTITIONS: i32 = 3;
/// The bench's topics; the mock cluster (which takes no admin API) also gets the positions
/// topics exactly-once keeps there.
const TOPICS: [(&str, i32); 5] = [
    ("eos-bench-in", PARTITIONS),
    ("eos-bench-out-alo", PARTITIONS),
    ("eos-bench-out-eos", PARTITIONS),
    ("eos-bench-eos-slipstream-offsets", 1),
    ("eos-bench-alo-slipstream-offsets", 1),
];

static SERVERS: LazyLock<String> =
    LazyLock::new(|| mock::servers(TOPICS.iter().map(|(t, p)| (t.to_string(), *p)).collect()));

/// The settings of the pipeline reading in group `group`, under `guarantee`.
fn conf(group: &str, guarantee: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", SERVERS.clone()),
        ("group.id", group.to_owned()),
        ("processing.guarantee", guarantee.to_owned()),
        ("commit.interval.ms", "100".to_owned()),
    ]
}

fn input(group: &str, guarantee: &str) -> Topic {
    Topic::new("eos-bench-in")
        .conf(conf(group, guarantee))
        .start(StartAt::Beginning)
        .stop_at_end(true)
}

static INPUT_ALO: LazyLock<Topic> = LazyLock::new(|| input("eos-bench-alo", "at_least_once"));
static OUTPUT_ALO: LazyLock<Topic> =
    LazyLock::new(|| Topic::new("eos-bench-out-alo").conf(conf("eos-bench-alo", "at_least_once")));
static INPUT_EOS: LazyLock<Topic> = LazyLock::new(|| input("eos-bench-eos", "exactly_once"));
static OUTPUT_EOS: LazyLock<Topic> =
    LazyLock::new(|| Topic::new("eos-bench-out-eos").conf(conf("eos-bench-eos", "exactly_once")));

/// When the running pipeline handled its first record (start-up, the group join above all, is
/// not measured).
static FIRST: std::sync::Mutex<Option<Instant>> = std::sync::Mutex::new(None);

fn upper(msg: Message<String, String>) -> (String, String) {
    FIRST.lock().unwrap().get_or_insert_with(Instant::now);
    (msg.key.unwrap_or_default(), msg.value.to_uppercase())
}

#[handle(source = INPUT_ALO, sink = [OUTPUT_ALO])]
fn at_least_once(msg: Message<String, String>) -> (String, String) {
    upper(msg)
}

#[handle(source = INPUT_EOS, sink = [OUTPUT_EOS])]
fn exactly_once(msg: Message<String, String>) -> (String, String) {
    upper(msg)
}

/// Runs handler `name` until the input's end (and its last commit); how long it took from
/// the first record handled.
async fn timed(name: &'static str) -> Duration {
    *FIRST.lock().unwrap() = None;
    slipstream::App::new()
        .handlers([name])
        .signals(false)
        .logging(false)
        .run()
        .await
        .unwrap();
    FIRST
        .lock()
        .unwrap()
        .expect("a record was handled")
        .elapsed()
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_KAFKA_BROKER").is_ok() {
        mock::require_fresh(&SERVERS, &TOPICS.map(|(topic, _)| topic));
        for (topic, partitions) in &TOPICS[..3] {
            Topic::<String, String>::new(*topic)
                .conf(conf("admin", "at_least_once"))
                .create(*partitions)
                .await
                .unwrap();
        }
    }
    mock::fill(&SERVERS, "eos-bench-in", N).await;
    let at_least_once = timed("at_least_once").await;
    let exactly_once = timed("exactly_once").await;
    // The exactly-once run committed every position, in its transactions.
    let positions: rdkafka::consumer::BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", SERVERS.as_str())
        .set("group.id", "eos-bench-eos")
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition("eos-bench-in", partition);
    }
    let committed: i64 =
        rdkafka::consumer::Consumer::committed_offsets(&positions, list, Duration::from_secs(10))
            .unwrap()
            .elements()
            .iter()
            .filter_map(|e| e.offset().to_raw())
            .filter(|offset| *offset > 0)
            .sum();
    if std::env::var("BENCH_KAFKA_BROKER").is_ok() {
        assert_eq!(
            committed, N as i64,
            "the exactly-once run committed every position"
        );
    }
    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    println!(
        "{N} records: consume -> upper-case -> produce, {PARTITIONS} partitions, broker {}",
        *SERVERS
    );
    println!(
        "at-least-once                       : {:>9.0} msg/s ({at_least_once:?})",
        rate(at_least_once)
    );
    println!(
        "exactly-once (a transaction / 100 ms): {:>9.0} msg/s ({exactly_once:?})",
        rate(exactly_once)
    );
    println!(
        "ratio exactly-once / at-least-once: {:.2}",
        rate(exactly_once) / rate(at_least_once)
    );
}
