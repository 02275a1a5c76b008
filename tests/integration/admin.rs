//! The admin server (`App::http`, `SLIPSTREAM_HTTP_ADDR`): `/health`, `/metrics` and
//! `/handlers`, read with a real HTTP client while the application runs.

use futures::{StreamExt, stream};
use slipstream::prelude::*;
use slipstream_tests::{
    Collected, app, check_exposition, get, get_until, http, sample, serve, until, within,
};

/// Items that arrive one by one and then none: the application keeps running.
fn numbers(n: u64) -> impl futures::Stream<Item = u64> {
    stream::iter(0..n).chain(stream::pending())
}

mod counters {
    use super::*;

    pub const N: u64 = 40;
    pub static SEEN: Collected<u64> = Collected::new();

    /// Fails on every tenth item (four times), passes the others on.
    #[handle(source = numbers(N), sink = [|n: u64| SEEN.push(n)], on_error = "skip")]
    fn relay(n: u64) -> Result<u64, String> {
        if n.is_multiple_of(10) {
            Err(format!("{n} is round"))
        } else {
            Ok(n)
        }
    }

    /// Two outputs per item.
    #[handle(source = numbers(N), sink = [|_: u64| {}])]
    fn split(n: u64) {
        emit!(n);
        emit!(n + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn metrics_count_every_item_output_and_error() {
        let (handle, run, addr) = serve(app(module_path!()).http("127.0.0.1:0")).await;

        // Every item is handled (the last outputs reach the sink after their counts).
        until(10, || SEEN.len() == 36).await;
        let reply = get_until(10, addr, "/metrics", |reply| {
            let done = |handler| {
                sample(
                    &reply.body,
                    "slipstream_handler_messages_total",
                    &format!("handler=\"{handler}\""),
                ) == Some(N as f64)
            };
            done("relay") && done("split")
        })
        .await;
        assert_eq!(reply.status, 200);
        assert!(reply.content_type.starts_with("text/plain; version=0.0.4"));
        let metrics = reply.body;
        check_exposition(&metrics);
        let value = |name: &str, labels: &str| sample(&metrics, name, labels);
        assert_eq!(
            value("slipstream_handler_outputs_total", r#"handler="relay""#),
            Some(36.0)
        );
        assert_eq!(
            value("slipstream_handler_outputs_total", r#"handler="split""#),
            Some(80.0)
        );
        assert_eq!(
            value(
                "slipstream_handler_errors_total",
                r#"handler="relay",kind="error""#
            ),
            Some(4.0)
        );
        assert_eq!(
            value(
                "slipstream_handler_errors_total",
                r#"handler="split",kind="error""#
            ),
            Some(0.0)
        );
        assert_eq!(
            value(
                "slipstream_handler_processing_seconds_count",
                r#"handler="relay""#
            ),
            Some(N as f64)
        );
        assert_eq!(
            value(
                "slipstream_handler_processing_seconds_bucket",
                r#"handler="relay",le="+Inf""#
            ),
            Some(N as f64)
        );
        assert_eq!(
            value("slipstream_handler_up", r#"handler="relay""#),
            Some(1.0)
        );
        assert!(metrics.contains("# TYPE slipstream_handler_processing_seconds histogram"));

        let health = get(addr, "/health").await;
        assert_eq!(health.status, 200, "{}", health.body);
        let health: serde_json::Value = serde_json::from_str(&health.body).unwrap();
        assert_eq!(health["status"], "ok");

        let handlers = get(addr, "/handlers").await;
        assert_eq!(handlers.status, 200);
        assert_eq!(handlers.content_type, "application/json");
        let handlers: serde_json::Value = serde_json::from_str(&handlers.body).unwrap();
        let relay = handlers
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "relay")
            .expect("relay is listed");
        assert_eq!(relay["sources"][0], "numbers(N)");
        assert_eq!(relay["sinks"][0], "|n: u64| SEEN.push(n)");
        assert_eq!(relay["state"], "running");
        assert_eq!(relay["on_error"], "skip");
        assert_eq!(relay["counters"]["messages"], N);
        assert_eq!(relay["counters"]["errors"], 4);

        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        // (Whether anything listens on the port afterwards is not checked: another test of this
        // binary may have been given the same port by then.)
        assert_eq!(
            handle.http_addr().await,
            None,
            "the server stops with the run"
        );
    }
}

mod failure {
    use super::*;
    use std::sync::Arc;
    use tokio::sync::Notify;

    static POISON: Notify = Notify::const_new();

    /// A few items, then (once the test says so) one the handler cannot take.
    fn items() -> impl futures::Stream<Item = u64> {
        stream::iter(0..3)
            .chain(stream::once(async {
                POISON.notified().await;
                99
            }))
            .chain(stream::pending())
    }

    #[handle(source = items(), on_error = "stop")]
    fn fragile(n: u64) -> Result<(), String> {
        if n == 99 {
            Err("cannot take 99".into())
        } else {
            Ok(())
        }
    }

    #[handle(source = numbers(1))]
    fn bystander(_n: u64) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn health_turns_503_when_a_handler_stops_with_an_error() {
        // The exit hook holds the run (and its server) open until the test has looked.
        let release = Arc::new(Notify::new());
        let hold = Arc::clone(&release);
        let app = app(module_path!())
            .http("0")
            .on_shutdown_async(async move { hold.notified().await });
        let (_handle, run, addr) = serve(app).await;
        assert!(addr.ip().is_loopback(), "a bare port listens on 127.0.0.1");

        get_until(10, addr, "/health", |reply| reply.status == 200).await;
        POISON.notify_one();
        // The handler is marked failed a moment before the shutdown starts: wait for both.
        let unhealthy = get_until(10, addr, "/health", |reply| {
            reply.status == 503 && reply.body.contains("shutting down")
        })
        .await;
        let body: serde_json::Value = serde_json::from_str(&unhealthy.body).unwrap();
        assert_eq!(body["status"], "unavailable");
        let reasons: Vec<&str> = body["reasons"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r.as_str().unwrap())
            .collect();
        assert!(
            reasons.contains(&"handler `fragile` stopped with an error: cannot take 99"),
            "{reasons:?}"
        );
        assert!(
            reasons.contains(&"the application is shutting down"),
            "{reasons:?}"
        );

        let handlers: serde_json::Value =
            serde_json::from_str(&get(addr, "/handlers").await.body).unwrap();
        let fragile = handlers
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h["name"] == "fragile")
            .expect("fragile is listed");
        assert_eq!(fragile["state"], "failed");
        assert_eq!(fragile["error"], "cannot take 99");
        assert_eq!(fragile["on_error"], "stop");
        let metrics = get(addr, "/metrics").await.body;
        assert_eq!(
            sample(&metrics, "slipstream_handler_up", r#"handler="fragile""#),
            Some(0.0)
        );

        release.notify_one();
        let error = within(10, run).await.unwrap().unwrap_err();
        assert!(
            matches!(error, slipstream::Error::Handler { .. }),
            "{error}"
        );
    }
}

mod pages {
    use super::*;

    #[handle(source = numbers(1))]
    fn idle(_n: u64) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unknown_pages_and_methods_are_refused() {
        let (handle, run, addr) = serve(app(module_path!()).http("127.0.0.1:0")).await;
        until(10, || handle.health().is_ok()).await;
        // A client stalled in the middle of its request holds up nobody else.
        let mut stalled = tokio::net::TcpStream::connect(addr).await.unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut stalled, b"GET /hea")
            .await
            .unwrap();
        assert_eq!(within(5, get(addr, "/health")).await.status, 200);

        let missing = get(addr, "/nope?x=1").await;
        assert_eq!(missing.status, 404);
        assert!(
            missing.body.contains("/health, /metrics, /handlers"),
            "{}",
            missing.body
        );
        assert_eq!(http("POST", addr, "/health").await.status, 405);
        let head = http("HEAD", addr, "/metrics").await;
        assert_eq!((head.status, head.body.as_str()), (200, ""));
        let index = get(addr, "/").await;
        assert_eq!(index.status, 200);
        assert!(index.body.contains("/metrics"));
        // A query string does not change the page.
        assert_eq!(get(addr, "/health?verbose").await.status, 200);

        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn an_address_in_use_fails_the_run() {
        let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap().to_string();
        let app = app("no::handlers").http(addr.clone());
        let handle = app.handle();
        let error = within(10, app.run()).await.unwrap_err();
        assert!(matches!(error, slipstream::Error::Http { .. }), "{error}");
        assert!(error.to_string().contains(&addr), "{error}");
        assert_eq!(handle.http_addr().await, None);
    }

    #[tokio::test]
    async fn without_a_server_http_addr_is_none_and_health_reports_not_running() {
        let app = app("no::handlers");
        let handle = app.handle();
        assert_eq!(
            handle.health().reasons(),
            ["the application is not running"]
        );
        within(10, app.run()).await.unwrap();
        assert_eq!(handle.http_addr().await, None);
    }
}

/// The format check the tests rely on rejects what a scraper would.
#[test]
fn the_exposition_check_rejects_broken_texts() {
    let good = "# HELP h Help.\n# TYPE h histogram\nh_bucket{a=\"1\",le=\"0.1\"} 1\nh_bucket{a=\"1\",le=\"+Inf\"} 2\nh_sum{a=\"1\"} 0.5\nh_count{a=\"1\"} 2\n";
    check_exposition(good);
    let broken = [
        good.replace("} 2\nh_sum", "} 0\nh_sum"), // not cumulative
        good.replace("h_count{a=\"1\"} 2", "h_count{a=\"1\"} 3"), // +Inf != count
        good.replace("# TYPE h histogram\n", ""), // no TYPE
        format!("{good}h_sum{{a=\"1\"}} 0.5\n"),  // a series twice
        good.replace("0.5", "half"),              // not a number
    ];
    for text in broken {
        let rejected = std::panic::catch_unwind(|| check_exposition(&text)).is_err();
        assert!(rejected, "accepted:\n{text}");
    }
}

mod unmeasured {
    use super::*;

    #[handle(source = numbers(5))]
    fn plain(_n: u64) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn without_metrics_nothing_is_counted_but_states_are_reported() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(10, || handle.health().is_ok()).await;

        let status = handle.handler_status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].state, slipstream::HandlerState::Running);
        assert!(status[0].counters.is_none());
        let metrics = handle.metrics().await;
        assert_eq!(
            sample(&metrics, "slipstream_handler_up", r#"handler="plain""#),
            Some(1.0)
        );
        assert!(
            !metrics.contains("slipstream_handler_messages_total"),
            "{metrics}"
        );

        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        assert!(!handle.health().is_ok());
        assert_eq!(
            handle.handler_status()[0].state,
            slipstream::HandlerState::Finished
        );
    }
}

mod finished {
    use super::*;

    #[handle(source = stream::iter(0..2u64))]
    fn once(_n: u64) {}

    #[handle(source = numbers(1))]
    fn forever(_n: u64) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handler_whose_source_ended_is_reported() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(10, || {
            let status = handle.handler_status();
            status.len() == 2
                && status.iter().all(|h| match h.name {
                    "once" => h.state == slipstream::HandlerState::Finished,
                    _ => h.state == slipstream::HandlerState::Running,
                })
        })
        .await;
        let health = handle.health();
        assert_eq!(
            health.reasons(),
            ["handler `once` is no longer running: its source has ended"]
        );
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        assert_eq!(
            handle.health().reasons(),
            ["the application is shutting down"]
        );
    }
}

mod sink_panics {
    use super::*;

