//! State that follows its partitions (`Cache::follow`): instances of one application, each a
//! child process of this test binary with its own cache directory, count keyed events over a
//! 6-partition topic in one consumer group and write each new count to an output topic. Whatever
//! instances come and go, the counts must be those of one instance reading everything. Each
//! instance's cache directory has a name of its own (`a`, `b`, …): the changelog they share is
//! named from the code, not from it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Child;
use std::sync::LazyLock;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use slipstream::prelude::*;
use slipstream::{Cache, Message, Topic};
use slipstream_tests::until_or;

use crate::broker::{
    CommitSampler, child, child_reporting, create, is_real, read_all, servers, topic, unique,
};
use crate::cluster::free_port;

const PARTITIONS: i32 = 6;
const KEYS: usize = 600;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

static INPUT: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("STATE_TEST_INPUT"), &env("STATE_TEST_GROUP")));
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| topic(&env("STATE_TEST_OUTPUT"), "writer"));
static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    let cache = Cache::open(env("STATE_TEST_DIR")).expect("the cache opens");
    match std::env::var("STATE_TEST_CHANGELOG") {
        Ok(changelog) => cache.follow_with_changelog(&INPUT, changelog),
        Err(_) => cache.follow(&INPUT),
    }
});

/// Counts each key, and writes the new count to the output.
#[handle(source = INPUT, sink = [OUTPUT])]
fn count(msg: Message<String, String>) -> Result<(String, String), slipstream::Error> {
    let key = msg.key.unwrap_or_default();
    let count = COUNTS.get(&key)?.unwrap_or(0) + 1;
    COUNTS.put(&key, &count)?;
    Ok((key, count.to_string()))
}

/// An instance, when this binary runs as the child (stopped with SIGTERM or SIGKILL).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_counter() {
    crate::broker::run_as_child("STATE_TEST_INPUT", module_path!()).await;
}

/// One run of the application: its topics, group and the instances started.
struct Group {
    input: String,
    output: String,
    group: String,
    root: PathBuf,
    /// Asks the group's committed offsets.
    offsets: std::sync::OnceLock<BaseConsumer>,
}

/// A running instance and its admin server.
struct Instance {
    child: Child,
    admin: std::net::SocketAddr,
}

impl Group {
    async fn new(name: &str) -> Group {
        let group = Group {
            input: unique(&format!("{name}-in")),
            output: unique(&format!("{name}-out")),
            group: unique(name),
            root: std::env::temp_dir().join(unique(name)),
            offsets: std::sync::OnceLock::new(),
        };
        create(&group.input, PARTITIONS).await;
        create(&group.output, PARTITIONS).await;
        if !is_real() {
            // The mock cluster does not take the admin API: the changelog is created here, as
            // the application would create it.
            create(&group.changelog(), PARTITIONS).await;
        }
        group
    }

    /// The changelog the instances share, as slipstream names it.
    fn changelog(&self) -> String {
        format!("{}-{}-changelog", self.group, self.input)
    }

    /// The settings of an instance whose cache is the directory `dir` (under the run's
    /// directory) and whose admin server listens on `port`.
    fn envs(&self, dir: &str, port: u16) -> Vec<(&'static str, String)> {
        vec![
            ("STATE_TEST_INPUT", self.input.clone()),
            ("STATE_TEST_OUTPUT", self.output.clone()),
            ("STATE_TEST_GROUP", self.group.clone()),
            ("STATE_TEST_DIR", self.root.join(dir).display().to_string()),
            ("SLIPSTREAM_HTTP_ADDR", format!("127.0.0.1:{port}")),
        ]
    }

    /// Starts an instance whose cache is the directory `dir` (under the run's directory).
    fn start(&self, dir: &str) -> Instance {
        let port = free_port();
        Instance {
            child: child("state::child_counter", &self.envs(dir, port)),
            admin: ([127, 0, 0, 1], port).into(),
        }
    }

