//! Replicated caches (`Cache::replicate`) on a broker: every replica of a topic holds all of it
//! (deletions applied), follows what arrives, and a reopened one reads only what it lacks; and
//! the temporal-join recipe runs as two instances (child processes of this test binary in one
//! group) that each join with every weather report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;
use std::time::Duration;

use futures::StreamExt;
use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use slipstream::prelude::*;
use slipstream::{Cache, Message, Topic};

use crate::broker::{child, create, read_all, servers, topic, unique, until_committed};

/// Produces `(key, value)` records to `name` (`None`: a tombstone).
async fn produce(name: &str, records: &[(String, Option<String>)]) {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", servers())
        .create()
        .unwrap();
    let sends = records.iter().map(|(key, value)| {
        let mut record = FutureRecord::to(name).key(key);
        if let Some(value) = value {
            record = record.payload(value);
        }
        producer.send(record, Duration::from_secs(30))
    });
    for sent in futures::future::join_all(sends).await {
        sent.expect("a record produced");
    }
}

fn record(key: &str, value: Option<&str>) -> (String, Option<String>) {
    (key.to_owned(), value.map(str::to_owned))
}

/// A fresh directory, removed when dropped.
struct Dir(PathBuf);

impl Dir {
    fn new(name: &str) -> Dir {
        Dir(std::env::temp_dir().join(unique(name)))
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_holds_the_whole_topic() {
    let name = unique("reference");
    create(&name, 3).await;
    let mut records: Vec<_> = (0..30)
        .map(|i| record(&format!("k{i:02}"), Some(&format!("v{i}"))))
        .collect();
    records.push(record("k00", None));
    produce(&name, &records).await;

    let source: &'static Topic = Box::leak(Box::new(topic(&name, "replicas")));
    let dir = Dir::new("replicas");
    let open = move |instance: &str| -> Cache<String, String> {
        Cache::open(dir.0.join(instance)).unwrap().replicate(source)
    };
    let (a, b) = (open("a"), open("b"));
    let expected: Vec<(String, String)> = (1..30)
        .map(|i| (format!("k{i:02}"), format!("v{i}")))
        .collect();
    // Reads wait for the replica to catch up with the topic.
    for replica in [&a, &b] {
        let items: Vec<(String, String)> = replica.items().collect::<Result<_, _>>().unwrap();
        assert_eq!(items, expected, "a replica holds every partition");
    }
    assert_eq!(a.replicated_records(), 31);

    // What arrives later reaches every replica (published to its updates readers).
    let mut updates = Box::pin(a.updates());
    produce(&name, &[record("k30", Some("v30"))]).await;
    let update = tokio::time::timeout(Duration::from_secs(30), updates.next()).await;
    assert_eq!(update.unwrap(), Some(("k30".to_owned(), "v30".to_owned())));
    assert_eq!(a.get("k30").unwrap().as_deref(), Some("v30"));

    // Reopened with its directory, a replica reads only what it lacks.
    slipstream_tests::until(30, || b.replicated_records() == 32).await;
    drop(b);
    produce(&name, &[record("k31", Some("v31")), record("k01", None)]).await;
    let b = open("b");
    assert_eq!(b.get("k31").unwrap().as_deref(), Some("v31"));
    assert_eq!(b.get("k01").unwrap(), None);
    assert_eq!(b.get("k30").unwrap().as_deref(), Some("v30"));
    assert_eq!(b.replicated_records(), 2, "the records since it was closed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_of_a_missing_topic_fails_its_reads() {
    let name = unique("missing");
    let source: &'static Topic = Box::leak(Box::new(
        topic(&name, "replicas").conf([("allow.auto.create.topics", "false")]),
    ));
    let dir = Dir::new("missing");
    let replica: Cache<String, String> = Cache::open(&dir.0).unwrap().replicate(source);
    let read = tokio::task::spawn_blocking(move || replica.get("anything"))
        .await
        .unwrap();
    match read {
        Err(error) => assert!(error.to_string().contains("does not exist"), "{error}"),
        Ok(found) => panic!("a replica of a missing topic read {found:?}"),
    }
}

// The temporal-join recipe as an instance: weather reports (keyed by their time, "08:00") in a
// replica every instance holds whole; activities (keyed by name, valued by their time) read in
// a group; each joined activity written to the output.

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

static WEATHER: LazyLock<Topic> = LazyLock::new(|| topic(&env("JOIN_WEATHER"), "weather"));
static REPORTS: LazyLock<Cache<String, String>> = LazyLock::new(|| {
    Cache::open(Path::new(&env("JOIN_DIR")).join("weather"))
        .expect("the cache opens")
        .replicate(&WEATHER)
});
static ACTIVITIES: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("JOIN_ACTIVITIES"), &env("JOIN_GROUP")));
static JOINED: LazyLock<Topic> = LazyLock::new(|| topic(&env("JOIN_OUTPUT"), "writer"));

#[handle(source = ACTIVITIES, sink = [JOINED])]
fn join(msg: Message<String, String>) -> Result<(String, String), slipstream::Error> {
    let sky = match REPORTS.values().from_key(&msg.value).backwards().next() {
        Some(sky) => sky?,
        None => "unknown".to_owned(),
    };
    Ok((msg.key.unwrap_or_default(), sky))
}

/// An instance, when this binary runs as the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_joiner() {
    crate::broker::run_as_child("JOIN_WEATHER", module_path!()).await;
}

fn time(minutes: usize) -> String {
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_temporal_join_runs_as_two_instances() {
    const ACTIVITIES: usize = 600;
    let (weather, activities, output, group) = (
        unique("join-weather"),
        unique("join-activities"),
        unique("join-output"),
        unique("join"),
    );
    create(&weather, 3).await;
    create(&activities, 6).await;
    create(&output, 6).await;
    // A report every ten minutes, spread over the weather topic's partitions by key.
    let reports: Vec<_> = (0..144)
        .map(|i| record(&time(i * 10), Some(&format!("sky{i}"))))
        .collect();
    produce(&weather, &reports).await;
    let root = Dir::new("join");
    let start = |name: &str| {
        Instance(child(
            "replica::child_joiner",
            &[
                ("JOIN_WEATHER", weather.clone()),
                ("JOIN_ACTIVITIES", activities.clone()),
                ("JOIN_OUTPUT", output.clone()),
                ("JOIN_GROUP", group.clone()),
                ("JOIN_DIR", root.0.join(name).display().to_string()),
            ],
        ))
    };
    let instances = [start("a"), start("b")];
    // Activity `i` happens at minute `i * 7 % 1440`, after the ten-minute report before it.
    let events: Vec<_> = (0..ACTIVITIES)
        .map(|i| record(&format!("a{i}"), Some(&time(i * 7 % 1440))))
        .collect();
    produce(&activities, &events).await;

    let expected: HashMap<String, String> = (0..ACTIVITIES)
        .map(|i| (format!("a{i}"), format!("sky{}", i * 7 % 1440 / 10)))
        .collect();
    until_committed(&activities, &group, 6, ACTIVITIES as i64, 120).await;
    drop(instances);
    let joined: HashMap<String, String> = read_all::<String, String>(&output)
        .await
        .into_iter()
        .map(|m| (m.key.unwrap_or_default(), m.value))
        .collect();
    assert_eq!(joined, expected);
}

/// A child process, killed when dropped.
struct Instance(std::process::Child);

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
