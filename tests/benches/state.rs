//! Run with: cargo bench -p slipstream-tests --bench state
//!
//! State that follows its partitions (`Cache::follow`), against baselines measured in the same
//! run:
//!
//! - counting: 100,000 keyed records (1,000 keys, 6 partitions) counted in a cache by a handler,
//!   once with a local-only cache and once with a cache that follows the topic (each count also
//!   recorded in the changelog, and each offset committed only once it is);
//! - restoring: 1,000,000 changelog records applied to an empty cache, against a hand-written
//!   rdkafka consumer reading the same topic into RocksDB in write batches.
//!
//! Prints the rates and the ratios. Uses librdkafka's mock cluster, or the broker at
//! `BENCH_KAFKA_BROKER` (a fresh one: its topics must not exist yet).

#[path = "common/mock.rs"]
mod mock;

use std::collections::HashSet;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use futures::future::join_all;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use slipstream::prelude::*;
use slipstream::{Cache, Message, StartAt, Topic};

const EVENTS: usize = 100_000;
const KEYS: usize = 1_000;
const RECORDS: usize = 1_000_000;
const PARTITIONS: i32 = 6;
const INPUT: &str = "bench-state-in";
const CHANGELOG: &str = "bench-state-restore-changelog";
const RESTORE_INPUT: &str = "bench-state-restore-in";

static SERVERS: LazyLock<String> =
    LazyLock::new(|| mock::servers(topics().into_iter().map(|t| (t, PARTITIONS)).collect()));

fn topics() -> Vec<String> {
    vec![
        INPUT.into(),
        CHANGELOG.into(),
        RESTORE_INPUT.into(),
        // The following cache's changelog (the mock cluster does not take the admin API).
        "bench-state-followed-bench-state-in-changelog".into(),
    ]
}

fn conf(group: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", SERVERS.clone()),
        ("group.id", group.to_owned()),
    ]
}

fn input(group: &str) -> Topic {
    Topic::new(INPUT)
        .conf(conf(group))
        .start(StartAt::Beginning)
        .stop_at_end(true)
}

fn dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir.join(name)
}

static LOCAL_IN: LazyLock<Topic> = LazyLock::new(|| input("bench-state-local"));
static FOLLOWED_IN: LazyLock<Topic> = LazyLock::new(|| input("bench-state-followed"));
static LOCAL: LazyLock<Cache<String, u64>> =
    LazyLock::new(|| Cache::open(dir("bench-state-local")).unwrap());
static FOLLOWED: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    Cache::open(dir("bench-state-followed"))
        .unwrap()
        .follow(&FOLLOWED_IN)
});

/// When each counting handler got its first record: rates are measured from there, so that
/// joining the group does not weigh in.
static LOCAL_FIRST: OnceLock<Instant> = OnceLock::new();
static FOLLOWED_FIRST: OnceLock<Instant> = OnceLock::new();

#[handle(source = LOCAL_IN)]
fn count_local(msg: Message<String, String>) -> Result<(), slipstream::Error> {
    LOCAL_FIRST.get_or_init(Instant::now);
    let key = msg.key.unwrap_or_default();
    LOCAL.put(&key, &(LOCAL.get(&key)?.unwrap_or(0) + 1))
}

#[handle(source = FOLLOWED_IN)]
fn count_followed(msg: Message<String, String>) -> Result<(), slipstream::Error> {
    FOLLOWED_FIRST.get_or_init(Instant::now);
    let key = msg.key.unwrap_or_default();
    FOLLOWED.put(&key, &(FOLLOWED.get(&key)?.unwrap_or(0) + 1))
}

static RESTORE_IN: LazyLock<Topic> =
    LazyLock::new(|| Topic::new(RESTORE_INPUT).conf(conf("bench-state-restore")));
static RESTORED: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    Cache::open(dir("bench-state-restored"))
        .unwrap()
        .follow_with_changelog(&RESTORE_IN, CHANGELOG)
});

fn client(group: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    for (key, value) in conf(group) {
        config.set(key, value);
    }
    config
}

