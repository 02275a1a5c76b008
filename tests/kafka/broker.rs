//! The broker under test and helpers to make topics on it.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::StreamExt;
use rdkafka::mocking::MockCluster;
use slipstream::{DefaultCodec, Message, Topic};

/// What a mock cluster's thread is asked to do.
pub enum Command {
    /// Create a topic with so many partitions, then answer.
    Create(String, i32, std::sync::mpsc::Sender<()>),
    /// Take broker 1 down.
    Down,
    /// Bring broker 1 back.
    Up,
    /// Answer the next heartbeats with "fenced instance id" (fatal for a consumer).
    Fence,
    /// Refuse every request about a topic ("topic authorization failed").
    Forbid(String),
}

/// A librdkafka mock cluster with one broker, owned by a thread of its own (the cluster is not
/// `Send`), driven by [`Command`]s.
pub struct Mock {
    pub servers: String,
    commands: std::sync::Mutex<std::sync::mpsc::Sender<Command>>,
}

impl Mock {
    pub fn start() -> Mock {
        let (ready, servers) = std::sync::mpsc::channel();
        let (commands, requests) = std::sync::mpsc::channel::<Command>();
        std::thread::spawn(move || {
            let cluster = MockCluster::new(1).expect("a mock cluster");
            ready.send(cluster.bootstrap_servers()).unwrap();
            for command in requests {
                match command {
                    Command::Create(name, partitions, done) => {
                        cluster
                            .create_topic(&name, partitions, 1)
                            .expect("a mock topic");
                        let _ = done.send(());
                    }
                    Command::Down => cluster.broker_down(1).unwrap(),
                    Command::Up => cluster.broker_up(1).unwrap(),
                    Command::Forbid(name) => cluster
                        .topic_error(
                            &name,
                            rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED,
                        )
                        .expect("a topic error"),
                    Command::Fence => cluster.request_errors(
                        rdkafka::types::RDKafkaApiKey::Heartbeat,
                        &[rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID; 20],
                    ),
                }
            }
        });
        Mock {
            servers: servers.recv().unwrap(),
            commands: std::sync::Mutex::new(commands),
        }
    }

    pub fn send(&self, command: Command) {
        self.commands.lock().unwrap().send(command).unwrap();
    }

    pub async fn create(&self, name: &str, partitions: i32) {
        let (done, created) = std::sync::mpsc::channel();
        self.send(Command::Create(name.to_owned(), partitions, done));
        tokio::task::spawn_blocking(move || created.recv().unwrap())
            .await
            .unwrap();
    }
}

fn mock() -> &'static Mock {
    static MOCK: OnceLock<Mock> = OnceLock::new();
    MOCK.get_or_init(Mock::start)
}

/// The address of the broker under test.
pub fn servers() -> String {
    match std::env::var("TEST_KAFKA_BROKER") {
        Ok(real) => real,
        Err(_) => mock().servers.clone(),
    }
}

/// Creates a topic on the broker under test (the mock cluster does not take the admin API).
pub async fn create(name: &str, partitions: i32) {
    create_on(&servers(), name, partitions).await;
}

/// Creates a topic on the broker at `servers` (a real one's default replication factor).
pub async fn create_on(servers: &str, name: &str, partitions: i32) {
    if !is_real() && servers == mock().servers {
        return mock().create(name, partitions).await;
    }
    Topic::<String, String>::new(name)
        .conf([("bootstrap.servers", servers)])
        .create(partitions)
        .await
        .expect("topic created");
}

/// Makes `name` a topic no client may write: on the mock cluster every request about it is
/// refused; a real broker refuses it when it is not a legal topic name.
pub fn forbid(name: &str) {
    if !is_real() {
        mock().send(Command::Forbid(name.to_owned()));
    }
}

