//! The synchronization recipe as two instances (child processes of this test binary in one
//! group): weather reports in a replica every instance holds whole, a heartbeat per report, and
//! activities joined with the weather and checked by a `Checkpoint` whose state follows the
//! activity topic's partitions. Each instance joins its first late activity with stale weather,
//! pauses; when the weather catches up it resumes and seeks each stalled partition back to the
//! offset recorded in that partition's checkpoint, so every stale line is corrected.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use futures::stream::{self, Stream, StreamExt};
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::Value;
use slipstream::prelude::*;
use slipstream::{
    Cache, Checkpoint, CheckpointView, Dependency, DependencyView, Message, PauseHandle, Topic,
};

use crate::broker::{child, create, read_all, run_as_child, servers, topic, unique};
use crate::cluster::free_port;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

fn dir(name: &str) -> std::path::PathBuf {
    Path::new(&env("SYNC_DIR")).join(name)
}

/// An "HH:MM" time of the day of the recipe.
fn at(time: &str) -> DateTime<Utc> {
    let time = NaiveTime::parse_from_str(time, "%H:%M").expect("a time");
    chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
        .expect("a date")
        .and_time(time)
        .and_utc()
}

static WEATHER: LazyLock<Topic> = LazyLock::new(|| topic(&env("SYNC_WEATHER"), "weather"));
static REPORTS: LazyLock<Cache<String, String>> = LazyLock::new(|| {
    Cache::open(dir("weather"))
        .expect("the cache opens")
        .replicate(&WEATHER)
});
static ACTIVITIES: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("SYNC_ACTIVITIES"), &env("SYNC_GROUP")));
static JOINED: LazyLock<Topic> = LazyLock::new(|| topic(&env("SYNC_OUTPUT"), "writer"));
static STATE: LazyLock<Cache<String, Value>> = LazyLock::new(|| {
    Cache::open(dir("checkpoint"))
        .expect("the cache opens")
        .follow(&ACTIVITIES)
});
static CHECKPOINT: LazyLock<Checkpoint> = LazyLock::new(|| {
    let weather =
        Dependency::new("weather", &PauseHandle::new()).downtime_threshold(TimeDelta::hours(1));
    Checkpoint::builder("activities", &*ACTIVITIES, [weather])
        .on_recovery(
            |c: CheckpointView<DateTime<Utc>>, d: DependencyView<DateTime<Utc>>| {
                let offset = d
                    .checkpoint_state
                    .and_then(|s| s.get("offset").and_then(Value::as_i64))
                    .unwrap_or(0);
                let partition = c.partition.expect("a checkpoint per partition");
                ACTIVITIES.seek(partition, offset)
            },
        )
        .cache(&STATE)
        .build()
        .expect("a checkpoint")
});

/// The latest report the replica holds, then each one it stores.
fn reports() -> impl Stream<Item = String> {
    // Listening first, then reading: no report falls between the two.
    let updates = REPORTS.updates().map(|(time, _)| time);
    let latest = stream::once(async { REPORTS.keys().backwards().next() })
        .filter_map(|latest| async move { latest.and_then(Result::ok) });
    latest.chain(updates)
}

static LAST: Mutex<Option<String>> = Mutex::new(None);

/// A heartbeat per report, moving forward only.
#[handle(source = reports())]
async fn beat(time: String) -> Result<(), slipstream::Error> {
    {
        let mut last = LAST.lock().unwrap();
        if last.as_ref().is_some_and(|last| *last >= time) {
            return Ok(());
        }
        *last = Some(time.clone());
    }
    CHECKPOINT.heartbeat(at(&time)).await?;
    Ok(())
}

/// Joins an activity with the latest report before it, then checks the pulse.
#[handle(source = ACTIVITIES, sink = [JOINED])]
async fn join(msg: Message<String, String>) -> Result<(String, String), slipstream::Error> {
    let sky = match REPORTS.values().from_key(&msg.value).backwards().next() {
        Some(sky) => sky?,
        None => "unknown".to_owned(),
    };
    CHECKPOINT
        .check_pulse(at(&msg.value), [("offset", msg.offset)])
        .await?;
    Ok((msg.key.unwrap_or_default(), sky))
}

/// An instance, when this binary runs as the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_synchronized() {
    run_as_child("SYNC_WEATHER", module_path!()).await;
}

