//! A graceful shutdown while the broker is down (mock cluster only): records a handler produced
//! cannot be delivered, so their inputs stay unacknowledged. The run ends within its shutdown
//! deadline with `Error::ShutdownTimeout` saying how many were left and commits nothing past
//! them; a restart handles them again and commits them.

use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, sample, until, within};
use tokio::sync::Semaphore;

use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::broker::{Command, Mock, unique};

const N: usize = 10;
const DEADLINE: Duration = Duration::from_secs(2);

/// A mock cluster of this test's own: taking its broker down must not disturb other tests.
fn cluster() -> &'static Mock {
    static CLUSTER: OnceLock<Mock> = OnceLock::new();
    CLUSTER.get_or_init(Mock::start)
}

static NAMES: LazyLock<(String, String)> =
    LazyLock::new(|| (unique("deadline-in"), unique("deadline-out")));

fn on_cluster(name: &str, group: &str) -> Topic {
    Topic::new(name).conf([
        ("bootstrap.servers", cluster().servers.as_str()),
        ("group.id", group),
        ("auto.offset.reset", "earliest"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "500"),
    ])
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| on_cluster(&NAMES.0, "deadline-group"));
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| on_cluster(&NAMES.1, "writer"));
static SEEN: Collected<String> = Collected::new();
/// Holds the handler back until the broker is down (one permit per message).
static GATE: Semaphore = Semaphore::const_new(0);

#[handle(source = INPUT, sink = [OUTPUT])]
async fn forward(msg: Message<String, String>) -> (String, String) {
    SEEN.push(msg.value.clone());
    GATE.acquire().await.unwrap().forget();
    (msg.key.unwrap_or_default(), msg.value)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shutdown_with_the_broker_down_ends_at_its_deadline_and_loses_nothing() {
    cluster().create(&NAMES.0, 1).await;
    cluster().create(&NAMES.1, 1).await;
    for i in 0..N {
        INPUT.send(format!("k{i}"), i.to_string()).await.unwrap();
    }
    let app = app(module_path!()).shutdown_timeout(DEADLINE);
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    until(60, || !SEEN.is_empty()).await;
    // Every record has been read (the handler holds the first, the rest wait for it).
    let position = format!(
        r#"topic="{}",partition="0",group="deadline-group""#,
        NAMES.0
    );
    within(60, async {
        while sample(
            &handle.metrics().await,
            "slipstream_topic_partition_position",
            &position,
        ) != Some(N as f64)
        {
            tokio::task::yield_now().await;
        }
    })
    .await;

    // The broker goes down; the handler then produces every record, none can be delivered.
    cluster().send(Command::Down);
    GATE.add_permits(N);
    until(30, || SEEN.len() == N).await;
    handle.shutdown();
    let asked = Instant::now();
    let outcome = within(60, run).await.unwrap();
    let took = asked.elapsed();
    match outcome {
        Err(slipstream::Error::ShutdownTimeout { timeout, left }) => {
            assert_eq!(timeout, DEADLINE);
            assert!(left > 0, "the undelivered inputs are counted");
        }
        other => panic!("expected a shutdown timeout, got {other:?}"),
    }
    assert!(
        took < DEADLINE + Duration::from_secs(10),
        "the shutdown took {took:?}"
    );

    // Back up: nothing was committed past the undelivered records.
    cluster().send(Command::Up);
    let before = committed().await;
    assert!(
        before < N as i64,
        "committed past undelivered records: {before}"
    );

    // Restarted: they are handled again, delivered and committed.
    GATE.add_permits(N);
    let restarted = slipstream_tests::app(module_path!());
    let handle = restarted.handle();
    let run = tokio::spawn(restarted.run());
    until(60, || SEEN.len() >= N + (N - before as usize)).await;
    within(60, async {
        while committed().await < N as i64 {
            tokio::task::yield_now().await;
        }
    })
    .await;
    handle.shutdown();
    within(30, run).await.unwrap().unwrap();
}

/// The input group's committed offset of partition 0 (0 when none).
async fn committed() -> i64 {
    tokio::task::spawn_blocking(|| {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", &cluster().servers)
            .set("group.id", "deadline-group")
            .create()
            .unwrap();
        let mut list = TopicPartitionList::new();
        list.add_partition(&NAMES.0, 0);
        let committed = consumer
            .committed_offsets(list, Duration::from_secs(10))
            .unwrap();
        match committed.elements()[0].offset() {
            Offset::Offset(offset) => offset,
            _ => 0,
        }
    })
    .await
    .unwrap()
}