/// Produces `n` records to `topic`: keys `key{i % keys}` (in the cache's encoding when `cache`,
/// with a MessagePack count as the value).
async fn fill(topic: &str, n: usize, keys: usize, cache: bool) {
    let producer: FutureProducer = client("writer").set("linger.ms", "20").create().unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(10_000) {
        let sends = chunk.iter().map(|i| {
            let key = format!("key{}", i % keys);
            let key = if cache {
                let mut bytes = Vec::new();
                slipstream::CacheKey::encode_key(&key, &mut bytes);
                bytes
            } else {
                key.into_bytes()
            };
            let producer = producer.clone();
            let partition = (*i % PARTITIONS as usize) as i32;
            async move {
                let value = [(i % 100) as u8];
                producer
                    .send(
                        FutureRecord::to(topic)
                            .key(&key)
                            .payload(&value[..])
                            .partition(partition),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
            }
        });
        join_all(sends).await;
    }
}

/// The baseline restoration: every partition of the changelog from the beginning into RocksDB,
/// 10,000 records per write batch, until the end of each.
fn raw_restore() -> Result<usize, KafkaError> {
    let db = rocksdb::DB::open_default(dir("bench-state-raw")).unwrap();
    let consumer: BaseConsumer = client("bench-state-raw")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        .create()?;
    let mut assignment = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(CHANGELOG, partition, Offset::Beginning)?;
    }
    consumer.assign(&assignment)?;
    let mut at_end = HashSet::new();
    let mut batch = rocksdb::WriteBatch::default();
    let mut applied = 0;
    while at_end.len() < PARTITIONS as usize {
        match consumer.poll(Duration::from_secs(10)) {
            Some(Ok(msg)) => {
                batch.put(
                    msg.key().unwrap_or_default(),
                    msg.payload().unwrap_or_default(),
                );
                applied += 1;
                if batch.len() >= 10_000 {
                    db.write(std::mem::take(&mut batch)).unwrap();
                }
            }
            Some(Err(KafkaError::PartitionEOF(partition))) => {
                at_end.insert(partition);
            }
            Some(Err(error)) => return Err(error),
            None => panic!("the changelog stalled"),
        }
    }
    db.write(batch).unwrap();
    Ok(applied)
}

fn rate(n: usize, took: Duration) -> f64 {
    n as f64 / took.as_secs_f64()
}

/// Runs one handler until its input ends: the time from its first record to the end.
async fn run(handler: &str, first: &OnceLock<Instant>) -> Duration {
    slipstream::App::new()
        .handlers([handler])
        .signals(false)
        .logging(false)
        .run()
        .await
        .unwrap();
    first.get().expect("records were counted").elapsed()
}

#[tokio::main]
async fn main() {
    if std::env::var("BENCH_KAFKA_BROKER").is_ok() {
        let names = topics();
        mock::require_fresh(
            &SERVERS,
            &names.iter().map(String::as_str).collect::<Vec<_>>(),
        );
        for topic in topics() {
            Topic::<String, String>::new(topic)
                .conf(conf("admin"))
                .create(PARTITIONS)
                .await
                .unwrap();
        }
    }
    fill(INPUT, EVENTS, KEYS, false).await;
    fill(CHANGELOG, RECORDS, RECORDS / 4, true).await;

    // Counting: local-only, then following, each reading the whole input in a group of its own.
    let local = run("count_local", &LOCAL_FIRST).await;
    let followed = run("count_followed", &FOLLOWED_FIRST).await;
    println!(
        "{EVENTS} keyed records counted in a cache, {PARTITIONS} partitions, broker {}",
        *SERVERS
    );
    println!(
        "local-only cache : {:>9.0} msg/s ({local:?})",
        rate(EVENTS, local)
    );
    println!(
        "following cache  : {:>9.0} msg/s ({followed:?})",
        rate(EVENTS, followed)
    );
    println!(
        "ratio following / local-only: {:.2}",
        local.as_secs_f64() / followed.as_secs_f64()
    );

    // Restoring.
    let started = Instant::now();
    let raw = tokio::task::spawn_blocking(raw_restore)
        .await
        .unwrap()
        .unwrap();
    let raw_took = started.elapsed();
    let changelog = RESTORED.changelog().expect("a following cache");
    let partitions: Vec<i32> = (0..PARTITIONS).collect();
    let started = Instant::now();
    tokio::task::spawn_blocking(move || changelog.restore(&partitions))
        .await
        .unwrap()
        .unwrap();
    let restore_took = started.elapsed();
    println!("{RECORDS} changelog records restored into an empty cache");
    println!(
        "raw rdkafka -> RocksDB: {:>9.0} records/s ({raw} in {raw_took:?})",
        rate(raw, raw_took)
    );
    println!(
        "Cache::follow restore : {:>9.0} records/s ({restore_took:?})",
        rate(RECORDS, restore_took)
    );
    println!(
        "ratio restore / raw: {:.2}",
        raw_took.as_secs_f64() / restore_took.as_secs_f64()
    );
}
