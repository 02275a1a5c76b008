//! A real broker (an Apache Kafka node of the test's own) stopped with SIGTERM in the middle of a topic → handler → topic run with
//! `stop_at_end`, and started again on the same data a few seconds later: every record is still
//! processed. Ignored in the mock-cluster pass (it starts a broker of its own); the real-broker
//! pass of `tests/run.sh` runs it.

use std::collections::BTreeSet;
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};

use crate::cluster::Cluster;

/// How many records (`RESTART_TEST_RECORDS` overrides it).
fn records() -> usize {
    std::env::var("RESTART_TEST_RECORDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(60_000)
}
const PARTITIONS: i32 = 3;

static SERVERS: OnceLock<String> = OnceLock::new();

fn conf(group: &str) -> Vec<(&'static str, String)> {
    vec![
        (
            "bootstrap.servers",
            SERVERS.get().expect("the broker").clone(),
        ),
        ("group.id", group.to_owned()),
        ("auto.offset.reset", "earliest".to_owned()),
    ]
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new("restart-in")
        .conf(conf("restart-group"))
        .stop_at_end(true)
});
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| Topic::new("restart-out").conf(conf("writer")));
pub static SEEN: Collected<String> = Collected::new();

/// A record the restarting broker refuses is skipped: what is checked is that every input record
/// is read and handled.
#[handle(source = INPUT, sink = [OUTPUT], on_error = "skip")]
fn forward(msg: Message<String, String>) -> (String, String) {
    SEEN.push(msg.value.clone());
    (msg.key.unwrap_or_default(), msg.value)
}

#[test]
#[ignore = "starts an Apache Kafka node of its own: the real-broker pass of tests/run.sh runs it"]
fn a_broker_restarted_midway_leaves_no_record_unprocessed() {
    // What the application logged (at `RUST_LOG`'s level, info by default), printed when the
    // test fails: each of its runtime's threads logs there (the binary's other tests keep
    // the global subscriber).
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "slipstream_kafka=info,slipstream_core=info".into());
    let logs = tracing::Dispatch::new(
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(false)
            .with_test_writer()
            .finish(),
    );
    let _here = tracing::dispatcher::set_default(&logs);
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(move || {
            // For the life of the thread.
            std::mem::forget(tracing::dispatcher::set_default(&logs));
        })
        .build()
        .unwrap()
        .block_on(restarted_midway());
}

async fn restarted_midway() {
    let n = records();
    let broker = Cluster::start("restart", 1, &[]);
    SERVERS.set(broker.servers.clone()).unwrap();
    INPUT.create(PARTITIONS).await.unwrap();
    OUTPUT.create(PARTITIONS).await.unwrap();

    let producer: FutureProducer = {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", SERVERS.get().unwrap());
        config.create().unwrap()
    };
    for i in 0..n {
        let (key, value) = (format!("k{i}"), i.to_string());
        let record = FutureRecord::to("restart-in").key(&key).payload(&value);
        let mut record = record;
        loop {
            match producer.send_result(record) {
                Ok(_) => break,
                Err((_, returned)) => {
                    record = returned;
                    producer.poll(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();

    let app = app(module_path!());
    let run = tokio::spawn(app.run());
    until(300, || SEEN.len() >= n / 4).await;
    broker.stop(1);
    tokio::time::sleep(Duration::from_secs(3)).await; // the outage
    broker.restart(1);
    let outcome = within(600, run).await.unwrap();
    drop(broker);
    outcome.unwrap();

    let seen: BTreeSet<String> = SEEN.get().into_iter().collect();
    assert_eq!(
        seen.len(),
        n,
        "every record processed ({} deliveries)",
        SEEN.len()
    );
}
