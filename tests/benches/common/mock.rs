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
