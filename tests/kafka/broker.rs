//! The broker under test and helpers to make topics on it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rdkafka::mocking::MockCluster;
use slipstream::{DefaultCodec, Message, Topic};

/// A request to the mock cluster's thread: create a topic with so many partitions.
type Create = (String, i32, std::sync::mpsc::Sender<()>);

struct Mock {
    servers: String,
    create: std::sync::Mutex<std::sync::mpsc::Sender<Create>>,
}

fn mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(|| {
        let (tx, rx) = std::sync::mpsc::channel();
        let (create, requests) = std::sync::mpsc::channel::<Create>();
        std::thread::spawn(move || {
            let cluster = MockCluster::new(1).expect("a mock cluster");
            tx.send(cluster.bootstrap_servers()).unwrap();
            for (name, partitions, done) in requests {
                cluster
                    .create_topic(&name, partitions, 1)
                    .expect("a mock topic");
                let _ = done.send(());
            }
        });
        Mock {
            servers: rx.recv().unwrap(),
            create: std::sync::Mutex::new(create),
        }
    })
}

/// The address of the broker under test.
pub fn servers() -> String {
    match std::env::var("SLIPSTREAM_TEST_BROKER") {
        Ok(real) => real,
        Err(_) => mock().servers.clone(),
    }
}

/// Creates a topic on the broker under test (the mock cluster does not take the admin API).
pub async fn create(name: &str, partitions: i32) {
    if is_real() {
        topic::<String, String>(name, "admin")
            .create(partitions)
            .await
            .expect("topic created");
    } else {
        let (done, created) = std::sync::mpsc::channel();
        mock()
            .create
            .lock()
            .unwrap()
            .send((name.to_owned(), partitions, done))
            .unwrap();
        tokio::task::spawn_blocking(move || created.recv().unwrap())
            .await
            .unwrap();
    }
}

/// Whether the tests run against a real broker.
pub fn is_real() -> bool {
    std::env::var("SLIPSTREAM_TEST_BROKER").is_ok()
}

/// A topic name no other test (or earlier run against the same broker) uses.
pub fn unique(name: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "{name}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The settings every test client uses.
pub fn conf(group: &str) -> Vec<(&'static str, String)> {
    vec![
        ("bootstrap.servers", servers()),
        ("group.id", group.to_owned()),
        ("auto.offset.reset", "earliest".to_owned()),
        // Quick group joins and rebalances in tests.
        ("session.timeout.ms", "6000".to_owned()),
        ("heartbeat.interval.ms", "500".to_owned()),
        ("topic.metadata.refresh.interval.ms", "1000".to_owned()),
    ]
}

/// A topic on the broker under test, read by consumer group `group`.
pub fn topic<K: DefaultCodec, V: DefaultCodec>(name: &str, group: &str) -> Topic<K, V> {
    Topic::new(name).conf(conf(group))
}

/// Reads every message of `topic` (a fresh group), until each partition's end.
pub async fn read_all<K, V>(name: &str) -> Vec<Message<K, V>>
where
    K: DefaultCodec + Send + Sync,
    V: DefaultCodec + Send + Sync,
{
    let reader: Topic<K, V> = topic::<K, V>(name, &unique("reader")).stop_at_end(true);
    let stream = reader.stream().expect("a consumer");
    tokio::time::timeout(Duration::from_secs(60), stream.collect::<Vec<_>>())
        .await
        .expect("read the topic within a minute")
}
