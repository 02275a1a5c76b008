//! Graceful shutdown: sources stop, in-flight work finishes, feeds between handlers drain, exit
//! hooks run; signals (in a child process): one shuts down gracefully, a second exits at once.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use slipstream::prelude::*;
use slipstream_tests::{Collected, app, until, within};

mod in_flight {
    use super::*;
    pub static STARTED: Collected<u32> = Collected::new();
    pub static FINISHED: Collected<u32> = Collected::new();
    pub static HOOKS: Collected<&'static str> = Collected::new();

    #[handle(source = futures::stream::iter(0..1000u32), sink = [|n: u32| FINISHED.push(n)])]
    async fn slow(n: u32) -> u32 {
        STARTED.push(n);
        tokio::time::sleep(Duration::from_millis(200)).await;
        n
    }

    #[tokio::test]
    async fn the_item_in_flight_finishes_and_hooks_run() {
        let app = app(module_path!())
            .on_shutdown(|| HOOKS.push("sync hook"))
            .on_shutdown_async(async { HOOKS.push("async hook") });
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(10, || STARTED.len() == 1).await;
        handle.shutdown();
        assert!(handle.is_shutting_down());
        within(10, run).await.unwrap().unwrap();
        assert_eq!(STARTED.get(), [0], "no new item starts after shutdown");
        assert_eq!(
            FINISHED.get(),
            [0],
            "the in-flight item finished and was delivered"
        );
        assert_eq!(HOOKS.get(), ["sync hook", "async hook"]);
    }
}

mod drain {
    use super::*;

    static LINES: LazyLock<Proxy<u64>> = LazyLock::new(Proxy::new);
    static WRITTEN: AtomicUsize = AtomicUsize::new(0);
    pub static READ: Collected<u64> = Collected::new();

    #[handle(source = futures::stream::iter(0u64..), sink = [LINES])]
    fn write(n: u64) -> u64 {
        WRITTEN.fetch_add(1, Ordering::SeqCst);
        n
    }

    #[handle(source = LINES, sink = [|n: u64| READ.push(n)])]
    async fn read(n: u64) -> u64 {
        tokio::time::sleep(Duration::from_micros(100)).await;
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn values_between_handlers_are_delivered_before_the_run_ends() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(10, || READ.len() >= 100).await;
        LINES.pause(); // even a paused feed drains at shutdown
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        let read = READ.get();
        assert_eq!(
            read.len(),
            WRITTEN.load(Ordering::SeqCst),
            "everything written was read"
        );
        assert_eq!(read, (0..read.len() as u64).collect::<Vec<_>>());
    }
}

mod busy_source {
    use super::*;
    pub static SEEN: AtomicUsize = AtomicUsize::new(0);

    #[handle(source = futures::stream::iter(0u64..))]
    fn spin(_: u64) {
        SEEN.fetch_add(1, Ordering::Relaxed);
    }

    // One thread: the handler's endless, always-ready source must still let the shutdown in.
    #[tokio::test(flavor = "current_thread")]
    async fn an_always_ready_source_does_not_starve_the_runtime() {
        let app = app(module_path!());
        let handle = app.handle();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            handle.shutdown();
        });
        within(10, app.run()).await.unwrap();
        assert!(SEEN.load(Ordering::Relaxed) > 0);
    }
}

/// The app a child process runs for the signal tests (see `run_child`).
mod child {
    use super::*;

    #[handle(source = timer(Duration::from_millis(20)))]
    async fn child_tick() {
        if std::env::var("TEST_SHUTDOWN_CHILD").as_deref() == Ok("slow") {
            println!("busy");
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        println!("tick");
    }

    /// Runs only in the child process.
    #[tokio::test]
    async fn child_app() {
        if std::env::var("TEST_SHUTDOWN_CHILD").is_err() {
            return;
        }
        slipstream::on_shutdown(|| println!("hook ran"));
        slipstream::App::new()
            .module(module_path!())
            .run()
            .await
            .unwrap();
        println!("run returned");
    }
}

/// Starts this test binary running only `child_app`, waits until it prints `line`.
fn run_child(mode: &str, line: &str) -> (std::process::Child, Vec<String>) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shutdown::child::child_app",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TEST_SHUTDOWN_CHILD", mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut seen = Vec::new();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        let mut buf = String::new();
        if reader.read_line(&mut buf).unwrap() == 0 {
            break;
        }
        seen.push(buf.trim_end().to_owned());
        if buf.trim_end().ends_with(line) {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.ends_with(line)),
        "the child never printed {line:?}: {seen:?}"
    );
    // Keep reading the rest in the background.
    let rest = std::thread::spawn(move || reader.lines().map_while(Result::ok).collect::<Vec<_>>());
    CHILD_OUTPUT.lock().unwrap().replace(rest);
    (child, seen)
}

static CHILD_OUTPUT: std::sync::Mutex<Option<std::thread::JoinHandle<Vec<String>>>> =
    std::sync::Mutex::new(None);

fn signal(child: &std::process::Child, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait(child: &mut std::process::Child, secs: u64) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the child did not exit within {secs} s");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

// Both signal tests start children and read a shared slot: run them one after the other.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn sigint_and_sigterm_shut_down_gracefully() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for sig in ["INT", "TERM"] {
        let (mut child, _) = run_child("fast", "tick");
        signal(&child, sig);
        let status = wait(&mut child, 20);
        let rest = CHILD_OUTPUT.lock().unwrap().take().unwrap().join().unwrap();
        assert!(status.success(), "SIG{sig}: {status:?} {rest:?}");
        let hook = rest
            .iter()
            .position(|l| l == "hook ran")
            .expect("the exit hook ran");
        let returned = rest
            .iter()
            .position(|l| l == "run returned")
            .expect("run() returned");
        assert!(hook < returned);
    }
}

#[test]
fn a_second_signal_exits_at_once() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (mut child, _) = run_child("slow", "busy");
    signal(&child, "INT");
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        child.try_wait().unwrap().is_none(),
        "the first signal waits for in-flight work"
    );
    let sent = Instant::now();
    signal(&child, "INT");
    let status = wait(&mut child, 10);
    assert!(sent.elapsed() < Duration::from_secs(5));
    assert_eq!(status.code(), Some(130));
    let rest = CHILD_OUTPUT.lock().unwrap().take().unwrap().join().unwrap();
    assert!(!rest.iter().any(|l| l == "run returned"));
}

mod deadline {
    use super::*;

    pub static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();

    /// Never finishes its first item.
    #[handle(source = futures::stream::iter([1u8]))]
    async fn stuck(_n: u8) {
        STARTED.notify_one();
        std::future::pending::<()>().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_shutdown_that_takes_too_long_is_cut_short_and_says_so() {
        let app = slipstream_tests::app(module_path!())
            .shutdown_timeout(std::time::Duration::from_millis(300));
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        STARTED.notified().await;
        handle.shutdown();
        let error = slipstream_tests::within(10, run)
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            matches!(error, slipstream::Error::ShutdownTimeout { left: 0, .. }),
            "{error}"
        );
        assert!(error.to_string().contains("300ms"), "{error}");
    }
}
