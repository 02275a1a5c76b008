//! The broker a bench runs against: `BENCH_KAFKA_BROKER` when set, else a librdkafka mock
//! cluster with the bench's topics (it does not take the admin API), on a thread of its own for
//! the rest of the run.

use rdkafka::mocking::MockCluster;

/// The bootstrap servers, with `topics` (name, partitions) created on the mock cluster.
pub fn servers(topics: Vec<(String, i32)>) -> String {
    if let Ok(servers) = std::env::var("BENCH_KAFKA_BROKER") {
        return servers;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let cluster = MockCluster::new(1).unwrap();
        for (topic, partitions) in topics {
            cluster.create_topic(&topic, partitions, 1).unwrap();
        }
        tx.send(cluster.bootstrap_servers()).unwrap();
        loop {
            std::thread::park();
        }
    });
    rx.recv().unwrap()
}

/// Produces records `0..n` to `topic` (key `key{i}`, value `value {i}`), 5,000 at a time.
#[allow(dead_code, reason = "the state bench fills its topics its own way")]
pub async fn fill(servers: &str, topic: &str, n: usize) {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    use std::time::Duration;
    let producer: FutureProducer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    for chunk in (0..n).collect::<Vec<_>>().chunks(5000) {
        let sends = chunk.iter().map(|i| {
            let (key, value) = (format!("key{i}"), format!("value {i}"));
            let producer = producer.clone();
            async move {
                producer
                    .send(
                        FutureRecord::to(topic).key(&key).payload(&value),
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
            }
        });
        futures::future::join_all(sends).await;
    }
}

/// Fails unless none of `topics` exists on the real broker at `servers`: a bench counts what
/// its run wrote, and an earlier run's records would be read again.
#[allow(dead_code, reason = "not every bench creates its topics this way")]
pub fn require_fresh(servers: &str, topics: &[&str]) {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let client: BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .create()
        .unwrap();
    let metadata = client
        .fetch_metadata(None, std::time::Duration::from_secs(10))
        .expect("the broker's metadata");
    let existing: Vec<&str> = metadata
        .topics()
        .iter()
        .map(|t| t.name())
        .filter(|name| topics.contains(name))
        .collect();
    assert!(
        existing.is_empty(),
        "the bench's topics {existing:?} exist on {servers} (an earlier run?): run it against a fresh broker (bash tests/broker.sh start DIR)"
    );
}
