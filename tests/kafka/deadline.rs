//! A graceful shutdown while the broker is down (mock cluster only): records a handler produced
//! cannot be delivered, so their inputs stay unacknowledged. The run ends within its shutdown
//! deadline with `Error::ShutdownTimeout` saying how many were left, commits nothing past them,
//! and a restart delivers them.

use std::collections::BTreeSet;
use std::sync::{LazyLock, OnceLock};
use std::time::{Duration, Instant};

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};
use tokio::sync::Semaphore;

use futures::StreamExt;

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
    if crate::broker::is_real() {
        return; // fault injection needs the mock cluster
    }
    cluster().create(&NAMES.0, 1).await;
    cluster().create(&NAMES.1, 1).await;
    for i in 0..N {
        INPUT.send(format!("k{i}"), i.to_string()).await.unwrap();
    }
    let app = app(module_path!()).shutdown_timeout(DEADLINE);
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    until(60, || !SEEN.is_empty()).await;

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

    // Back up and restarted: nothing was committed past the undelivered records.
    cluster().send(Command::Up);
    GATE.add_permits(N);
    let restarted = slipstream_tests::app(module_path!());
    let handle = restarted.handle();
    let run = tokio::spawn(restarted.run());
    let delivered = within(120, async {
        loop {
            let reader = on_cluster(&NAMES.1, &unique("reader")).stop_at_end(true);
            let values: BTreeSet<String> = reader
                .stream()
                .expect("a consumer")
                .map(|m| m.value)
                .collect()
                .await;
            if values.len() == N {
                return values;
            }
        }
    })
    .await;
    assert_eq!(delivered, (0..N).map(|i| i.to_string()).collect());
    handle.shutdown();
    within(30, run).await.unwrap().unwrap();
}
