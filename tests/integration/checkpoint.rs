//! `Checkpoint` and `Dependency`: the original's documented scenario and variants of it.

use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use futures::stream::{self, StreamExt};
use slipstream::prelude::*;
use slipstream::{Checkpoint, Dependency, PauseHandle};
use slipstream_tests::{Collected, app, until, within};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, h, m, 0).unwrap()
}

#[tokio::test]
async fn the_documented_scenario() {
    let (dependent, dependency) = (PauseHandle::new(), PauseHandle::new());
    let c = Checkpoint::new(
        "dependent",
        &dependent,
        [Dependency::new("dependency", &dependency)],
    );

    // The first pulse gives the dependency a checkpoint: the dependent's state and marker.
    assert_eq!(
        c.check_pulse(at(10, 0), [("offset", 8)]).await.unwrap(),
        None
    );
    let d = c.dependency("dependency").unwrap();
    assert_eq!(d.checkpoint_marker, Some(at(10, 0)));
    assert_eq!(d.checkpoint_state.unwrap()["offset"], 8);

    let beat = c.heartbeat(at(10, 30)).await.unwrap();
    assert!(!beat.is_late);
    assert_eq!(beat.dependent_marker, Some(at(10, 0)));
    assert_eq!(beat.dependency_marker, Some(at(10, 30)));

    // 30 minutes without a heartbeat: more than the default 10 minutes.
    let downtime = c.check_pulse(at(11, 0), [("offset", 9)]).await.unwrap();
    assert_eq!(downtime, Some(TimeDelta::minutes(30)));
    assert!(dependent.is_paused());
    assert!(c.dependency("dependency").unwrap().is_down);

    // Catching up: still late until past the dependent's marker.
    assert!(c.heartbeat(at(10, 45)).await.unwrap().is_late);
    assert!(dependent.is_paused());
    let beat = c.heartbeat(at(11, 1)).await.unwrap();
    assert!(!beat.is_late);
    assert_eq!(beat.dependent_marker, Some(at(11, 0)));
    assert!(!dependent.is_paused());
    assert_eq!(c.view().state["offset"], 9);
}

#[tokio::test]
async fn other_times_and_thresholds() {
    let dependent = PauseHandle::new();
    let c = Checkpoint::new(
        "lenient",
        &dependent,
        [Dependency::new("weather", &PauseHandle::new())
            .downtime_threshold(TimeDelta::minutes(45))],
    );
    c.check_pulse(at(8, 0), [("offset", 1)]).await.unwrap();
    c.heartbeat(at(8, 5)).await.unwrap();
    assert_eq!(
        c.check_pulse(at(8, 50), [("offset", 2)]).await.unwrap(),
        None,
        "45 minutes is not more than 45"
    );
    assert_eq!(
        c.check_pulse(at(8, 51), [("offset", 3)]).await.unwrap(),
        Some(TimeDelta::minutes(46))
    );
    assert!(dependent.is_paused());
    assert!(!c.heartbeat(at(9, 0)).await.unwrap().is_late);
    assert!(!dependent.is_paused());
}

#[tokio::test]
async fn several_dependencies() {
    let dependent = PauseHandle::new();
    let c = Checkpoint::new(
        "both",
        &dependent,
        [
            Dependency::new("weather", &PauseHandle::new()),
            Dependency::new("traffic", &PauseHandle::new()),
        ],
    );
    let missing = c.heartbeat(at(10, 0)).await.unwrap_err();
    assert!(missing.to_string().contains("name the one"), "{missing}");
    let unknown = c.heartbeat_for("tides", at(10, 0)).await.unwrap_err();
    assert!(
        unknown.to_string().contains("no dependency `tides`"),
        "{unknown}"
    );

    c.check_pulse(at(10, 0), [("offset", 0)]).await.unwrap();
    c.heartbeat_for("weather", at(10, 5)).await.unwrap();
    // Both stall.
    assert_eq!(
        c.check_pulse(at(10, 30), [("offset", 5)]).await.unwrap(),
        Some(TimeDelta::minutes(30))
    );
    assert!(dependent.is_paused());
    // One recovers; the dependent stays paused until both have.
    assert!(
        !c.heartbeat_for("weather", at(10, 31))
            .await
            .unwrap()
            .is_late
    );
    assert!(dependent.is_paused());
    assert!(
        !c.heartbeat_for("traffic", at(10, 32))
            .await
            .unwrap()
            .is_late
    );
    assert!(!dependent.is_paused());
}

