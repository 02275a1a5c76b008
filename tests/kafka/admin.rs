//! The admin server of an application reading topics: per-partition committed offsets, high
//! watermarks and lag in `/metrics`, and `/health` while a consumer has no partitions.

use std::sync::LazyLock;
use std::time::Duration;

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{app, check_exposition, get, get_until, sample, serve, within};

use crate::broker::{create, topic, unique};

/// The sum of a per-partition gauge over the partitions of `topic`.
fn partition_sum(metrics: &str, name: &str, topic: &str, group: &str) -> Option<f64> {
    (0..2)
        .map(|p| {
            sample(
                metrics,
                name,
                &format!(r#"topic="{topic}",partition="{p}",group="{group}""#),
            )
        })
        .sum()
}

/// Asserts that the partitions of `topic` hold `records` in all and that `group` lags behind
/// none of them.
fn assert_caught_up(metrics: &str, topic: &str, group: &str, records: u32) {
    let sum = |gauge| partition_sum(metrics, gauge, topic, group);
    assert_eq!(
        sum("slipstream_topic_partition_high_watermark"),
        Some(f64::from(records))
    );
    assert_eq!(sum("slipstream_topic_partition_lag"), Some(0.0));
}

mod lag {
    use super::*;

    pub static GROUP: LazyLock<String> = LazyLock::new(|| unique("admin-group"));
    pub static INPUT: LazyLock<Topic> = LazyLock::new(|| {
        topic(&unique("admin-lag"), &GROUP).commit_interval(Duration::from_millis(100))
    });

    #[handle(source = INPUT)]
    fn consume(_msg: Message<String, String>) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_show_every_partition_committed_and_caught_up() {
        const N: u32 = 30;
        create(INPUT.name(), 2).await;
        let (handle, run, addr) = serve(app(module_path!()).http("127.0.0.1:0")).await;

        // Healthy once the consumer has its partitions.
        get_until(90, addr, "/health", |reply| reply.status == 200).await;
        assert_eq!(INPUT.assignment(), [0, 1]);
        for i in 0..N {
            INPUT.send(format!("key{i}"), format!("{i}")).await.unwrap();
        }

        let (name, group) = (INPUT.name(), GROUP.as_str());
        let committed = |metrics: &str| {
            partition_sum(
                metrics,
                "slipstream_topic_partition_committed_offset",
                name,
                group,
            )
        };
        let metrics = get_until(60, addr, "/metrics", |reply| {
            committed(&reply.body) == Some(f64::from(N))
        })
        .await
        .body;
        assert_eq!(
            sample(
                &metrics,
                "slipstream_handler_messages_total",
                r#"handler="consume""#
            ),
            Some(f64::from(N))
        );
        check_exposition(&metrics);
        assert_eq!(
            partition_sum(&metrics, "slipstream_topic_partition_position", name, group),
            Some(f64::from(N))
        );
        assert_caught_up(&metrics, name, group, N);

        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
    }
}

/// Records produced by a handler, then no more input: the input's offsets are still committed
/// up to the high watermarks (the topic sink settles its deliveries on its own, not when the
/// next record comes).
mod idle {
    use super::*;

    pub static GROUP: LazyLock<String> = LazyLock::new(|| unique("admin-idle-group"));
    pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&unique("admin-idle"), &GROUP));
    pub static OUTPUT: LazyLock<Topic> =
        LazyLock::new(|| topic(&unique("admin-idle-out"), "writer"));

    #[handle(source = INPUT, sink = [OUTPUT])]
    fn forward(msg: Message<String, String>) -> (String, String) {
        (msg.key.unwrap_or_default(), msg.value)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_input_is_committed_up_to_its_high_watermarks() {
        const N: u32 = 1000;
        create(INPUT.name(), 2).await;
        create(OUTPUT.name(), 2).await;
        let (handle, run, addr) = serve(app(module_path!()).http("127.0.0.1:0")).await;
        get_until(90, addr, "/health", |reply| reply.status == 200).await;
        for i in 0..N {
            INPUT.send(format!("key{i}"), format!("{i}")).await.unwrap();
        }
        // Nothing more comes: the last commits must happen anyway.
        let (name, group) = (INPUT.name(), GROUP.as_str());
        let metrics = get_until(60, addr, "/metrics", |reply| {
            partition_sum(
                &reply.body,
                "slipstream_topic_partition_committed_offset",
                name,
                group,
            ) == Some(f64::from(N))
        })
        .await
        .body;
        assert_caught_up(&metrics, name, group, N);
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
    }
}

