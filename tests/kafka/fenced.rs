//! A consumer fenced out of its group (static membership) cannot go on: the application stops
//! with the error, and health says the topic has no partitions any more (mock cluster only).

use std::sync::{LazyLock, OnceLock};

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{app, until, within};

use crate::broker::{Command, Mock, unique};

fn cluster() -> &'static Mock {
    static CLUSTER: OnceLock<Mock> = OnceLock::new();
    CLUSTER.get_or_init(Mock::start)
}

static NAME: LazyLock<String> = LazyLock::new(|| unique("fenced"));
pub static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new(NAME.as_str()).conf([
        ("bootstrap.servers", cluster().servers.as_str()),
        ("group.id", "fenced-group"),
        ("group.instance.id", "the-only-one"),
        ("session.timeout.ms", "6000"),
        ("heartbeat.interval.ms", "200"),
    ])
});

#[handle(source = INPUT)]
fn reader(_msg: Message<String, String>) {}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fenced_consumer_stops_the_application() {
    cluster().create(&NAME, 1).await;
    let app = app(module_path!());
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    until(60, || INPUT.assignment().len() == 1).await;
    until(10, || handle.health().is_ok()).await;

    cluster().send(Command::Fence);
    let error = within(60, run).await.unwrap().unwrap_err();
    assert!(matches!(error, slipstream::Error::Kafka { .. }), "{error}");
    assert!(INPUT.assignment().is_empty());
    let reasons = handle.health().reasons().to_vec();
    assert!(
        reasons
            .iter()
            .any(|r| r.starts_with("handler `reader` stopped with an error: Kafka error")),
        "{reasons:?}"
    );
}
