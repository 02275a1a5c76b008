//! At-least-once delivery through handlers: a group resumes where it left off, seeking back
//! reprocesses, pausing a topic pauses its consumer.

use std::sync::LazyLock;
use std::time::Duration;

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};

use crate::broker::{create, topic, unique};

mod resume {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("resume"));
    static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, "resume-group"));
    pub static SEEN: Collected<String> = Collected::new();

    #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
    fn remember(msg: Message<String, String>) -> String {
        msg.value
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_group_resumes_after_a_restart_without_loss() {
        create(INPUT.name(), 1).await;
        for i in 0..100 {
            INPUT.send(format!("k{i}"), format!("{i}")).await.unwrap();
        }
        // First run: stop after some messages (a graceful shutdown commits what was handled).
        let first = app(module_path!());
        let handle = first.handle();
        let run = tokio::spawn(first.run());
        until(60, || SEEN.len() >= 30).await;
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
        let after_first = SEEN.len();

        // Second run, same group: it continues where the first left off.
        let second = app(module_path!());
        let handle = second.handle();
        let run = tokio::spawn(second.run());
        until(60, || SEEN.len() >= 100).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();

        let seen: Vec<u32> = SEEN.get().iter().map(|v| v.parse().unwrap()).collect();
        assert_eq!(
            seen,
            (0..100).collect::<Vec<_>>(),
            "in order, nothing lost, nothing twice (first run handled {after_first})"
        );
    }
}

mod seek {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("seek"));
    static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, "seek-group"));
    pub static SEEN: Collected<i64> = Collected::new();

    #[handle(source = INPUT, sink = [|o: i64| SEEN.push(o)])]
    fn offsets(msg: Message<String, String>) -> i64 {
        msg.offset
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn seeking_back_reprocesses() {
        create(INPUT.name(), 1).await;
        for i in 0..10 {
            INPUT.send(format!("k{i}"), "v").await.unwrap();
        }
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(60, || SEEN.len() >= 10).await;
        INPUT.seek(0, 4).unwrap();
        until(30, || SEEN.len() >= 16).await;
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
        let seen = SEEN.get();
        assert_eq!(seen[..10], (0..10).collect::<Vec<_>>());
        assert_eq!(seen[10..16], (4..10).collect::<Vec<_>>());
        assert!(
            INPUT.seek(0, 0).is_err(),
            "seeking a topic nobody consumes is an error"
        );
    }
}

mod pause {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("pause"));
    static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, "pause-group"));
    pub static SEEN: Collected<String> = Collected::new();

    #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
    fn values(msg: Message<String, String>) -> String {
        msg.value
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pausing_a_topic_pauses_its_consumer_and_loses_nothing() {
        create(INPUT.name(), 2).await;
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(60, || INPUT.assignment().len() == 2).await;
        INPUT.send("a", "before").await.unwrap();
        until(30, || SEEN.len() == 1).await;

        INPUT.pause();
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..10 {
            INPUT
                .send(format!("k{i}"), format!("paused {i}"))
                .await
                .unwrap();
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(SEEN.len(), 1, "nothing is delivered while paused");
        assert_eq!(
            INPUT.assignment().len(),
            2,
            "a paused consumer keeps its partitions"
        );

        INPUT.resume();
        until(30, || SEEN.len() == 11).await;
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
        let mut seen = SEEN.get();
        seen.sort();
        let mut expected: Vec<String> = (0..10).map(|i| format!("paused {i}")).collect();
        expected.push("before".into());
        expected.sort();
        assert_eq!(seen, expected);
    }
}

mod stop_commits_nothing_more {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("stop"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("stop-group"));

    pub mod strict {
        use super::*;
        pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, &GROUP));
        pub static SEEN: Collected<String> = Collected::new();

        #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)], on_error = "stop")]
        fn strict(msg: Message<String, String>) -> Result<String, String> {
            if msg.value == "5" {
                Err("five".into())
            } else {
                Ok(msg.value)
            }
        }
    }

    pub mod lenient {
        use super::*;
        pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, &GROUP));
        pub static SEEN: Collected<String> = Collected::new();

        #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
        fn lenient(msg: Message<String, String>) -> String {
            msg.value
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn after_a_stop_the_failed_message_and_those_after_it_are_read_again() {
        create(strict::INPUT.name(), 1).await;
        for i in 0..20 {
            strict::INPUT.send("k", format!("{i}")).await.unwrap();
        }
        let err = within(60, app(&format!("{}::strict", module_path!())).run())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("five"), "{err}");
        assert_eq!(
            strict::SEEN.get(),
            (0..5).map(|i| i.to_string()).collect::<Vec<_>>()
        );

        // The same group again: it starts at the failed message, nothing after it was skipped.
        let app = app(&format!("{}::lenient", module_path!()));
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(60, || {
            lenient::SEEN.get().last().map(String::as_str) == Some("19")
        })
        .await;
        handle.shutdown();
        within(30, run).await.unwrap().unwrap();
        // At-least-once: it resumes at or before the failed message, so nothing after it is lost.
        let seen: Vec<u32> = lenient::SEEN
            .get()
            .iter()
            .map(|v| v.parse().unwrap())
            .collect();
        assert!(
            seen[0] <= 5,
            "resumes at or before the failed message: {seen:?}"
        );
        assert_eq!(seen, (seen[0]..20).collect::<Vec<_>>());
    }
}