/// A child process and its admin server, killed when dropped.
struct Instance {
    child: std::process::Child,
    admin: std::net::SocketAddr,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Instance {
    /// The partitions of `topic` its consumer reports reading, per its `/metrics`.
    async fn assigned(&self, topic: &str) -> BTreeSet<i32> {
        if tokio::net::TcpStream::connect(self.admin).await.is_err() {
            return BTreeSet::new(); // not serving yet
        }
        let reply = slipstream_tests::get(self.admin, "/metrics").await;
        let prefix = format!("slipstream_topic_partition_high_watermark{{topic=\"{topic}\"");
        reply
            .body
            .lines()
            .filter(|line| line.starts_with(&prefix))
            .filter_map(|line| {
                let (_, rest) = line.split_once("partition=\"")?;
                rest.split_once('"')?.0.parse().ok()
            })
            .collect()
    }
}

async fn produce(name: &str, records: &[(Option<i32>, String, String)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", servers())
        .create()
        .unwrap();
    for (partition, key, value) in records {
        let mut record = FutureRecord::to(name).key(key).payload(value);
        if let Some(partition) = partition {
            record = record.partition(*partition);
        }
        producer
            .send(record, Duration::from_secs(30))
            .await
            .expect("a record produced");
    }
}

/// The latest joined line of each activity.
async fn joined(output: &str) -> HashMap<String, String> {
    read_all::<String, String>(output)
        .await
        .into_iter()
        .map(|m| (m.key.unwrap_or_default(), m.value))
        .collect()
}

/// Reads the output until `done` holds of it.
async fn until_joined(
    output: &str,
    what: &str,
    done: impl Fn(&HashMap<String, String>) -> bool,
) -> HashMap<String, String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lines = joined(output).await;
        if done(&lines) {
            return lines;
        }
        assert!(Instant::now() < deadline, "{what}: joined {lines:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_synchronization_recipe_runs_as_two_instances() {
    const PARTITIONS: i32 = 6;
    let (weather, activities, output, group) = (
        unique("sync-weather"),
        unique("sync-activities"),
        unique("sync-output"),
        unique("sync"),
    );
    create(&weather, 1).await;
    create(&activities, PARTITIONS).await;
    create(&output, PARTITIONS).await;
    if !crate::broker::is_real() {
        // The mock cluster does not take the admin API: the changelog is created here.
        create(&format!("{group}-{activities}-changelog"), PARTITIONS).await;
    }
    let report = |time: &str| (None, time.to_owned(), format!("sky {time}"));
    produce(&weather, &[report("08:00")]).await;

    let root = std::env::temp_dir().join(unique("sync"));
    let start = |name: &str| {
        let port = free_port();
        Instance {
            child: child(
                "synchronized::child_synchronized",
                &[
                    ("SYNC_WEATHER", weather.clone()),
                    ("SYNC_ACTIVITIES", activities.clone()),
                    ("SYNC_OUTPUT", output.clone()),
                    ("SYNC_GROUP", group.clone()),
                    ("SYNC_DIR", root.join(name).display().to_string()),
                    ("SLIPSTREAM_HTTP_ADDR", format!("127.0.0.1:{port}")),
                ],
            ),
            admin: ([127, 0, 0, 1], port).into(),
        }
    };
    let instances = [start("a"), start("b")];
    // Both instances in the group, sharing the partitions (no rebalance from here on).
    let deadline = Instant::now() + Duration::from_secs(120);
    let shares = loop {
        let a = instances[0].assigned(&activities).await;
        let b = instances[1].assigned(&activities).await;
        if !a.is_empty() && !b.is_empty() && a.len() + b.len() == PARTITIONS as usize {
            break [a, b];
        }
        assert!(Instant::now() < deadline, "assignments: {a:?} and {b:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // An activity at 09:30 in each partition, while the weather is at 08:00.
    let late: Vec<_> = (0..PARTITIONS)
        .map(|p| (Some(p), format!("late{p}"), "09:30".to_owned()))
        .collect();
    produce(&activities, &late).await;
    // Each instance joins one with the stale weather (and pauses).
    until_joined(&output, "a stale join on each instance", |lines| {
        shares.iter().all(|share| {
            share
                .iter()
                .any(|p| lines.get(&format!("late{p}")).map(String::as_str) == Some("sky 08:00"))
        })
    })
    .await;

    // The weather catches up: the stalled partitions are replayed and their lines corrected.
    produce(
        &weather,
        &[
            report("09:00"),
            report("10:00"),
            report("11:00"),
            report("12:00"),
        ],
    )
    .await;
    let later: Vec<_> = (0..PARTITIONS)
        .map(|p| (Some(p), format!("later{p}"), "11:45".to_owned()))
        .collect();
    produce(&activities, &later).await;
    let lines = until_joined(&output, "every line corrected", |lines| {
        (0..PARTITIONS).all(|p| {
            lines.get(&format!("late{p}")).map(String::as_str) == Some("sky 09:00")
                && lines.get(&format!("later{p}")).map(String::as_str) == Some("sky 11:00")
        })
    })
    .await;
    assert_eq!(lines.len(), 2 * PARTITIONS as usize);
    drop(instances);
    let _ = std::fs::remove_dir_all(root);
}