    /// Produces events `range` (event `i` has key `k{i % KEYS}`).
    async fn produce(&self, range: std::ops::Range<usize>) {
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", servers())
            .create()
            .unwrap();
        let keys: Vec<String> = range.clone().map(|i| format!("k{}", i % KEYS)).collect();
        for chunk in keys.chunks(5_000) {
            let sends = chunk.iter().map(|key| {
                let record = FutureRecord::to(&self.input).key(key).payload("event");
                producer.send(record, Duration::from_secs(30))
            });
            for sent in futures::future::join_all(sends).await {
                sent.expect("an event produced");
            }
        }
    }

    /// How many input events the group has committed.
    fn committed(&self) -> i64 {
        let consumer = self.offsets.get_or_init(|| {
            ClientConfig::new()
                .set("bootstrap.servers", servers())
                .set("group.id", &self.group)
                .create()
                .unwrap()
        });
        let mut list = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            list.add_partition(&self.input, partition);
        }
        let Ok(committed) = consumer.committed_offsets(list, Duration::from_secs(5)) else {
            return 0;
        };
        committed
            .elements()
            .iter()
            .map(|e| match e.offset() {
                Offset::Offset(offset) => offset,
                _ => 0,
            })
            .sum()
    }

    /// Waits until the group has committed `events` events.
    async fn until_committed(&self, events: usize, secs: u64) {
        let events = events as i64;
        let committed = std::cell::Cell::new(0);
        until_or(
            secs,
            || {
                committed.set(self.committed());
                committed.get() >= events
            },
            || format!("{} of {events} events committed", committed.get()),
        )
        .await;
    }

    /// The counts written to the output for each key, in the order written.
    async fn outputs(&self) -> HashMap<String, Vec<u64>> {
        let mut outputs: HashMap<String, Vec<u64>> = HashMap::new();
        for message in read_all::<String, String>(&self.output).await {
            let count: u64 = message.value.parse().unwrap();
            outputs
                .entry(message.key.unwrap_or_default())
                .or_default()
                .push(count);
        }
        outputs
    }

    /// The highest count written to the output for each key.
    async fn counts(&self) -> HashMap<String, u64> {
        let mut counts: HashMap<String, u64> = HashMap::new();
        for message in read_all::<String, String>(&self.output).await {
            let count: u64 = message.value.parse().unwrap();
            let best = counts.entry(message.key.unwrap_or_default()).or_default();
            *best = (*best).max(count);
        }
        counts
    }
}

impl Group {
    /// Every key's count as a replica of the counting cache's changelog holds it (what each
    /// instance would see with a cache replicating the counts).
    async fn replicated(&self) -> HashMap<String, u64> {
        let input: &'static Topic = Box::leak(Box::new(topic(&self.input, &self.group)));
        // The counting cache as the instances declare it (following the same topic in the same group):
        // its changelog is theirs.
        let counts: &'static Cache<String, u64> = Box::leak(Box::new(
            Cache::open(self.root.join("parent").join("counts"))
                .unwrap()
                .follow(input),
        ));
        let dir = self.root.join("replica");
        tokio::task::spawn_blocking(move || {
            let replica = Cache::<String, u64>::open(dir).unwrap().replicate(counts);
            replica
                .items()
                .collect::<Result<HashMap<_, _>, _>>()
                .unwrap()
        })
        .await
        .unwrap()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

impl Instance {
    /// Stops it with SIGTERM (a graceful shutdown) and waits until it has exited (a minute at
    /// most: a shutdown that hangs fails the test).
    fn stop(mut self) {
        crate::broker::terminate(&mut self.child);
    }

