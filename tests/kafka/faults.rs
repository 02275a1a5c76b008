//! Broker faults (mock cluster only): the broker goes down and comes back; health reports the
//! outage once it has lasted the topic's connect timeout, and the app recovers and loses
//! nothing.

use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};

use crate::broker::{Command, Mock, unique};

/// A mock cluster of this test's own: taking its broker down must not disturb other tests.
fn cluster() -> &'static Mock {
    static CLUSTER: OnceLock<Mock> = OnceLock::new();
    CLUSTER.get_or_init(Mock::start)
}

static NAME: LazyLock<String> = LazyLock::new(|| unique("faults"));

fn faulty_topic(group: &str) -> Topic {
    Topic::new(NAME.as_str())
        .conf([
            ("bootstrap.servers", cluster().servers.as_str()),
            ("group.id", group),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "6000"),
            ("heartbeat.interval.ms", "500"),
        ])
        .connect_timeout(Duration::from_secs(2))
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| faulty_topic("faults-group"));
pub static SEEN: Collected<String> = Collected::new();

#[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
fn values(msg: Message<String, String>) -> String {
    msg.value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_app_recovers_when_the_broker_comes_back() {
    cluster().create(&NAME, 1).await;
    let producer = faulty_topic("writer");
    // After the outage the group may still be taking the consumer back as the test stops it:
    // the final commit is then retried for up to 30 s (and leaving the group 10 s more), past
    // the default shutdown deadline. This test is about recovering, so it allows for that.
    let app = app(module_path!()).shutdown_timeout(Duration::from_secs(90));
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    until(60, || INPUT.assignment().len() == 1).await;
    for i in 0..20 {
        producer.send("k", format!("{i}")).await.unwrap();
    }
    until(30, || SEEN.len() == 20).await;
    // Wait until those 20 are committed: taken down before that, the broker would rightly have
    // them read again (at-least-once); this test checks that nothing is lost or repeated after.
    let committed = format!("topic=\"{}\"", *NAME);
    within(30, async {
        while !handle.metrics().await.lines().any(|line| {
            line.starts_with("slipstream_topic_partition_committed_offset{")
                && line.contains(&committed)
                && line.ends_with(" 20")
        }) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;

    cluster().send(Command::Down); // the broker goes down
    let sending = tokio::spawn(async move {
        for i in 20..40 {
            producer.send("k", format!("{i}")).await.unwrap();
        }
    });
    let unreachable = |handle: &slipstream::AppHandle| {
        let reasons = handle.health().reasons().to_vec();
        reasons
            .iter()
            .any(|r| r.starts_with(&format!("topic `{}`: no broker reachable for", *NAME)))
    };
    until(30, || unreachable(&handle)).await;
    assert_eq!(SEEN.len(), 20, "nothing moves while the broker is down");
    cluster().send(Command::Up); // and comes back
    until(30, || handle.health().is_ok()).await;

    within(60, sending).await.unwrap();
    until(60, || SEEN.len() >= 40).await;
    handle.shutdown();
    within(100, run).await.unwrap().unwrap();
    let seen: Vec<u32> = SEEN.get().iter().map(|v| v.parse().unwrap()).collect();
    assert_eq!(seen, (0..40).collect::<Vec<_>>());
}