/// Whether the tests run against a real broker.
pub fn is_real() -> bool {
    std::env::var("TEST_KAFKA_BROKER").is_ok()
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
    let mut conf = vec![
        ("bootstrap.servers", servers()),
        ("group.id", group.to_owned()),
        ("auto.offset.reset", "earliest".to_owned()),
        ("topic.metadata.refresh.interval.ms", "1000".to_owned()),
    ];
    // Quick group joins and rebalances in tests; with the consumer group protocol of KIP-848
    // (`SLIPSTREAM_GROUP_PROTOCOL=consumer`) the broker sets them.
    if std::env::var("SLIPSTREAM_GROUP_PROTOCOL").as_deref() != Ok("consumer") {
        conf.push(("session.timeout.ms", "6000".to_owned()));
        conf.push(("heartbeat.interval.ms", "500".to_owned()));
    }
    conf
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

/// Runs the test `test` of this binary as a child process with `envs` (an instance of an
/// application; the test returns at once unless its variables are set). `CHILD_VERBOSE=1` shows
/// the children's logs.
pub fn child(test: &str, envs: &[(&str, String)]) -> std::process::Child {
    let stderr = if std::env::var("CHILD_VERBOSE").is_ok() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    };
    spawn_child(test, envs, stderr)
}

/// Stops a child with SIGTERM; it must exit successfully, within a minute (one still running
/// then is killed, and the test fails). Blocks.
pub fn terminate(child: &mut std::process::Child) {
    let _ = std::process::Command::new("kill")
        .arg(child.id().to_string())
        .status();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("an instance was still running a minute after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "an instance stopped with {status:?}");
}

/// A child whose standard error goes to a file, read when it exits (a pipe nobody reads
/// would block a child that logs much).
pub struct Reporting {
    pub child: std::process::Child,
    log: std::path::PathBuf,
}

/// [`child`], with its standard error kept for the test (to read the error it stopped with).
pub fn child_reporting(test: &str, envs: &[(&str, String)]) -> Reporting {
    let log = std::env::temp_dir().join(unique("child-log"));
    let file = std::fs::File::create(&log).unwrap();
    Reporting {
        child: spawn_child(test, envs, std::process::Stdio::from(file)),
        log,
    }
}

/// Waits up to `secs` for a child started with [`child_reporting`] to exit: its status and its
/// standard error. One still running then is killed and the test fails, with its log.
pub async fn exit_within(reporting: Reporting, secs: u64) -> (std::process::ExitStatus, String) {
    let Reporting { mut child, log } = reporting;
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if status.is_none() {
        let _ = child.kill();
        let _ = child.wait();
    }
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    if std::env::var("CHILD_VERBOSE").is_ok() {
        eprintln!("{text}");
    }
    match status {
        Some(status) => (status, text),
        None => panic!("the instance was still running after {secs} s; its log:\n{text}"),
    }
}

fn spawn_child(
    test: &str,
    envs: &[(&str, String)],
    stderr: std::process::Stdio,
) -> std::process::Child {
    use std::process::{Command, Stdio};
    let verbose = std::env::var("CHILD_VERBOSE").is_ok();
    Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        // The broker under test, unless `envs` names another.
        .env("TEST_KAFKA_BROKER", servers())
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .env(
            "RUST_LOG",
            match std::env::var("CHILD_LOG") {
                Ok(filter) => filter,
                Err(_) if verbose => "info,slipstream_kafka=debug,librdkafka=warn".to_owned(),
                Err(_) => "warn".to_owned(),
            },
        )
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// A `read_committed` reader of `topic`'s `partitions` from their beginning, told each
/// partition's end (a group of its own, which commits nothing).
pub fn committed_reader(
    servers: &str,
    topic: &str,
    partitions: i32,
) -> rdkafka::consumer::BaseConsumer {
    use rdkafka::consumer::Consumer;
    let consumer: rdkafka::consumer::BaseConsumer = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", servers)
        .set("group.id", unique("committed-reader"))
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true")
        .create()
        .unwrap();
    let mut list = rdkafka::TopicPartitionList::new();
    for partition in 0..partitions {
        list.add_partition_offset(topic, partition, rdkafka::Offset::Beginning)
            .unwrap();
    }
    consumer.assign(&list).unwrap();
    consumer
}

/// Hands `each` message `reader` reads until it has seen the end of `partitions` partitions
/// (each waited for 30 s at most).
pub fn read_to_end(
    reader: &rdkafka::consumer::BaseConsumer,
    partitions: i32,
    mut each: impl FnMut(&rdkafka::message::BorrowedMessage<'_>),
) {
    let mut ends = 0;
    while ends < partitions {
        match reader
            .poll(Duration::from_secs(30))
            .expect("the output's end")
        {
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => ends += 1,
            Err(error) => panic!("reading the output: {error}"),
            Ok(message) => each(&message),
        }
    }
}

/// A group's committed offsets of a topic's partitions, asked when wanted.
pub struct GroupOffsets {
    consumer: rdkafka::consumer::BaseConsumer,
    list: rdkafka::TopicPartitionList,
}

impl GroupOffsets {
    pub fn new(servers: &str, topic: &str, group: &str, partitions: i32) -> GroupOffsets {
        let consumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", servers)
            .set("group.id", group)
            .create()
            .unwrap();
        let mut list = rdkafka::TopicPartitionList::new();
        for partition in 0..partitions {
            list.add_partition(topic, partition);
        }
        GroupOffsets { consumer, list }
    }

    /// Each partition's committed offset (`None`: none committed), or the broker's error.
    pub fn ask(&self, timeout: Duration) -> rdkafka::error::KafkaResult<Vec<Option<i64>>> {
        use rdkafka::consumer::Consumer;
        let offsets = self
            .consumer
            .committed_offsets(self.list.clone(), timeout)?;
        Ok(offsets
            .elements()
            .iter()
            .map(|e| match e.offset() {
                rdkafka::Offset::Offset(offset) => Some(offset),
                _ => None,
            })
            .collect())
    }
}

/// Waits until group `group` has committed `events` messages of `topic`'s `partitions`.
pub async fn until_committed(topic: &str, group: &str, partitions: i32, events: i64, secs: u64) {
    let offsets = GroupOffsets::new(&servers(), topic, group, partitions);
    let committed = std::cell::Cell::new(0);
    slipstream_tests::until_or(
        secs,
        || {
            let asked = offsets.ask(Duration::from_secs(5));
            committed.set(asked.map_or(0, |asked| asked.into_iter().flatten().sum()));
            committed.get() >= events
        },
        || format!("{} of {events} messages committed", committed.get()),
    )
    .await;
}

/// Runs the handlers of `module` as an application when this process is a child started with
/// `var` set (see [`child`]); returns at once otherwise (the test run as itself).
pub async fn run_as_child(var: &str, module: &str) -> bool {
    if std::env::var(var).is_err() {
        return false;
    }
    slipstream::App::new().module(module).run().await.unwrap();
    true
}

/// Samples a group's committed offsets of a topic every 100 ms, on a thread of its own, until
/// [`check`](CommitSampler::check)ed: a partition's committed offset must never go backwards
/// (an instance committing over the progress of the partition's next owner would).
pub struct CommitSampler {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl CommitSampler {
    pub fn start(servers: &str, topic: &str, group: &str, partitions: i32) -> CommitSampler {
        let offsets = GroupOffsets::new(servers, topic, group, partitions);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut last: Vec<i64> = vec![-1; partitions as usize];
            let (mut samples, mut backwards) = (0, Vec::new());
            while !stopping.load(Ordering::Relaxed) {
                // An unreachable broker (a failover test) gives no sample.
                if let Ok(asked) = offsets.ask(Duration::from_secs(2)) {
                    samples += 1;
                    for (partition, offset) in asked.into_iter().enumerate() {
                        let Some(offset) = offset else { continue };
                        let previous = &mut last[partition];
                        if offset < *previous {
                            backwards
                                .push(format!("partition {partition}: {previous} then {offset}"));
                        }
                        *previous = offset;
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (samples, backwards)
        });
        CommitSampler { stop, thread }
    }

    /// Stops sampling; fails the test if a committed offset went backwards, or nothing was
    /// sampled.
    pub fn check(self) {
        self.stop.store(true, Ordering::Relaxed);
        let (samples, backwards) = self.thread.join().unwrap();
        assert!(samples > 0, "no committed offsets were sampled");
        assert!(
            backwards.is_empty(),
            "committed offsets went backwards: {backwards:?}"
        );
    }
}