    /// Kills it with SIGKILL.
    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// The changelog records it has restored so far, per its `/metrics`.
    async fn restored(&self) -> u64 {
        let reply = slipstream_tests::get(self.admin, "/metrics").await;
        reply
            .body
            .lines()
            .filter(|l| l.starts_with("slipstream_restore_records_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .sum()
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The count of each key after events `0..events`.
fn truth(events: usize) -> HashMap<String, u64> {
    let mut counts = HashMap::new();
    for i in 0..events {
        *counts.entry(format!("k{}", i % KEYS)).or_default() += 1;
    }
    counts
}

/// Two instances, a third added midway, one stopped: the counts are exact.
///
/// On the mock cluster they may be higher: it refuses the commit an instance makes as its
/// partitions are revoked ("Group rebalance in progress", where Kafka and the suite's real
/// broker take it), so the next owner handles again what was handled since the last commit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_come_and_go_and_the_counts_are_exact() {
    const EVENTS: usize = 60_000;
    let group = Group::new("state-scale").await;
    group.produce(0..EVENTS / 2).await;
    let a = group.start("a");
    let b = group.start("b");
    group.until_committed(EVENTS / 8, 120).await;
    let c = group.start("c");
    group.produce(EVENTS / 2..EVENTS).await;
    group.until_committed(EVENTS * 5 / 8, 120).await;
    tokio::task::spawn_blocking(move || a.stop()).await.unwrap();
    group.until_committed(EVENTS, 120).await;
    tokio::task::spawn_blocking(move || {
        b.stop();
        c.stop();
    })
    .await
    .unwrap();
    let counts = group.counts().await;
    if is_real() {
        assert_eq!(counts, truth(EVENTS));
    } else {
        at_least(&counts, truth(EVENTS));
    }
    assert_eq!(
        group.replicated().await,
        counts,
        "a replica of the changelog holds the final counts"
    );
}

/// Every key counted, none below the truth.
fn at_least(counts: &HashMap<String, u64>, truth: HashMap<String, u64>) {
    assert_eq!(counts.len(), truth.len());
    for (key, expected) in truth {
        let counted = counts[&key];
        assert!(
            counted >= expected,
            "{key}: counted {counted} of {expected}"
        );
    }
}

/// Three instances added one by one, then stopped one by one with SIGTERM, while events
/// arrive: each key's outputs are exactly 1, 2, …, n. A graceful handover finishes the
/// partition's messages, commits them and releases its state before the new owner restores it;
/// were a partition read by two instances at once, or from an older position, a count would
/// repeat.
///
/// On the mock cluster (which refuses the commit made as partitions are revoked) a count may
/// repeat, and none may be missing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_added_and_stopped_while_events_arrive_output_each_count_once() {
    const STEP: usize = 8_000;
    let group = Group::new("state-handover").await;
    let sampler = CommitSampler::start(&servers(), &group.input, &group.group, PARTITIONS);
    group.produce(0..STEP).await;
    let a = group.start("a");
    group.until_committed(STEP / 2, 120).await;
    let b = group.start("b");
    group.produce(STEP..2 * STEP).await;
    group.until_committed(STEP * 3 / 2, 120).await;
    let c = group.start("c");
    group.produce(2 * STEP..3 * STEP).await;
    group.until_committed(STEP * 5 / 2, 120).await;
    let stopped = tokio::task::spawn_blocking(move || a.stop());
    group.produce(3 * STEP..4 * STEP).await;
    stopped.await.unwrap();
    group.until_committed(STEP * 7 / 2, 120).await;
    let stopped = tokio::task::spawn_blocking(move || b.stop());
    group.produce(4 * STEP..5 * STEP).await;
    stopped.await.unwrap();
    group.until_committed(5 * STEP, 120).await;
    tokio::task::spawn_blocking(move || c.stop()).await.unwrap();
    // On the mock cluster too: a refused commit is kept, never sent over a later one.
    sampler.check();

    let outputs = group.outputs().await;
    let truth = truth(5 * STEP);
    assert_eq!(outputs.len(), truth.len(), "every key was output");
    for (key, counts) in &outputs {
        let n = truth[key];
        if is_real() {
            let expected: Vec<u64> = (1..=n).collect();
            assert_eq!(counts, &expected, "the outputs of {key}");
        } else {
            // Handled again after a refused commit: counts may run past n, none is skipped.
            let distinct: std::collections::BTreeSet<u64> = counts.iter().copied().collect();
            let highest = *distinct.last().unwrap();
            assert!(highest >= n, "{key}: counted {highest} of {n}");
            assert_eq!(distinct, (1..=highest).collect(), "the outputs of {key}");
        }
    }
}

/// The application's changelog renamed after the group has committed positions: the new
/// changelog is missing, and the instance stops as the cache opens, naming it and the topic
/// (the state would restart from nothing without a word). With `state.fresh` the instance
/// starts from empty state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changelog_missing_where_the_group_has_committed_fails_the_start() {
    const EVENTS: usize = 1_200;
    let group = Group::new("state-renamed").await;
    group.produce(0..EVENTS).await;
    let first = group.start("a");
    group.until_committed(EVENTS, 120).await;
    tokio::task::spawn_blocking(move || first.stop())
        .await
        .unwrap();

    // More events: the first one the handler takes opens the cache (and checks its changelog).
    group.produce(EVENTS..EVENTS + KEYS).await;
    let renamed = unique("renamed-changelog");
    let mut envs = group.envs("a", free_port());
    envs.push(("STATE_TEST_CHANGELOG", renamed.clone()));
    let refused = child_reporting("state::child_counter", &envs);
    let (status, stderr) = crate::broker::exit_within(refused, 120).await;
    assert!(!status.success(), "the instance started");
    assert!(
        stderr.contains(&format!("the changelog of the cache `a` does not exist, but the group `{}` has already committed `{}` past its start", group.group, group.input))
            && stderr.contains(&renamed),
        "it stopped for another reason: {stderr}"
    );

    if !is_real() {
        create(&renamed, PARTITIONS).await;
    }
    envs.push(("SLIPSTREAM_STATE_FRESH", "true".to_owned()));
    let fresh = Instance {
        child: child("state::child_counter", &envs),
        admin: ([127, 0, 0, 1], free_port()).into(),
    };
    group.until_committed(EVENTS + KEYS, 120).await;
    tokio::task::spawn_blocking(move || fresh.stop())
        .await
        .unwrap();
    // Each key once more, counted from empty state.
    let outputs = group.outputs().await;
    for (key, counts) in outputs {
        assert_eq!(
            counts.last(),
            Some(&1),
            "{key} counted from empty state: {counts:?}"
        );
    }
}

/// One instance killed midway: its partitions go to the other, which restores their state
/// from the changelog; nothing is lost (at-least-once: a count may be higher).
///
/// (tansu 0.6, the optional second broker, never evicts a member that died: there its
/// partitions wait for it forever and this test fails.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_midway_loses_no_count() {
    const EVENTS: usize = 60_000;
    let group = Group::new("state-kill").await;
    group.produce(0..EVENTS).await;
    let a = group.start("a");
    let b = group.start("b");
    group.until_committed(EVENTS / 3, 120).await;
    tokio::task::spawn_blocking(move || a.kill()).await.unwrap();
    group.until_committed(EVENTS, 120).await;
    tokio::task::spawn_blocking(move || b.stop()).await.unwrap();
    at_least(&group.counts().await, truth(EVENTS));
}

