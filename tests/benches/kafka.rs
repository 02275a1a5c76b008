//! Run with: cargo bench -p slipstream-tests --bench kafka
//!
//! consume → handler → produce, through slipstream and through a hand-written rdkafka loop doing
//! the same work on the same broker, in one run: read N records, upper-case each value, produce
//! it to an output topic and wait for the broker's acknowledgement, commit progress every 500 ms.
//! Prints both rates and their ratio. Uses librdkafka's mock cluster, or the broker at
//! `SLIPSTREAM_BENCH_BROKER`.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use slipstream::prelude::*;
use slipstream::{Message, StartAt, Topic};

const N: usize = 20_000;
const PARTITIONS: i32 = 3;

static SERVERS: LazyLock<String> = LazyLock::new(|| {
    if let Ok(servers) = std::env::var("SLIPSTREAM_BENCH_BROKER") {
        return servers;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).unwrap();
        for topic in ["bench-in", "bench-out-slipstream", "bench-out-raw"] {
            cluster.create_topic(topic, PARTITIONS, 1).unwrap();
        }
        tx.send(cluster.bootstrap_servers()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap()
});

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

/// The same work by hand: assign every partition from the beginning, produce each upper-cased
/// value and wait for it, commit every 500 ms, stop at the end of every partition.
async fn raw() -> Result<(), KafkaError> {
    let consumer: StreamConsumer = client("bench-raw")
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
    while at_end.len() < PARTITIONS as usize {
        match consumer.recv().await {
            Ok(msg) => {
                let value = std::str::from_utf8(msg.payload().unwrap_or_default())
                    .unwrap()
                    .to_uppercase();
                let key = msg
                    .key()
                    .map(|k| std::str::from_utf8(k).unwrap().to_owned());
                let mut record = FutureRecord::to("bench-out-raw").payload(&value);
                if let Some(key) = &key {
                    record = record.key(key);
                }
                producer
                    .send(record, Duration::from_secs(30))
                    .await
                    .map_err(|(e, _)| e)?;
                consumer.store_offset_from_message(&msg)?;
                if last_commit.elapsed() > Duration::from_millis(500) {
                    consumer.commit_consumer_state(CommitMode::Async)?;
                    last_commit = Instant::now();
                }
            }
            Err(KafkaError::PartitionEOF(partition)) => {
                at_end.insert(partition);
            }
            Err(error) => return Err(error),
        }
    }
    consumer.commit_consumer_state(CommitMode::Sync)?;
    Ok(())
}

async fn fill() {
    let producer: FutureProducer = client("writer").create().unwrap();
    for chunk in (0..N).collect::<Vec<_>>().chunks(1000) {
        let sends = chunk.iter().map(|i| {
            let (key, value) = (format!("key{i}"), format!("value {i}"));
            let producer = producer.clone();
            async move {
                producer
                    .send(
                        FutureRecord::to("bench-in").key(&key).payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
            }
        });
        join_all(sends).await;
    }
}

#[tokio::main]
async fn main() {
    if std::env::var("SLIPSTREAM_BENCH_BROKER").is_ok() {
        for topic in ["bench-in", "bench-out-slipstream", "bench-out-raw"] {
            Topic::<String, String>::new(topic)
                .conf(conf("admin"))
                .create(PARTITIONS)
                .await
                .unwrap();
        }
    }
    fill().await;

    let started = Instant::now();
    raw().await.unwrap();
    let raw_time = started.elapsed();

    let started = Instant::now();
    slipstream::App::new()
        .handlers(["upper"])
        .signals(false)
        .logging(false)
        .run()
        .await
        .unwrap();
    let framework_time = started.elapsed();

    let rate = |d: Duration| N as f64 / d.as_secs_f64();
    println!(
        "{N} records: consume -> upper-case -> produce (acknowledged), {PARTITIONS} partitions, broker {}",
        *SERVERS
    );
    println!(
        "hand-written rdkafka loop: {:>9.0} msg/s ({raw_time:?})",
        rate(raw_time)
    );
    println!(
        "slipstream               : {:>9.0} msg/s ({framework_time:?})",
        rate(framework_time)
    );
    println!(
        "ratio (slipstream / hand-written): {:.2}",
        raw_time.as_secs_f64() / framework_time.as_secs_f64()
    );
}