mod seek_is_immediate {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    static NAME: LazyLock<String> = LazyLock::new(|| unique("seek"));
    pub static INPUT: LazyLock<Topic> =
        LazyLock::new(|| topic(&NAME, &unique("seek-group")).stop_at_end(true));
    pub static SEEN: Collected<u32> = Collected::new();
    static SOUGHT: AtomicBool = AtomicBool::new(false);

    /// On 10, jumps to 200: the messages already read past 10 never reach it.
    #[handle(source = INPUT)]
    fn jump(msg: Message<String, String>) -> Result<(), slipstream::Error> {
        let n: u32 = msg.value.parse().unwrap();
        SEEN.push(n);
        if n == 10 && !SOUGHT.swap(true, Ordering::SeqCst) {
            INPUT.seek(msg.partition, 200)?;
        }
        Ok(())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_next_message_after_a_seek_is_the_one_sought() {
        create(INPUT.name(), 1).await;
        for i in 0..300 {
            INPUT.send("k", i.to_string()).await.unwrap();
        }
        within(120, app(module_path!()).run()).await.unwrap();
        let expected: Vec<u32> = (0..=10).chain(200..300).collect();
        assert_eq!(SEEN.get(), expected);
    }
}

mod refused_output {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("refused-in"));
    static OUT: LazyLock<String> = LazyLock::new(|| unique("refused-out"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("refused-group"));

    pub mod producing {
        use super::*;
        pub static INPUT: LazyLock<Topic> =
            LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));
        pub static OUTPUT: LazyLock<Topic> = LazyLock::new(|| topic(&OUT, "writer"));

        /// "big" becomes a 2 MB value, over the producer's size limit: refused when enqueued.
        #[handle(source = INPUT, sink = [OUTPUT])]
        fn inflate(msg: Message<String, String>) -> String {
            if msg.value == "big" {
                "x".repeat(2_000_000)
            } else {
                msg.value
            }
        }
    }

    pub mod reading {
        use super::*;
        pub static INPUT: LazyLock<Topic> =
            LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));
        pub static SEEN: Collected<String> = Collected::new();

        #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
        fn read(msg: Message<String, String>) -> String {
            msg.value
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_output_refused_when_enqueued_keeps_its_input_uncommitted() {
        create(&NAME, 1).await;
        create(&OUT, 1).await;
        for value in ["a", "big", "c"] {
            producing::INPUT.send("k", value).await.unwrap();
        }
        let err = within(60, app(&format!("{}::producing", module_path!())).run())
            .await
            .unwrap_err();
        assert!(matches!(err, slipstream::Error::Sink { .. }), "{err}");

        // The group reads "big" again.
        within(60, app(&format!("{}::reading", module_path!())).run())
            .await
            .unwrap();
        assert!(
            reading::SEEN.get().contains(&"big".to_owned()),
            "{:?}",
            reading::SEEN.get()
        );
    }
}

mod undecodable_stops {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("undecodable"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("undecodable-group"));

    pub mod strict {
        use super::*;
        pub static INPUT: LazyLock<Topic> =
            LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));
        pub static SEEN: Collected<String> = Collected::new();

        #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
        fn strict(msg: Message<String, String>) -> String {
            msg.value
        }
    }

    pub mod lenient {
        use super::*;
        pub static INPUT: LazyLock<Topic> =
            LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));
        pub static SEEN: Collected<String> = Collected::new();

        #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)], on_error = "skip")]
        fn lenient(msg: Message<String, String>) -> String {
            msg.value
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_undecodable_message_stops_before_anything_after_it_is_handled() {
        create(&NAME, 1).await;
        let raw: Topic<Vec<u8>, Vec<u8>> = topic(&NAME, "writer");
        strict::INPUT.send("k", "first").await.unwrap();
        raw.send(b"k".to_vec(), vec![0xff, 0xfe]).await.unwrap();
        strict::INPUT.send("k", "second").await.unwrap();

        let err = within(60, app(&format!("{}::strict", module_path!())).run())
            .await
            .unwrap_err();
        assert!(matches!(err, slipstream::Error::Codec { .. }), "{err}");
        assert_eq!(strict::SEEN.get(), ["first"]);

        // Not committed past: read again, and skipped under `skip`.
        within(60, app(&format!("{}::lenient", module_path!())).run())
            .await
            .unwrap();
        assert_eq!(
            lenient::SEEN.get().last().map(String::as_str),
            Some("second")
        );
        assert_eq!(lenient::INPUT.undecodable(), 1);
    }
}