/// A restarted instance with its directory restores (almost) nothing; one with an empty
/// directory restores everything; both count on from the same state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_restores_only_what_its_directory_lacks() {
    const EVENTS: usize = 12_000;
    let group = Group::new("state-restart").await;
    group.produce(0..EVENTS).await;
    let first = group.start("kept");
    group.until_committed(EVENTS, 120).await;
    tokio::task::spawn_blocking(move || first.stop())
        .await
        .unwrap();

    // The same directory: nothing to restore.
    let again = group.start("kept");
    group.produce(EVENTS..EVENTS + KEYS).await;
    group.until_committed(EVENTS + KEYS, 120).await;
    let restored = again.restored().await;
    assert!(
        restored <= (KEYS / 10) as u64,
        "a restart with its directory restored {restored} records"
    );
    tokio::task::spawn_blocking(move || again.stop())
        .await
        .unwrap();

    // An empty directory: the whole changelog (one record per event so far).
    let fresh = group.start("empty");
    group.produce(EVENTS + KEYS..EVENTS + 2 * KEYS).await;
    group.until_committed(EVENTS + 2 * KEYS, 120).await;
    let restored = fresh.restored().await;
    assert!(
        restored >= KEYS as u64,
        "a fresh instance restored only {restored} records"
    );
    tokio::task::spawn_blocking(move || fresh.stop())
        .await
        .unwrap();
    assert_eq!(group.counts().await, truth(EVENTS + 2 * KEYS));
}
