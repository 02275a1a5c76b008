//! Exactly-once and a record the broker itself refuses (here: larger than its topic's
//! `max.message.bytes`). librdkafka then lets the open transaction only abort, so the handler's
//! `skip` policy cannot keep it: the application stops saying why, nothing of that transaction
//! is visible, and a restart meets the same record again. Refused by the producer instead (its
//! `message.max.bytes` no larger than the topic's limit), the record never enters the
//! transaction, and `skip` applies. Each run is a child process (an instance's transactions
//! live as long as its process).

use std::sync::LazyLock;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use slipstream::prelude::*;
use slipstream::{Message, Topic};

use rdkafka::Offset;
use rdkafka::consumer::Consumer;
use slipstream_tests::until_or;

use crate::broker::{
    GroupOffsets, child_reporting, committed_reader, conf, exit_within, read_all, read_to_end,
    servers, topic, unique,
};

/// The output topic's `max.message.bytes`.
const LIMIT: usize = 2_000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

/// The instance's conf: its guarantee, and the producer's `message.max.bytes` when set.
fn guaranteed() -> Vec<(&'static str, String)> {
    let mut conf = conf(&env("REFUSED_TEST_GROUP"));
    conf.push(("processing.guarantee", env("REFUSED_TEST_GUARANTEE")));
    // Longer than the tests wait for a transaction the instance should have aborted itself.
    conf.push(("transaction.timeout.ms", "60000".to_owned()));
    if let Ok(limit) = std::env::var("REFUSED_TEST_PRODUCER_LIMIT") {
        conf.push(("message.max.bytes", limit));
    }
    conf
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new(env("REFUSED_TEST_INPUT"))
        .conf(guaranteed())
        .stop_at_end(true)
});
static OUTPUT: LazyLock<Topic> =
    LazyLock::new(|| Topic::new(env("REFUSED_TEST_OUTPUT")).conf(guaranteed()));

/// "5" becomes a record twice the output topic's limit.
#[handle(source = INPUT, sink = [OUTPUT], on_error = "skip")]
fn widen(msg: Message<String, String>) -> String {
    if msg.value == "5" {
        "x".repeat(2 * LIMIT)
    } else {
        msg.value
    }
}

/// An instance, when this binary runs as the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_widen() {
    crate::broker::run_as_child("REFUSED_TEST_INPUT", module_path!()).await;
}

/// A one-partition input holding "0".."9", and an output limited to [`LIMIT`] bytes a record.
struct Pipeline {
    input: String,
    output: String,
    group: String,
}

impl Pipeline {
    async fn new(name: &str) -> Pipeline {
        let pipeline = Pipeline {
            input: unique(&format!("{name}-in")),
            output: unique(&format!("{name}-out")),
            group: unique(name),
        };
        create_limited(&pipeline.input, None).await;
        create_limited(&pipeline.output, Some(LIMIT)).await;
        let writer: Topic = topic(&pipeline.input, "writer");
        for i in 0..10 {
            writer.send(format!("k{i}"), i.to_string()).await.unwrap();
        }
        pipeline
    }

    /// Runs an instance until it exits: whether it succeeded, and its log.
    async fn run(&self, guarantee: &str, producer_limit: Option<usize>) -> (bool, String) {
        let mut envs = vec![
            ("REFUSED_TEST_GUARANTEE", guarantee.to_owned()),
            ("REFUSED_TEST_INPUT", self.input.clone()),
            ("REFUSED_TEST_OUTPUT", self.output.clone()),
            ("REFUSED_TEST_GROUP", self.group.clone()),
        ];
        if let Some(limit) = producer_limit {
            envs.push(("REFUSED_TEST_PRODUCER_LIMIT", limit.to_string()));
        }
        let (status, log) = exit_within(child_reporting("refused::child_widen", &envs), 120).await;
        (status.success(), log)
    }

    /// The group's committed offset of the input.
    fn committed(&self) -> Option<i64> {
        let offsets = GroupOffsets::new(&servers(), &self.input, &self.group, 1);
        offsets
            .ask(Duration::from_secs(30))
            .expect("the committed offsets")[0]
    }

