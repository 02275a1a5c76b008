//! Broker failover, on a three-node Apache Kafka cluster of the test's own (replication factor
//! 3, `min.insync.replicas=2`): the counting application of `exactly_once` (a topic → handler →
//! topic pipeline whose handler counts keys in a cache that follows the input) runs, as a child
//! process, while the leader of its input's first partition is SIGKILLed and started again,
//! then another node is stopped gracefully and started again, events arriving throughout; the
//! application is not restarted. Then the whole cluster is killed for 20 s and started again:
//! at-least-once rides it out; exactly-once stops (its partitions were taken: it cannot
//! commit what it holds) and is restarted. A `read_committed` reader checks the output:
//! at-least-once loses nothing, exactly-once outputs every event once with exact counts. The
//! admin server's `/health` says the application is fine while one node is down (the others
//! serve it), unhealthy while no broker is reachable, and fine again once they are back.
//!
//! Ignored in the mock-cluster pass; the real-broker pass of `tests/run.sh` runs them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use slipstream_tests::get_until;

use crate::broker::{CommitSampler, Reporting, child_reporting};
use crate::cluster::{Cluster, free_port};
use crate::exactly_once::{App, CHILD, Output, terminate};

const PARTITIONS: i32 = 6;
const STEP: usize = 6_000;
/// How long the whole cluster stays down.
const OUTAGE: Duration = Duration::from_secs(20);

/// The node leading `partition` of `topic`.
fn leader(servers: &str, topic: &str, partition: i32) -> u32 {
    let client: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .expect("the topic's metadata");
    let leader = metadata.topics()[0]
        .partitions()
        .iter()
        .find(|p| p.id() == partition)
        .expect("the partition")
        .leader();
    u32::try_from(leader).expect("a leader")
}

/// Runs a blocking cluster operation off the test's runtime.
async fn on_cluster(work: impl FnOnce() + Send + 'static) {
    tokio::task::spawn_blocking(work).await.unwrap();
}

/// The counting application on `cluster` under `guarantee`, its instances' admin server on
/// `addr`, health (and start-up) grace 5 s, session timeout 20 s, transaction timeout 30 s.
async fn application(cluster: &Cluster, name: &str, guarantee: &str, addr: SocketAddr) -> App {
    let mut app = App::on(&cluster.servers, name, PARTITIONS).await;
    app.extra = vec![
        ("SLIPSTREAM_PROCESSING_GUARANTEE", guarantee.to_owned()),
        ("SLIPSTREAM_HTTP_ADDR", addr.to_string()),
        ("EOS_TEST_GRACE_MS", "5000".to_owned()),
        // Longer than the controller takes to fence a node killed with SIGKILL
        // (`broker.session.timeout.ms`, 9 s), so that losing the group coordinator's node does
        // not cost the instance its partitions (the tests' 6 s would; librdkafka's default is
        // 45 s).
        ("SLIPSTREAM_SESSION_TIMEOUT_MS", "20000".to_owned()),
        // Exactly-once: a commit waits for the records sent to a killed leader's partitions
        // until they have a new leader (10 s, the default, is too short for that).
        ("SLIPSTREAM_TRANSACTION_TIMEOUT_MS", "30000".to_owned()),
    ];
    app
}

/// Waits until `/health` at `addr` answers 200 (the application is fine).
async fn healthy(addr: SocketAddr) {
    get_until(120, addr, "/health", |reply| reply.status == 200).await;
}

/// The leader of the input's first partition SIGKILLed while events arrive, then started
/// again; then another node stopped gracefully while events arrive, and started again.
/// Returns how many events were produced.
async fn one_node_at_a_time(
    cluster: &std::sync::Arc<Cluster>,
    app: &App,
    addr: SocketAddr,
) -> usize {
    let mut output = app.reader();
    app.produce(0..STEP).await;
    output.until(STEP, 180).await;
    healthy(addr).await;

    let killed = leader(&cluster.servers, &app.input, 0);
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.kill(killed)).await;
    app.produce(STEP..2 * STEP).await;
    output.until(2 * STEP, 180).await;
    // Two nodes of three serve the application: it is fine.
    healthy(addr).await;
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.restart(killed)).await;

    let stopped = (1..=3).find(|id| *id != killed).unwrap();
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.stop(stopped)).await;
    app.produce(2 * STEP..3 * STEP).await;
    output.until(3 * STEP, 180).await;
    healthy(addr).await;
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.restart(stopped)).await;
    3 * STEP
}

