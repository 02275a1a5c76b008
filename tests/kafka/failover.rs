//! Broker failover, on a three-node Apache Kafka cluster of the test's own (replication factor
//! 3, `min.insync.replicas=2`): the counting application of `exactly_once` (a topic → handler →
//! topic pipeline whose handler counts keys in a cache that follows the input) runs, as a child
//! process, while the leader of its input's first partition is SIGKILLed and started again,
//! then another node is stopped gracefully and started again, and (at-least-once) the whole
//! cluster is killed for 20 s and started again. Events arrive throughout; the application is
//! never restarted. A `read_committed` reader checks the output: at-least-once loses nothing,
//! exactly-once outputs every event once with exact counts. Its admin server's `/health` says
//! the application is fine while one node is down (the others serve it), unhealthy while no
//! broker is reachable, and fine again once they are back.
//!
//! Ignored in the mock-cluster pass; the real-broker pass of `tests/run.sh` runs them.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use slipstream_tests::get_until;

use crate::broker::child_reporting;
use crate::cluster::{Cluster, free_port};
use crate::exactly_once::{App, CHILD, terminate};

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
/// `addr` and health (and start-up) grace 5 s.
async fn application(cluster: &Cluster, name: &str, guarantee: &str, addr: SocketAddr) -> App {
    let mut app = App::on(&cluster.servers, name, PARTITIONS).await;
    app.extra = vec![
        ("SLIPSTREAM_PROCESSING_GUARANTEE", guarantee.to_owned()),
        ("SLIPSTREAM_HTTP_ADDR", addr.to_string()),
        ("EOS_TEST_GRACE_MS", "5000".to_owned()),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node Apache Kafka cluster of its own: the real-broker pass of tests/run.sh runs it"]
async fn at_least_once_loses_nothing_through_node_failures_and_a_cluster_outage() {
    let cluster = std::sync::Arc::new(Cluster::start("failover-alos", 3, &[]));
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let app = application(&cluster, "failover-alos", "at_least_once", addr).await;
    let sampler = app.sampler();
    let mut output = app.reader();
    let instance = child_reporting(CHILD, &app.default_envs("a"));
    let mut events = one_node_at_a_time(&cluster, &app, addr).await;
    output.until(events, 60).await;

    // The whole cluster down: health says no broker is reachable, then recovers.
    let down = Instant::now();
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.kill_all()).await;
    // (It may first say that the consumer lost its partitions: its session ran out.)
    get_until(60, addr, "/health", |reply| {
        reply.status == 503 && reply.body.contains("no broker reachable")
    })
    .await;
    // The outage itself lasts its time.
    tokio::time::sleep(OUTAGE.saturating_sub(down.elapsed())).await;
    let cluster_ = cluster.clone();
    on_cluster(move || cluster_.restart_all()).await;
    app.produce(events..events + STEP).await;
    events += STEP;
    output.until(events, 300).await;
    healthy(addr).await;

    terminate(instance.child).await;
    output.read();
    output.check_none_lost(events);
    sampler.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "starts a three-node Apache Kafka cluster of its own: the real-broker pass of tests/run.sh runs it"]
async fn exactly_once_is_exact_through_a_leader_killed_and_a_node_stopped() {
    let cluster = std::sync::Arc::new(Cluster::start("failover-eos", 3, &[]));
    let addr = SocketAddr::from(([127, 0, 0, 1], free_port()));
    let app = application(&cluster, "failover-eos", "exactly_once", addr).await;
    let sampler = app.sampler();
    let mut output = app.reader();
    let instance = child_reporting(CHILD, &app.default_envs("a"));
    let events = one_node_at_a_time(&cluster, &app, addr).await;
    output.until(events, 60).await;
    terminate(instance.child).await;
    output.read();
    output.check_exact(events);
    sampler.check();
}