#[tokio::test]
async fn custom_checks_for_other_markers_and_a_clear_error_without_them() {
    // Sequence numbers: down when more than 100 behind; recovered when level.
    let dependent = PauseHandle::new();
    let dependency = Dependency::<i64>::new("sequence", &PauseHandle::new())
        .downtime_check(
            |c: slipstream::CheckpointView<i64>, d: slipstream::DependencyView<i64>| {
                let lag = c.state_marker.unwrap() - d.checkpoint_marker.unwrap();
                (lag > 100).then(|| TimeDelta::seconds(lag))
            },
        )
        .recovery_check(
            |c: slipstream::CheckpointView<i64>, d: slipstream::DependencyView<i64>| async move {
                d.checkpoint_marker >= c.state_marker
            },
        );
    let c = Checkpoint::new("sequences", &dependent, [dependency]);
    c.check_pulse(0, [("offset", 0)]).await.unwrap();
    assert_eq!(
        c.check_pulse(150, [("offset", 1)]).await.unwrap(),
        Some(TimeDelta::seconds(150))
    );
    assert!(c.heartbeat(149).await.unwrap().is_late);
    assert!(!c.heartbeat(150).await.unwrap().is_late);
    assert!(!dependent.is_paused());

    let plain = Checkpoint::new(
        "plain",
        &PauseHandle::new(),
        [Dependency::<i64>::new("d", &PauseHandle::new())],
    );
    let error = plain.check_pulse(1, [("offset", 0)]).await.unwrap_err();
    assert!(
        error.to_string().contains("custom downtime_check"),
        "{error}"
    );
}

#[tokio::test]
async fn sync_and_async_callbacks() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let (down_log, up_log) = (Arc::clone(&log), Arc::clone(&log));
    let dependent = PauseHandle::new();
    let c = Checkpoint::builder(
        "callbacks",
        &dependent,
        [Dependency::new("weather", &PauseHandle::new())],
    )
    .on_downtime(
        move |c: slipstream::CheckpointView<DateTime<Utc>>,
              d: slipstream::DependencyView<DateTime<Utc>>| {
            down_log
                .lock()
                .unwrap()
                .push(format!("down {} at {:?}", d.name, c.state["offset"]));
        },
    )
    .on_recovery(
        move |c: slipstream::CheckpointView<DateTime<Utc>>,
              d: slipstream::DependencyView<DateTime<Utc>>| {
            let log = Arc::clone(&up_log);
            async move {
                tokio::task::yield_now().await;
                log.lock().unwrap().push(format!(
                    "up {} seek to {:?}",
                    d.name,
                    d.checkpoint_state.unwrap()["offset"]
                ));
                let _ = c;
            }
        },
    )
    .build()
    .unwrap();
    c.check_pulse(at(10, 0), [("offset", 8)]).await.unwrap();
    c.check_pulse(at(11, 0), [("offset", 9)]).await.unwrap();
    c.heartbeat(at(11, 1)).await.unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        ["down weather at Number(9)", "up weather seek to Number(9)"]
    );
}

mod persistence {
    use super::*;
    use slipstream::Cache;

    static DIR: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
        std::env::temp_dir().join(format!("slipstream-test-checkpoint-{}", std::process::id()))
    });
    static STATE: LazyLock<Cache<String, serde_json::Value>> =
        LazyLock::new(|| Cache::open(&*DIR).unwrap());

    fn checkpoint() -> Checkpoint {
        Checkpoint::builder(
            "orders",
            &PauseHandle::new(),
            [Dependency::new("prices", &PauseHandle::new())],
        )
        .cache(&STATE)
        .build()
        .unwrap()
    }

    #[tokio::test]
    async fn the_state_is_reloaded_after_a_restart() {
        let first = checkpoint();
        first.check_pulse(at(9, 0), [("offset", 41)]).await.unwrap();
        first.heartbeat(at(9, 5)).await.unwrap();
        drop(first);

        let restarted = checkpoint();
        assert_eq!(restarted.view().state_marker, Some(at(9, 0)));
        assert_eq!(restarted.view().state["offset"], 41);
        let prices = restarted.dependency("prices").unwrap();
        assert_eq!(prices.checkpoint_marker, Some(at(9, 5)));
        // And it goes on from there: 30 minutes after the last heartbeat is downtime.
        assert_eq!(
            restarted
                .check_pulse(at(9, 35), [("offset", 42)])
                .await
                .unwrap(),
            Some(TimeDelta::minutes(30))
        );
        let _ = std::fs::remove_dir_all(&*DIR);
    }
}

mod paused_source {
    use super::*;

    static NUMBERS: LazyLock<Shared<u64>> = LazyLock::new(|| {
        Shared::new(stream::iter(0u64..).then(|n| async move {
            tokio::time::sleep(Duration::from_millis(1)).await;
            n
        }))
    });
    pub static OUT: Collected<u64> = Collected::new();

    #[handle(source = NUMBERS, sink = [|n: u64| OUT.push(n)])]
    fn numbers(n: u64) -> u64 {
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_paused_dependent_stream_really_stops_and_loses_nothing() {
        let c = Checkpoint::new(
            "numbers",
            &*NUMBERS,
            [Dependency::new("clock", &PauseHandle::new())],
        );
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        until(10, || OUT.len() >= 10).await;

        c.check_pulse(at(10, 0), [("offset", OUT.len())])
            .await
            .unwrap();
        c.check_pulse(at(10, 20), [("offset", OUT.len())])
            .await
            .unwrap();
        assert!(NUMBERS.is_paused());
        tokio::time::sleep(Duration::from_millis(30)).await;
        let paused_at = OUT.len();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            OUT.len(),
            paused_at,
            "nothing arrives while the dependency is down"
        );

        c.heartbeat(at(10, 21)).await.unwrap();
        assert!(!NUMBERS.is_paused());
        until(10, || OUT.len() >= paused_at + 10).await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        let out = OUT.get();
        assert_eq!(out, (0..out.len() as u64).collect::<Vec<_>>());
    }
}