    fn fragile_sink(n: u64) {
        assert_ne!(n, 1, "the sink cannot take 1");
    }

    #[handle(source = stream::iter(0..3u64), sink = [fragile_sink], on_error = "skip")]
    async fn generate(n: u64) {
        emit!(n);
    }

    /// A sink panicking under an async generator is the sink's failure, not the handler's.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_sink_counts_as_a_sink_failure() {
        let app = app(module_path!()).metrics(true);
        let handle = app.handle();
        within(10, app.run()).await.unwrap();
        let metrics = handle.metrics().await;
        let errors = |kind: &str| {
            sample(
                &metrics,
                "slipstream_handler_errors_total",
                &format!("handler=\"generate\",kind=\"{kind}\""),
            )
        };
        assert_eq!(errors("sink"), Some(1.0), "{metrics}");
        assert_eq!(errors("panic"), Some(0.0), "{metrics}");
    }
}

mod environment {
    use super::*;

    #[handle(source = numbers(3))]
    fn observed(_n: u64) {}

    /// Runs in a child process with `SLIPSTREAM_HTTP_ADDR` set (does nothing otherwise).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn child_with_the_variable_set() {
        if std::env::var_os("TEST_ADMIN_CHILD").is_none() {
            return;
        }
        // No `http(..)` in code: the variable alone turns the server on.
        let (handle, run, addr) = serve(app(module_path!())).await;
        assert!(addr.ip().is_loopback());
        get_until(10, addr, "/metrics", |reply| {
            let seen = sample(
                &reply.body,
                "slipstream_handler_messages_total",
                r#"handler="observed""#,
            );
            seen == Some(3.0)
        })
        .await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        println!("admin child: ok");
    }

    /// Runs in a child process with a bad `SLIPSTREAM_HTTP_ADDR` (does nothing otherwise).
    #[tokio::test]
    async fn child_with_a_bad_address() {
        if std::env::var_os("TEST_ADMIN_CHILD").is_none() {
            return;
        }
        let error = app("no::handlers").run().await.unwrap_err();
        println!("admin child: {error}");
    }

    #[test]
    fn a_bad_address_in_the_variable_is_a_clear_error() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "admin::environment::child_with_a_bad_address",
                "--nocapture",
            ])
            .env("TEST_ADMIN_CHILD", "1")
            .env("SLIPSTREAM_HTTP_ADDR", "nowhere")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(
                "admin child: cannot start the admin server on `SLIPSTREAM_HTTP_ADDR=nowhere`: "
            ),
            "{stdout}"
        );
    }

    #[test]
    fn the_environment_variable_turns_the_server_on() {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "admin::environment::child_with_the_variable_set",
                "--nocapture",
            ])
            .env("TEST_ADMIN_CHILD", "1")
            .env("SLIPSTREAM_HTTP_ADDR", ":0")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success() && stdout.contains("admin child: ok"),
            "{stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

