//! Run with: cargo bench -p slipstream-tests --bench kafka
//!
//! consume → handler → produce through slipstream, against two hand-written rdkafka loops doing
//! the same work on the same broker, in one run: read N records, upper-case each value, produce
//! it to an output topic, commit progress every 500 ms, stop at the end of the input.
//!
//! - "awaiting": the plain at-least-once loop — produce, wait for the broker's acknowledgement,
//!   store the offset (measured on the first 1,000 records: it is slow);
//! - "pipelined": the fastest loop — enqueue every record without waiting, flush and commit at
//!   the end (no per-record guarantee: a crash loses or repeats whatever was in flight).
//!
//! slipstream pipelines records too but commits an input offset only once the records produced
//! from it are acknowledged. Prints the rates and the ratios. Uses librdkafka's mock cluster, or
//! the fresh broker at `BENCH_KAFKA_BROKER` (its topics must not exist yet).

#[path = "common/mock.rs"]
mod mock;

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use slipstream::prelude::*;
use slipstream::{Message, StartAt, Topic};

const N: usize = 20_000;
const PARTITIONS: i32 = 3;
const AWAITING_LIMIT: usize = 1_000;
const TOPICS: [&str; 4] = [
    "bench-in",
    "bench-out-slipstream",
    "bench-out-awaiting",
    "bench-out-pipelined",
];

static SERVERS: LazyLock<String> =
    LazyLock::new(|| mock::servers(TOPICS.iter().map(|t| (t.to_string(), PARTITIONS)).collect()));

fn conf(group: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", SERVERS.clone()),
        ("group.id", group.to_owned()),
    ]
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new("bench-in")
        .conf(conf("bench-slipstream"))
        .start(StartAt::Beginning)
        .stop_at_end(true)
});
static OUTPUT: LazyLock<Topic> =
    LazyLock::new(|| Topic::new("bench-out-slipstream").conf(conf("writer")));

#[handle(source = INPUT, sink = [OUTPUT])]
fn upper(msg: Message<String, String>) -> (String, String) {
    (msg.key.unwrap_or_default(), msg.value.to_uppercase())
}

fn client(group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in conf(group) {
        config.set(key, value);
    }
    config
}

/// The same work by hand, on the first `limit` records: assign every partition from the
/// beginning, produce each upper-cased value (waiting for the broker when `awaiting`), commit
/// every 500 ms, stop at the end of every partition.
async fn raw(group: &str, output: &str, limit: usize, awaiting: bool) -> Result<usize, KafkaError> {
    let consumer: StreamConsumer = client(group)
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let producer: FutureProducer = client("writer").create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset("bench-in", partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut at_end = HashSet::new();
    let mut last_commit = Instant::now();
    let mut pending = std::collections::VecDeque::new();
    let mut handled = 0;
    while at_end.len() < PARTITIONS as usize && handled < limit {
        match consumer.recv().await {
            Ok(msg) => {
                let value = std::str::from_utf8(msg.payload().unwrap_or_default())
                    .unwrap()
                    .to_uppercase();
                let key = msg.key().unwrap_or_default().to_vec();
                let record = FutureRecord::to(output).key(&key).payload(&value);
                if awaiting {
                    producer
                        .send(record, Duration::from_secs(30))
                        .await
                        .map_err(|(e, _)| e)?;
                } else {
                    pending.push_back(producer.send_result(record).map_err(|(e, _)| e)?);
                    while pending.len() > 10_000 {
                        pending
                            .pop_front()
                            .unwrap()
                            .await
                            .unwrap()
                            .map_err(|(e, _)| e)?;
                    }
                }
                consumer.store_offset_from_message(&msg)?;
                if last_commit.elapsed() > Duration::from_millis(500) {
                    consumer.commit_consumer_state(CommitMode::Async)?;
                    last_commit = Instant::now();
                }
                handled += 1;
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
            }
            Err(error) => return Err(error),
        }
    }
    for delivery in pending {
        delivery.await.unwrap().map_err(|(e, _)| e)?;
    }
    consumer.commit_consumer_state(CommitMode::Sync)?;
    Ok(handled)
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_KAFKA_BROKER").is_ok() {
        mock::require_fresh(&SERVERS, &TOPICS);
        for topic in TOPICS {
            Topic::<String, String>::new(topic)
                .conf(conf("admin"))
                .create(PARTITIONS)
                .await
                .unwrap();
        }
    }
    mock::fill(&SERVERS, "bench-in", N).await;

    let timed_raw = |group, output, limit, awaiting| async move {
        let started = Instant::now();
        let handled = raw(group, output, limit, awaiting).await.unwrap();
        (handled, started.elapsed())
    };
    let awaiting = timed_raw("bench-awaiting", "bench-out-awaiting", AWAITING_LIMIT, true).await;
    let pipelined = timed_raw("bench-pipelined", "bench-out-pipelined", N, false).await;

    let started = Instant::now();
    slipstream::App::new()
        .handlers(["upper"])
        .signals(false)
        .logging(false)
        .run()
        .await
        .unwrap();
    let framework = (N, started.elapsed());

    let rate = |(n, d): (usize, Duration)| n as f64 / d.as_secs_f64();
    println!(
        "{N} records: consume -> upper-case -> produce, {PARTITIONS} partitions, broker {}",
        *SERVERS
    );
    for (name, (n, d)) in [
        ("hand-written, awaiting each record", awaiting),
        ("hand-written, pipelined           ", pipelined),
        ("slipstream                        ", framework),
    ] {
        println!("{name}: {:>9.0} msg/s ({n} records in {d:?})", rate((n, d)));
    }
    println!(
        "ratio slipstream / awaiting loop : {:.2}",
        rate(framework) / rate(awaiting)
    );
    println!(
        "ratio slipstream / pipelined loop: {:.2}",
        rate(framework) / rate(pipelined)
    );
}