    /// Whether no transaction is open on the output: a `read_committed` reader reaches its
    /// high watermark (an open one would hold it back at its first record).
    fn no_transaction_open(&self) -> bool {
        let reader = committed_reader(&servers(), &self.output, 1);
        read_to_end(&reader, 1, |_| {});
        let position = reader.position().expect("the reader's position").elements()[0].offset();
        let (_, high) = reader
            .fetch_watermarks(&self.output, 0, Duration::from_secs(10))
            .expect("the output's watermarks");
        position == Offset::Offset(high)
    }

    /// The committed output (the test reader is `read_committed`).
    async fn output(&self) -> Vec<String> {
        let mut values: Vec<String> = read_all::<String, String>(&self.output)
            .await
            .into_iter()
            .map(|m| m.value)
            .collect();
        values.sort();
        values
    }
}

/// Creates a one-partition topic, with `max.message.bytes` when given.
async fn create_limited(name: &str, limit: Option<usize>) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", servers())
        .create()
        .expect("an admin client");
    let limit = limit.map(|l| l.to_string());
    let mut topic = NewTopic::new(name, 1, TopicReplication::Fixed(1));
    if let Some(limit) = &limit {
        topic = topic.set("max.message.bytes", limit);
    }
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let created = admin.create_topics([&topic], &options).await.unwrap();
    for result in created {
        result.unwrap_or_else(|(name, code)| panic!("cannot create {name}: {code}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a broker with Kafka transactions and topic limits: the Apache Kafka pass of tests/run.sh runs it"]
async fn a_record_the_broker_refuses_stops_exactly_once_even_under_skip() {
    crate::exactly_once::needs_transactions().await;
    let pipeline = Pipeline::new("refused-by-broker").await;
    let said = "a transaction holding an undelivered record can only abort";
    for run in ["first run", "restart"] {
        let (succeeded, log) = pipeline.run("exactly_once", None).await;
        assert!(!succeeded, "{run}: the instance went on\n{log}");
        assert!(
            log.contains(said),
            "{run}: the instance did not say why\n{log}"
        );
        assert!(
            log.contains("MessageSizeTooLarge") || log.contains("too large"),
            "{run}\n{log}"
        );
        // The transaction holding the refused record aborted, with every record in it.
        let output = pipeline.output().await;
        assert!(!output.iter().any(|v| v.len() > LIMIT), "{run}: {output:?}");
        assert!(!output.contains(&"5".to_owned()), "{run}: {output:?}");
        assert!(
            pipeline.committed().is_none_or(|c| c <= 5),
            "{run}: committed past it"
        );
        // The instance aborted its transaction as it stopped: readers and the next owner need
        // not wait for the broker's timeout (60 s).
        until_or(
            10,
            || pipeline.no_transaction_open(),
            || format!("{run}: the transaction is still open"),
        )
        .await;
    }
}

/// Under either guarantee, a record the producer refuses is skipped, and the offsets are
/// committed past its input (a hold on it the sink dropped used to fail it: never committed
/// past, everything after it read again after a restart).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a broker with Kafka transactions and topic limits: the Apache Kafka pass of tests/run.sh runs it"]
async fn a_record_the_producer_refuses_is_skipped_and_committed_past() {
    crate::exactly_once::needs_transactions().await;
    for guarantee in ["at_least_once", "exactly_once"] {
        let pipeline = Pipeline::new(&format!("refused-by-producer-{guarantee}")).await;
        let (succeeded, log) = pipeline.run(guarantee, Some(LIMIT)).await;
        assert!(
            succeeded,
            "{guarantee}: the refused record was not skipped\n{log}"
        );
        let expected: Vec<String> = (0..10).filter(|&i| i != 5).map(|i| i.to_string()).collect();
        assert_eq!(pipeline.output().await, expected, "{guarantee}");
        assert_eq!(pipeline.committed(), Some(10), "{guarantee}");
    }
}