mod scrape_storm {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use slipstream::__component::{ConsumerProbe, ConsumerStatus, PartitionReport};
    use slipstream::{BuildCx, Error, IntoSource, SourceStream};

    /// How often a report asked the (pretend) broker.
    pub static ASKED: AtomicUsize = AtomicUsize::new(0);

    /// A consumer the reports ask about, as a topic's would be.
    struct Probe;

    impl ConsumerProbe for Probe {
        fn topic(&self) -> &str {
            "storm"
        }
        fn group(&self) -> Option<&str> {
            Some("storm-group")
        }
        fn partitions(&self, _deadline: std::time::Instant) -> Vec<PartitionReport> {
            ASKED.fetch_add(1, Ordering::SeqCst);
            vec![PartitionReport {
                partition: 0,
                position: Some(1),
                committed: Some(1),
                high_watermark: Some(1),
            }]
        }
    }

    /// A source that registers the probe, then yields nothing.
    struct Watched;

    static PROBE: std::sync::LazyLock<Arc<dyn ConsumerProbe>> =
        std::sync::LazyLock::new(|| Arc::new(Probe));

    impl IntoSource<()> for Watched {
        type Item = u64;
        type Stream = stream::Pending<u64>;

        fn into_source(self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Self::Stream>, Error> {
            let status = Arc::new(ConsumerStatus::new("storm"));
            status.assign([0]);
            cx.watch_consumer(status, Arc::downgrade(&PROBE));
            Ok(SourceStream::external(stream::pending()))
        }
    }

    #[handle(source = Watched)]
    fn idle(_n: u64) {}

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hundreds_of_concurrent_scrapes_ask_the_brokers_once() {
        let (handle, run, addr) = serve(app(module_path!()).http("127.0.0.1:0")).await;
        let started = std::time::Instant::now();
        let scrapes: Vec<_> = (0..200)
            .map(|_| tokio::spawn(async move { get(addr, "/metrics").await }))
            .collect();
        for scrape in scrapes {
            let reply = scrape.await.unwrap();
            assert_eq!(reply.status, 200);
            assert!(reply.body.contains("storm"), "{}", reply.body);
        }
        // One report a second at most, shared by every scrape of that second (without it: 200).
        let seconds = started.elapsed().as_secs() as usize;
        let asked = ASKED.load(Ordering::SeqCst);
        assert!(
            asked >= 1 && asked <= seconds + 2,
            "the broker was asked {asked} times in {seconds} s"
        );
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
    }
}
