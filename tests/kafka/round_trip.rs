//! Keys, headers and JSON values survive the trip through a topic.

use serde::{Deserialize, Serialize};
use slipstream::Topic;

use crate::broker::{conf, create, read_all, topic, unique};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Catch {
    fish: String,
    weight: f64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_headers_and_values_round_trip() {
    let name = unique("round-trip");
    let plain: Topic = topic(&name, "writer");
    create(plain.name(), 3).await;
    plain.send("trophy", "🏆").await.unwrap();
    plain.send_value("no key").await.unwrap();
    let headers = vec![
        ("trace".to_owned(), b"abc".to_vec()),
        ("empty".to_owned(), Vec::new()),
    ];
    plain
        .send_with_headers(Some("fish".to_owned()), "🐟".to_owned(), &headers)
        .await
        .unwrap();

    let mut read = read_all::<String, String>(&name).await;
    read.sort_by_key(|m| m.value.clone());
    let summary: Vec<_> = read
        .iter()
        .map(|m| (m.key.clone(), m.value.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            (None, "no key".to_owned()),
            (Some("trophy".to_owned()), "🏆".to_owned()),
            (Some("fish".to_owned()), "🐟".to_owned()),
        ]
    );
    let fish = &read[2];
    assert_eq!(fish.header("trace"), Some(&b"abc"[..]));
    assert_eq!(fish.header("empty"), Some(&b""[..]));
    assert_eq!(&*fish.topic, name.as_str());
    assert!(fish.timestamp.is_some());
    assert_eq!(fish.to_string(), "fish 🐟");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_values_round_trip() {
    let name = unique("json");
    let catches: Topic<String, Catch> = Topic::json(&name).conf(conf("writer"));
    create(catches.name(), 1).await;
    let catch = Catch {
        fish: "🐟".into(),
        weight: -1.5,
    };
    catches.send("monday", catch.clone()).await.unwrap();

    let reader: Topic<String, Catch> = Topic::json(&name)
        .conf(conf(&unique("reader")))
        .stop_at_end(true);
    let read: Vec<_> = futures::StreamExt::collect::<Vec<_>>(reader.stream().unwrap()).await;
    assert_eq!(read.len(), 1);
    assert_eq!(read[0].key.as_deref(), Some("monday"));
    assert_eq!(read[0].value, catch);
}

#[tokio::test]
async fn a_missing_or_unknown_setting_is_a_clear_error() {
    let no_servers: Topic = Topic::new(unique("nowhere")).conf([("bootstrap.servers", "")]);
    let err = no_servers.send("k", "v").await.unwrap_err();
    assert!(
        err.to_string().contains("`bootstrap.servers`: missing"),
        "{err}"
    );

    let typo: Topic = topic(&unique("typo"), "g").conf([("bootstrap.server", "x")]);
    let err = typo.send("k", "v").await.unwrap_err();
    match err {
        slipstream::Error::Conf { topic, key, .. } => {
            assert_eq!(key, "bootstrap.server");
            assert!(topic.starts_with("typo"));
        }
        other => panic!("unexpected {other}"),
    }
}

#[tokio::test]
async fn dry_topics_log_instead_of_producing() {
    let name = unique("dry");
    let dry: Topic = topic::<String, String>(&name, "g").dry(true);
    create(dry.name(), 1).await;
    dry.send("k", "v").await.unwrap();
    assert!(read_all::<String, String>(&name).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tombstones_round_trip_and_differ_from_empty_values() {
    let name = unique("tombstones");
    let table: Topic<String, Option<String>> = topic(&name, "writer");
    create(table.name(), 1).await;
    table.send("fish", Some("🐟".to_owned())).await.unwrap();
    table.send("empty", Some(String::new())).await.unwrap();
    table
        .send_record(slipstream::Record::new(None).key("fish".to_owned()))
        .await
        .unwrap();

    let read = read_all::<String, Option<String>>(&name).await;
    let summary: Vec<_> = read
        .iter()
        .map(|m| (m.key.clone().unwrap(), m.value.clone()))
        .collect();
    assert_eq!(
        summary,
        [
            ("fish".to_owned(), Some("🐟".to_owned())),
            ("empty".to_owned(), Some(String::new())),
            ("fish".to_owned(), None),
        ]
    );
    // Read as plain strings, a tombstone is an empty value.
    let plain = read_all::<String, String>(&name).await;
    assert_eq!(plain[2].value, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_goes_to_the_partition_and_with_the_timestamp_it_names() {
    let name = unique("placed");
    let placed: Topic = topic(&name, "writer");
    create(placed.name(), 3).await;
    for partition in [2, 0, 1] {
        placed
            .send_record(
                slipstream::Record::new(format!("p{partition}"))
                    .key("same key".to_owned())
                    .partition(partition)
                    .timestamp(1_600_000_000_000 + i64::from(partition))
                    .header("n", partition.to_string()),
            )
            .await
            .unwrap();
    }
    let mut read = read_all::<String, String>(&name).await;
    read.sort_by_key(|m| m.partition);
    let summary: Vec<_> = read
        .iter()
        .map(|m| {
            (
                m.partition,
                m.value.clone(),
                m.timestamp,
                m.header("n").map(<[u8]>::to_vec),
            )
        })
        .collect();
    assert_eq!(
        summary,
        (0..3)
            .map(|p| (
                p,
                format!("p{p}"),
                Some(1_600_000_000_000 + i64::from(p)),
                Some(p.to_string().into_bytes())
            ))
            .collect::<Vec<_>>()
    );
}

mod unreachable {
    use std::sync::LazyLock;
    use std::time::Duration;

    use slipstream::prelude::*;
    use slipstream::{Message, Topic};

    /// Nothing listens on port 1.
    pub static NOWHERE: LazyLock<Topic> = LazyLock::new(|| {
        Topic::new("nowhere")
            .conf([
                ("bootstrap.servers", "127.0.0.1:1"),
                ("group.id", "nowhere"),
            ])
            .connect_timeout(Duration::from_secs(1))
    });

    #[handle(source = NOWHERE)]
    fn never(_msg: Message<String, String>) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_unreachable_broker_fails_the_start_with_a_clear_error() {
        super::fails_to_start_unreachable(module_path!(), "nowhere").await;
    }
}

/// Runs the handlers of `module`, whose topic `topic` names a broker nobody answers at
/// (`127.0.0.1:1`, a 1 s connect timeout): the start fails within 20 s, naming the topic, the
/// timeout and the address.
async fn fails_to_start_unreachable(module: &str, topic: &str) {
    let started = std::time::Instant::now();
    let error = slipstream_tests::within(30, slipstream_tests::app(module).run())
        .await
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains(topic) && message.contains("no broker answered within 1s"),
        "{message}"
    );
    assert!(message.contains("127.0.0.1:1"), "{message}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(20), "{took:?}");
}

/// A producer-only application (a timer feeding a topic) whose broker cannot be reached fails
/// its start as a consumer does, at once, and does not hang in its shutdown.
mod unreachable_sink {
    use std::sync::LazyLock;
    use std::time::Duration;

    use slipstream::prelude::*;
    use slipstream::{Topic, timer};

    /// Nothing listens on port 1.
    pub static NOWHERE: LazyLock<Topic> = LazyLock::new(|| {
        Topic::new("nowhere-out")
            .conf([("bootstrap.servers", "127.0.0.1:1")])
            .connect_timeout(Duration::from_secs(1))
    });

    #[handle(source = timer(Duration::from_millis(10)), sink = [NOWHERE])]
    fn tick() -> (String, String) {
        ("tick".to_owned(), "tock".to_owned())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sink_whose_broker_is_unreachable_fails_the_start() {
        super::fails_to_start_unreachable(module_path!(), "nowhere-out").await;
    }
}

/// A topic sink's start-up check (does a broker answer?) creates no topic, though a broker may
/// create topics a producer asks about.
mod probe {
    use std::sync::LazyLock;
    use std::time::Duration;

    use futures::stream;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use slipstream::Topic;
    use slipstream::prelude::*;
    use slipstream_tests::{app, until, within};

    use crate::broker::{servers, topic, unique};

    static NEVER_WRITTEN: LazyLock<Topic> =
        LazyLock::new(|| topic(&unique("never-written"), "writer"));

    #[handle(source = stream::pending::<String>(), sink = [NEVER_WRITTEN])]
    fn relay(value: String) -> String {
        value
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sinks_start_check_creates_no_topic() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(60, || handle.health().is_ok()).await;
        let name = NEVER_WRITTEN.name().to_owned();
        let exists = tokio::task::spawn_blocking(move || {
            let client: BaseConsumer = rdkafka::ClientConfig::new()
                .set("bootstrap.servers", servers())
                .create()
                .unwrap();
            let metadata = client
                .fetch_metadata(None, Duration::from_secs(10))
                .unwrap();
            metadata.topics().iter().any(|t| t.name() == name)
        })
        .await
        .unwrap();
        handle.shutdown();
        within(60, run).await.unwrap().unwrap();
        assert!(!exists, "the start created the sink's topic");
    }
}