/// The counting application under a guarantee on a three-node cluster of its own, with one
/// instance started, its committed offsets sampled and its output read.
struct Failover {
    addr: SocketAddr,
    app: App,
    sampler: CommitSampler,
    output: Output,
    /// The instance (taken while it is replaced).
    instance: Option<Reporting>,
    /// How many events were produced.
    events: usize,
    /// Last: fields are dropped in order, and the clients above must close while it runs.
    cluster: std::sync::Arc<Cluster>,
}

impl Failover {
    /// Starts it all, then takes one node at a time down and up again while events arrive.
    async fn through_node_failures(name: &str, guarantee: &str) -> Failover {
        let cluster = std::sync::Arc::new(Cluster::start(name, 3, &[]));
        let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let app = application(&cluster, name, guarantee, addr).await;
        let sampler = app.sampler();
        let mut output = app.reader();
        let instance = child_reporting(CHILD, &app.default_envs("a"));
        let events = one_node_at_a_time(&cluster, &app, addr).await;
        output.until(events, 60).await;
        Failover {
            cluster,
            addr,
            app,
            sampler,
            output,
            instance: Some(instance),
            events,
        }
    }

    /// Kills the whole cluster, runs `while_down`, and starts the cluster again once
    /// [`OUTAGE`] has passed since the kill.
    async fn outage<T>(&self, while_down: impl Future<Output = T>) {
        let down = Instant::now();
        let cluster = self.cluster.clone();
        on_cluster(move || cluster.kill_all()).await;
        while_down.await;
        // The outage itself lasts its time.
        tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
        let cluster = self.cluster.clone();
        on_cluster(move || cluster.restart_all()).await;
    }

    /// Stops the instance with SIGTERM, and reads and checks the whole output and the
    /// committed offsets: `check` the output.
    async fn finish(mut self, check: impl FnOnce(&Output, usize)) {
        let instance = self.instance.take().expect("an instance");
        terminate(instance.child).await;
        self.output.read();
        check(&self.output, self.events);
        self.sampler.check();
    }

    /// Produces another [`STEP`] events and waits until they are all output.
    async fn more_events(&mut self) {
        let events = self.events;
        self.app.produce(events..events + STEP).await;
        self.events += STEP;
        self.output.until(self.events, 300).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node Apache Kafka cluster of its own: the real-broker pass of tests/run.sh runs it"]
async fn at_least_once_loses_nothing_through_node_failures_and_a_cluster_outage() {
    let mut run = Failover::through_node_failures("failover-alos", "at_least_once").await;
    // The whole cluster down: health says no broker is reachable, then recovers.
    // (It may first say that the consumer lost its partitions: its session ran out.)
    run.outage(get_until(60, run.addr, "/health", |reply| {
        reply.status == 503 && reply.body.contains("no broker reachable")
    }))
    .await;
    run.more_events().await;
    healthy(run.addr).await;

    run.finish(Output::check_none_lost).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node Apache Kafka cluster of its own: the real-broker pass of tests/run.sh runs it"]
async fn exactly_once_is_exact_through_node_failures_and_a_restart_after_a_cluster_outage() {
    let mut run = Failover::through_node_failures("failover-eos", "exactly_once").await;
    // The whole cluster down for longer than the session and transaction timeouts: the
    // instance loses its partitions (or its transaction), stops saying so without committing,
    // and a restart is exact.
    run.outage(async {}).await;
    let stopped = run.instance.take().expect("an instance");
    let (status, stderr) = crate::broker::exit_within(stopped, 120).await;
    assert!(!status.success(), "the instance went on: {stderr}");
    assert!(
        [
            "the group took this instance's partitions",
            "the consumer group moved on without this instance",
            "this instance's transaction was ended by the broker",
        ]
        .iter()
        .any(|why| stderr.contains(why)),
        "it stopped for another reason: {stderr}"
    );
    run.instance = Some(child_reporting(CHILD, &run.app.default_envs("a")));
    run.more_events().await;
    run.finish(Output::check_exact).await;
}