mod kept_messages {
    use super::*;
    use std::sync::Mutex;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("kept"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("kept-group"));
    pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));
    /// A sink that keeps every message it is given.
    pub static KEPT: Mutex<Vec<Message<String, String>>> = Mutex::new(Vec::new());

    #[handle(source = INPUT, sink = [|m: Message<String, String>| KEPT.lock().unwrap().push(m)])]
    fn keep(msg: Message<String, String>) -> Message<String, String> {
        msg
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn messages_a_sink_keeps_do_not_hold_their_offsets_back() {
        create(&NAME, 1).await;
        for i in 0..5 {
            INPUT.send("k", i.to_string()).await.unwrap();
        }
        let started = std::time::Instant::now();
        within(60, app(module_path!()).run()).await.unwrap();
        // The final commit did not wait for the kept messages (it gives up after 30 s).
        assert!(
            started.elapsed() < Duration::from_secs(25),
            "{:?}",
            started.elapsed()
        );
        assert_eq!(KEPT.lock().unwrap().len(), 5);
        // Everything was committed: the group has nothing more to read.
        let again: Topic = topic(&NAME, &GROUP).stop_at_end(true);
        let mut stream = again.stream().unwrap();
        let next = tokio::time::timeout(
            Duration::from_secs(20),
            futures::StreamExt::next(&mut stream),
        )
        .await;
        assert!(matches!(next, Ok(None)), "read again: {next:?}");
    }
}

mod paused_stays_in_group {
    use super::*;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("paused-member"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("paused-member-group"));
    /// A member that does not poll for 6 s leaves its group.
    pub static INPUT: LazyLock<Topic> = LazyLock::new(|| {
        topic(&NAME, &GROUP)
            .conf([("max.poll.interval.ms", "6000")])
            .stop_at_end(true)
    });
    pub static SEEN: Collected<u32> = Collected::new();
    static GO: tokio::sync::Notify = tokio::sync::Notify::const_new();

    /// Holds message 10 until told to go: meanwhile its buffer fills up.
    #[handle(source = INPUT)]
    async fn held(msg: Message<String, String>) {
        let n: u32 = msg.value.parse().unwrap();
        SEEN.push(n);
        if n == 10 {
            GO.notified().await;
        }
    }

    /// The log lines of this test binary's consumers.
    static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

    struct Logs;

    impl std::io::Write for Logs {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            LOGS.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// How often this test's consumer was given its partitions.
    fn assignments() -> usize {
        let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
        logs.lines()
            .filter(|l| l.contains("partitions assigned") && l.contains(NAME.as_str()))
            .count()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_topic_keeps_its_consumer_in_the_group() {
        // The consumer's callbacks log from librdkafka's threads: a global subscriber.
        tracing_subscriber::fmt()
            .with_writer(|| Logs)
            .with_ansi(false)
            .with_env_filter("slipstream_kafka=info")
            .try_init()
            .expect("the only global subscriber of this binary");
        create(INPUT.name(), 1).await;
        for i in 0..500 {
            INPUT.send("k", i.to_string()).await.unwrap();
        }
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        // The handler holds 10 and the messages behind it fill its buffer: the consumer has
        // read well past it.
        until(60, || SEEN.len() == 11).await;
        let position = format!("topic=\"{}\"", NAME.as_str());
        within(60, async {
            while !handle.metrics().await.lines().any(|line| {
                line.starts_with("slipstream_topic_partition_position{")
                    && line.contains(&position)
                    && line
                        .rsplit(' ')
                        .next()
                        .and_then(|v| v.parse::<f64>().ok())
                        .is_some_and(|v| v >= 130.0)
            }) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        INPUT.pause();
        GO.notify_one();
        // Longer than the poll interval: a consumer nobody polled would have left the group
        // (and been given its partition again when polled).
        tokio::time::sleep(Duration::from_secs(8)).await;
        assert_eq!(SEEN.len(), 11, "nothing is delivered while paused");
        INPUT.resume();
        within(120, run).await.unwrap().unwrap();
        assert_eq!(
            SEEN.get(),
            (0..500).collect::<Vec<u32>>(),
            "each once, in order"
        );
        assert_eq!(assignments(), 1, "it never left the group");
    }
}
