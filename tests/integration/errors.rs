//! Error and panic policy.

use std::time::Duration;

use futures::stream;
use slipstream::prelude::*;
use slipstream::{Error, OnError};
use slipstream_tests::{Collected, app, within};

mod skip_policy {
    use super::*;
    pub static OUT: Collected<String> = Collected::new();

    #[handle(source = stream::iter(0..5u32), sink = [|s: String| OUT.push(s)], on_error = "skip")]
    fn sync_panics(n: u32) -> String {
        assert_ne!(n, 1, "sync panic on 1");
        format!("sync {n}")
    }

    #[handle(source = stream::iter(0..5u32), sink = [|s: String| OUT.push(s)], on_error = "skip")]
    async fn async_panics(n: u32) -> Result<String, String> {
        if n == 2 {
            panic!("async panic on 2");
        }
        if n == 3 {
            return Err("async error on 3".into());
        }
        Ok(format!("async {n}"))
    }

    #[handle(source = stream::iter(0..3u32), sink = [|s: String| OUT.push(s)], on_error = "skip")]
    async fn generator_panics(n: u32) {
        emit!(format!("gen {n}"));
        if n == 1 {
            panic!("generator panic on 1");
        }
    }

    fn picky(s: String) -> Result<(), String> {
        if s == "sinked 1" {
            Err("sink error on 1".into())
        } else {
            OUT.push(s);
            Ok(())
        }
    }

    #[handle(source = stream::iter(0..3u32), sink = [picky], on_error = "skip")]
    fn sinked(n: u32) -> String {
        format!("sinked {n}")
    }

    #[tokio::test]
    async fn failures_are_skipped_and_processing_continues() {
        within(10, app(module_path!()).run()).await.unwrap();
        let of = |prefix: &str| OUT.starting_with(prefix);
        assert_eq!(of("sync"), ["sync 0", "sync 2", "sync 3", "sync 4"]);
        assert_eq!(of("async"), ["async 0", "async 1", "async 4"]);
        assert_eq!(of("gen"), ["gen 0", "gen 1", "gen 2"]);
        assert_eq!(of("sinked"), ["sinked 0", "sinked 2"]);
    }
}

mod stop_policy {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();
    pub static TICKS: Collected<()> = Collected::new();

    /// No policy given: `stop` is the default.
    #[handle(source = stream::iter(0..10u32), sink = [|n: u32| OUT.push(n)])]
    fn strict(n: u32) -> Result<u32, String> {
        if n == 3 {
            Err(format!("{n} is not allowed"))
        } else {
            Ok(n)
        }
    }

    /// An endless sibling: the stop must end it too.
    #[handle(source = timer(Duration::from_millis(5)), sink = [|_: ()| TICKS.push(())])]
    fn ticking() {}

    #[tokio::test]
    async fn the_first_error_stops_the_app_and_is_returned() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        match &err {
            Error::Handler { handler, source } => {
                assert_eq!(handler, "strict");
                assert_eq!(source.to_string(), "3 is not allowed");
            }
            other => panic!("unexpected error {other:?}"),
        }
        assert_eq!(err.to_string(), "handler `strict` failed: 3 is not allowed");
        assert_eq!(OUT.get(), [0, 1, 2]);
        let _: anyhow::Error = err.into();
    }
}

mod app_policy {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();

    #[handle(source = stream::iter(0..4u32), sink = [|n: u32| OUT.push(n)])]
    async fn panicky(n: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if n == 2 {
            panic!("boom at {n}");
        }
        n
    }

    #[handle(source = stream::iter(100..104u32), sink = [|n: u32| OUT.push(n)], on_error = "skip")]
    fn lenient(n: u32) -> Result<u32, String> {
        if n == 101 {
            Err("lenient error".into())
        } else {
            Ok(n)
        }
    }

    #[tokio::test]
    async fn the_app_default_applies_unless_a_handler_sets_its_own() {
        let err = within(10, app(module_path!()).on_error(OnError::Stop).run())
            .await
            .unwrap_err();
        match err {
            Error::Panic { handler, message } => {
                assert_eq!(handler, "panicky");
                assert_eq!(message, "boom at 2");
            }
            other => panic!("unexpected error {other:?}"),
        }
        let out = OUT.get();
        assert_eq!(
            out.iter()
                .filter(|n| **n < 100)
                .copied()
                .collect::<Vec<_>>(),
            [0, 1]
        );
        // `lenient` skipped its error (it finished long before the panic).
        assert_eq!(
            out.iter()
                .filter(|n| **n >= 100)
                .copied()
                .collect::<Vec<_>>(),
            [100, 102, 103]
        );
    }
}

mod sink_stop {
    use super::*;

    async fn failing(_: u32) -> Result<(), std::io::Error> {
        Err(std::io::Error::other("disk full"))
    }

    #[handle(source = stream::iter(0..3u32), sink = [failing], on_error = "stop")]
    fn writes(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn a_failing_sink_follows_the_policy() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "a sink of handler `writes` failed: disk full"
        );
    }
}

mod logging {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[handle(source = stream::iter(["x"]), on_error = "skip")]
    fn logged_failure(word: &'static str) -> Result<(), String> {
        Err(format!("cannot handle {word}"))
    }

