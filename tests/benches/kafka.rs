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
//! from it are acknowledged. Prints, for each, the whole run's rate and its three phases: start-up
//! (to the first record handled), steady state (first to last record handled) and the end (last
//! record to the run's return: final commits, leaving the group); then the ratios of the whole
//! runs and of the steady states. Uses librdkafka's mock cluster, or the fresh broker at
//! `BENCH_KAFKA_BROKER` (its topics must not exist yet).

#[path = "common/mock.rs"]
mod mock;

use std::collections::HashSet;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _, Offset, TopicPartitionList};
use slipstream::prelude::*;
use slipstream::{Message, StartAt, Topic};

const N: usize = 200_000;
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

/// When a run handled its first and its last record, as nanoseconds since the bench started
/// (0: not yet).
struct Phases {
    first: AtomicU64,
    last: AtomicU64,
}

/// The bench's clock.
static EPOCH: LazyLock<Instant> = LazyLock::new(Instant::now);

impl Phases {
    const fn new() -> Self {
        Phases {
            first: AtomicU64::new(0),
            last: AtomicU64::new(0),
        }
    }

    /// A record was handled now.
    fn handled(&self) {
        let now = EPOCH.elapsed().as_nanos() as u64 + 1;
        let _ = self
            .first
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
        self.last.fetch_max(now, Ordering::Relaxed);
    }

    /// A run of `n` records that began at `started` and returned at `ended`.
    fn run(&self, n: usize, started: Instant, ended: Instant) -> Run {
        let at = |nanos: u64| *EPOCH + Duration::from_nanos(nanos - 1);
        let (first, last) = (
            at(self.first.load(Ordering::Relaxed)),
            at(self.last.load(Ordering::Relaxed)),
        );
        Run {
            n,
            total: ended - started,
            start: first - started,
            steady: last - first,
            end: ended - last,
        }
    }
}

/// One system's run, and its phases.
#[derive(Clone, Copy)]
struct Run {
    n: usize,
    total: Duration,
    /// To the first record handled.
    start: Duration,
    /// From the first record handled to the last.
    steady: Duration,
    /// From the last record handled to the run's return.
    end: Duration,
}

impl Run {
    fn rate(&self) -> f64 {
        self.n as f64 / self.total.as_secs_f64()
    }

    fn steady_rate(&self) -> f64 {
        (self.n - 1) as f64 / self.steady.as_secs_f64()
    }
}

static SLIPSTREAM: Phases = Phases::new();

#[handle(source = INPUT, sink = [OUTPUT])]
fn upper(msg: Message<String, String>) -> (String, String) {
    SLIPSTREAM.handled();
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
async fn raw(
    group: &str,
    output: &str,
    limit: usize,
    awaiting: bool,
    phases: &Phases,
) -> Result<usize, KafkaError> {
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
                phases.handled();
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

    LazyLock::force(&EPOCH);
    let timed_raw = |group, output, limit, awaiting| async move {
        let phases = Phases::new();
        let started = Instant::now();
        let handled = raw(group, output, limit, awaiting, &phases).await.unwrap();
        phases.run(handled, started, Instant::now())
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
    let framework = SLIPSTREAM.run(N, started, Instant::now());

    println!(
        "{N} records: consume -> upper-case -> produce, {PARTITIONS} partitions, broker {}",
        *SERVERS
    );
    for (name, run) in [
        ("hand-written, awaiting each record", awaiting),
        ("hand-written, pipelined           ", pipelined),
        ("slipstream                        ", framework),
    ] {
        println!(
            "{name}: {:>9.0} msg/s ({} records in {:?}: start-up {:?}, steady {:.0} msg/s, end {:?})",
            run.rate(),
            run.n,
            run.total,
            run.start,
            run.steady_rate(),
            run.end
        );
    }
    println!(
        "ratio slipstream / awaiting loop : {:.2}",
        framework.rate() / awaiting.rate()
    );
    println!(
        "ratio slipstream / pipelined loop: {:.2} (steady state: {:.2})",
        framework.rate() / pipelined.rate(),
        framework.steady_rate() / pipelined.steady_rate()
    );
}