/// Two instances of one app in one group reading a one-partition topic: the one left without
/// a partition is not healthy.
mod unassigned {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("admin-one-partition"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("admin-one-group"));

    macro_rules! instance {
        ($module:ident, $name:literal) => {
            pub mod $module {
                use super::*;

                pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, &GROUP));

                #[handle(source = INPUT, name = $name)]
                fn read(_msg: Message<String, String>) {}
            }
        };
    }

    instance!(first, "first_reader");
    instance!(second, "second_reader");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_instance_without_partitions_reports_it() {
        create(&NAME, 1).await;
        let one = app(&format!("{}::first", module_path!())).http("127.0.0.1:0");
        let two = app(&format!("{}::second", module_path!())).http("127.0.0.1:0");
        let (h1, r1, a1) = serve(one).await;
        let (h2, r2, a2) = serve(two).await;

        // Once the group has settled, the partition belongs to one of them. Rebalances may move
        // it while the test looks, so it looks again until both answers agree with the
        // assignment seen just before.
        let expected = format!("topic `{}` has no partitions assigned", *NAME);
        within(90, async {
            loop {
                let (a, b) = (first::INPUT.assignment(), second::INPUT.assignment());
                if a.len() + b.len() == 1 {
                    let (idle, busy) = if a.is_empty() { (a1, a2) } else { (a2, a1) };
                    let (idle, busy) = (get(idle, "/health").await, get(busy, "/health").await);
                    if idle.status == 503 && idle.body.contains(&expected) && busy.status == 200 {
                        break;
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;

        h1.shutdown();
        h2.shutdown();
        within(30, r1).await.unwrap().unwrap();
        within(30, r2).await.unwrap().unwrap();
    }
}

/// A message the topic's codec cannot read stops an application whose handler has the `stop`
/// policy: the handler is reported as failed, with the codec's error.
mod undecodable {
    use super::*;

    pub static INPUT: LazyLock<Topic<String, serde_json::Value>> = LazyLock::new(|| {
        Topic::json(unique("admin-undecodable"))
            .conf(crate::broker::conf(&unique("admin-undecodable-group")))
    });

    #[handle(source = INPUT, on_error = "stop")]
    fn strict(_msg: Message<String, serde_json::Value>) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_handler_is_reported_failed_with_the_codec_error() {
        create(INPUT.name(), 1).await;
        let raw: Topic = topic(INPUT.name(), &unique("unused"));
        raw.send("k", "not json".to_owned()).await.unwrap();
        let app = app(module_path!());
        let handle = app.handle();
        let error = within(60, app.run()).await.unwrap_err();
        assert!(matches!(error, slipstream::Error::Codec { .. }), "{error}");

        let health = handle.health();
        assert!(!health.is_ok());
        assert!(
            health
                .reasons()
                .iter()
                .any(|r| r
                    .starts_with("handler `strict` stopped with an error: codec error on topic")),
            "{:?}",
            health.reasons()
        );
        let status = handle.handler_status();
        assert_eq!(status[0].state, slipstream::HandlerState::Failed);
    }
}

mod undecodable_metric {
    use super::*;

    static GROUP: LazyLock<String> = LazyLock::new(|| unique("admin-undecodable-count-group"));
    pub static INPUT: LazyLock<Topic<String, serde_json::Value>> = LazyLock::new(|| {
        Topic::json(unique("admin-undecodable-count")).conf(crate::broker::conf(&GROUP))
    });
    pub static SEEN: slipstream_tests::Collected<serde_json::Value> =
        slipstream_tests::Collected::new();

    #[handle(source = INPUT, on_error = "skip")]
    fn lenient(msg: Message<String, serde_json::Value>) {
        SEEN.push(msg.value);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_count_the_messages_a_topic_could_not_decode() {
        create(INPUT.name(), 1).await;
        let raw: Topic = topic(INPUT.name(), &unique("unused"));
        raw.send("k", "not json".to_owned()).await.unwrap();
        raw.send("k", "{\"ok\":true}".to_owned()).await.unwrap();
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        slipstream_tests::until(60, || SEEN.len() == 1).await;
        let metrics = handle.metrics().await;
        let line = format!(
            "slipstream_topic_undecodable_total{{topic=\"{}\",group=\"{}\"}} 1",
            INPUT.name(),
            GROUP.as_str()
        );
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
        handle.shutdown();
        within(60, run).await.unwrap().unwrap();
    }
}