    // Single-threaded, so the handler's task runs where the subscriber is installed.
    #[tokio::test(flavor = "current_thread")]
    async fn a_failure_is_logged_with_the_handlers_name() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        within(10, app(module_path!()).run()).await.unwrap();
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert!(logs.contains("ERROR"), "{logs}");
        assert!(logs.contains("handler=\"logged_failure\""), "{logs}");
        assert!(logs.contains("cannot handle x"), "{logs}");
        assert!(
            logs.contains("source=") && logs.contains("stream::iter"),
            "the source is named: {logs}"
        );
    }
}

mod stop_closes_sinks {
    use super::*;
    pub static LOG: Collected<String> = Collected::new();

    struct Flushing;
    impl Sink<u32> for Flushing {
        async fn send(&mut self, n: u32) -> Result<(), slipstream::BoxError> {
            LOG.push(format!("sent {n}"));
            Ok(())
        }
        async fn close(&mut self) -> Result<(), slipstream::BoxError> {
            LOG.push("closed".into());
            Ok(())
        }
    }

    #[handle(source = stream::iter(0..5u32), sink = [Flushing], on_error = "stop")]
    fn until_two(n: u32) -> Result<u32, String> {
        if n == 2 { Err("two".into()) } else { Ok(n) }
    }

    #[tokio::test]
    async fn a_stopping_handler_still_closes_its_sinks() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        assert_eq!(err.to_string(), "handler `until_two` failed: two");
        assert_eq!(LOG.get(), ["sent 0", "sent 1", "closed"]);
    }
}

mod failing_sink_first {
    use super::*;
    pub static SECOND: Collected<u32> = Collected::new();

    fn first(n: u32) -> Result<(), String> {
        if n == 1 {
            Err("first sink fails on 1".into())
        } else {
            Ok(())
        }
    }

    #[handle(source = stream::iter(0..3u32), sink = [first, |n: u32| SECOND.push(n)], on_error = "skip")]
    fn both(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn every_sink_gets_every_output_even_after_an_earlier_sink_failed() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(SECOND.get(), [0, 1, 2]);
    }
}

mod retries {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub static OUT: Collected<String> = Collected::new();
    static TRIES: AtomicU32 = AtomicU32::new(0);
    static HOPELESS: AtomicU32 = AtomicU32::new(0);

    /// Fails twice on 1, then succeeds.
    #[handle(source = stream::iter(0..3u32), sink = [|s: String| OUT.push(s)], retry = 2, backoff_ms = 1)]
    fn flaky(n: u32) -> Result<String, String> {
        if n == 1 && TRIES.fetch_add(1, Ordering::SeqCst) < 2 {
            return Err("not yet".into());
        }
        Ok(format!("flaky {n}"))
    }

    /// Always fails on 7: tried three times, then skipped.
    #[handle(source = stream::iter(6..9u32), sink = [|s: String| OUT.push(s)], retry = 2, backoff_ms = 1, on_error = "skip")]
    async fn hopeless(n: u32) -> Result<String, String> {
        if n == 7 {
            HOPELESS.fetch_add(1, Ordering::SeqCst);
            return Err("never".into());
        }
        Ok(format!("hopeless {n}"))
    }

    #[tokio::test]
    async fn a_failed_item_is_tried_again_before_its_policy_applies() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(
            OUT.starting_with("flaky"),
            ["flaky 0", "flaky 1", "flaky 2"]
        );
        assert_eq!(TRIES.load(Ordering::SeqCst), 3);
        assert_eq!(OUT.starting_with("hopeless"), ["hopeless 6", "hopeless 8"]);
        assert_eq!(HOPELESS.load(Ordering::SeqCst), 3);
    }
}

mod dead_letter_without_record {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();

    /// A plain stream has no source record to forward: the failure stops the application.
    #[handle(source = stream::iter(0..3u32), sink = [|n: u32| OUT.push(n)], dead_letter = "nowhere")]
    fn plain(n: u32) -> Result<u32, String> {
        if n == 1 { Err("one".into()) } else { Ok(n) }
    }

    #[tokio::test]
    async fn an_item_that_cannot_be_dead_lettered_stops_the_app() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        assert_eq!(err.to_string(), "handler `plain` failed: one");
        assert_eq!(OUT.get(), [0]);
    }
}

/// A panic the runtime catches is reported once: by its log, with where it happened, not also by
/// Rust's default panic hook. Runs a child process to see its standard error.
mod panic_reported_once {
    use super::*;
    use std::process::Command;

    #[handle(source = stream::iter([1u32, 2]), on_error = "skip")]
    fn panics_on_two(n: u32) {
        assert_ne!(n, 2, "two is refused");
    }

    /// The app, when this binary runs as the child (logging to standard error).
    #[tokio::test]
    async fn child_panicking_app() {
        if std::env::var("PANIC_TEST_CHILD").is_err() {
            return;
        }
        slipstream::App::new()
            .module(module_path!())
            .signals(false)
            .run()
            .await
            .unwrap();
        println!("child done");
    }

    #[test]
    fn a_caught_panic_is_logged_once_with_its_location() {
        let output = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "errors::panic_reported_once::child_panicking_app",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PANIC_TEST_CHILD", "1")
            .env("RUST_LOG", "error")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stdout.contains("child done"), "{stdout}\n{stderr}");
        assert_eq!(
            stderr.matches("two is refused").count(),
            1,
            "reported once: {stderr}"
        );
        assert!(stderr.contains("handler panicked"), "{stderr}");
        assert!(
            stderr.contains("at=\"tests/integration/errors.rs:"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("panicked at"),
            "the default hook is quiet: {stderr}"
        );
    }
}
