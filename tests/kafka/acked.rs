//! Exactly-once with a custom acknowledged source ([`slipstream::acked`]): an item is done only
//! once the transaction holding what its handler produced has committed, not when the broker
//! has the records. A handler of a topic failing aborts the open transaction, and none of the
//! items whose records it held is done (their source would drop them: they would be lost).
//!
//! Needs Kafka's transactions (the mock cluster shows aborted records): ignored in the
//! mock-cluster pass, run by the Apache Kafka pass of `tests/run.sh`.

use std::collections::BTreeSet;
use std::io::Write;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::{Stream, stream};
use rdkafka::ClientConfig;
use rdkafka::message::Message as _;
use rdkafka::producer::{FutureProducer, FutureRecord};
use slipstream::prelude::*;
use slipstream::{Ack, Acknowledge, Message, Topic, acked};

use crate::broker::{
    child_reporting, committed_reader, create, exit_within, read_to_end, servers, topic, unique,
};

/// More than are handled before the failure: items keep coming until the application stops.
const ITEMS: usize = 10_000_000;
/// The item after which the topic's handler is made to fail.
const TRIGGER_AT: usize = 3_000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

static OUTPUT: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("ACKED_TEST_OUTPUT"), &env("ACKED_TEST_GROUP")));
static TRIGGER: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("ACKED_TEST_TRIGGER"), &env("ACKED_TEST_GROUP")));
/// How many items are done.
static DONE: AtomicUsize = AtomicUsize::new(0);

/// An item of the source: when it is done, its number is written to `ACKED_TEST_LOG`.
struct Item(usize);

impl Acknowledge for Item {
    fn done(&self) {
        static LOG: LazyLock<std::sync::Mutex<std::fs::File>> = LazyLock::new(|| {
            let log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(env("ACKED_TEST_LOG"))
                .unwrap();
            std::sync::Mutex::new(log)
        });
        writeln!(LOG.lock().unwrap(), "{}", self.0).unwrap();
        DONE.fetch_add(1, Ordering::SeqCst);
    }

    fn failed(&self) {}
}

fn items() -> impl Stream<Item = (usize, Ack)> {
    stream::iter((0..ITEMS).map(|i| (i, Ack::new(Item(i)))))
}

/// Forwards each item. At item `TRIGGER_AT`, once some item is done (a transaction has
/// committed), it writes a message to the trigger topic (outside the transaction), on which
/// [`fail_on_trigger`] fails while items keep coming.
#[handle(source = acked(items()), sink = [OUTPUT])]
async fn forward_acked(i: usize) -> (String, String) {
    if i == TRIGGER_AT {
        slipstream_tests::until(60, || DONE.load(Ordering::SeqCst) > 0).await;
        let producer: FutureProducer = ClientConfig::new()
            .set("bootstrap.servers", servers())
            .create()
            .unwrap();
        let trigger = env("ACKED_TEST_TRIGGER");
        producer
            .send(
                FutureRecord::<str, str>::to(&trigger).payload("fail"),
                Duration::from_secs(10),
            )
            .await
            .expect("the trigger produced");
    }
    (format!("k{i}"), i.to_string())
}

/// Fails on the trigger. Meanwhile no transaction commits (the message it holds is not
/// finished): it first waits until 1,000 more items are done (up to 9 s), which only happens
/// if items are done before their transaction commits. Either way the open transaction aborts
/// and the application stops (on this failure, or on the held message timing the transaction
/// out).
#[handle(source = TRIGGER)]
async fn fail_on_trigger(_msg: Message<String, String>) -> Result<(), slipstream::Error> {
    let done = DONE.load(Ordering::SeqCst);
    let more = async {
        while DONE.load(Ordering::SeqCst) < done + 1_000 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(9), more).await;
    Err(slipstream::Error::kafka("acked", "injected failure"))
}

/// The application, when this binary runs as the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_acked() {
    crate::broker::run_as_child("ACKED_TEST_OUTPUT", module_path!()).await;
}

/// The values a `read_committed` reader sees in `output` (one partition), to its end.
fn committed(output: &str) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    read_to_end(&committed_reader(&servers(), output, 1), 1, |message| {
        let value = String::from_utf8_lossy(message.payload().unwrap());
        seen.insert(value.parse().unwrap());
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a broker with Kafka transactions: the Apache Kafka pass of tests/run.sh runs it"]
async fn an_acked_item_is_done_only_once_its_transaction_commits() {
    crate::exactly_once::needs_transactions().await;
    let output = unique("acked-out");
    create(&output, 1).await;
    let trigger = unique("acked-trigger");
    create(&trigger, 1).await;
    let log = std::env::temp_dir().join(unique("acked-log"));
    let child = child_reporting(
        "acked::child_acked",
        &[
            ("ACKED_TEST_OUTPUT", output.clone()),
            ("ACKED_TEST_TRIGGER", trigger),
            ("ACKED_TEST_GROUP", unique("acked")),
            ("ACKED_TEST_LOG", log.display().to_string()),
            ("SLIPSTREAM_PROCESSING_GUARANTEE", "exactly_once".to_owned()),
        ],
    );
    let (status, stderr) = exit_within(child, 120).await;
    assert!(
        !status.success(),
        "the failing application exited successfully: {stderr}"
    );
    let done: BTreeSet<usize> = std::fs::read_to_string(&log)
        .unwrap_or_default()
        .lines()
        .map(|line| line.parse().unwrap())
        .collect();
    let _ = std::fs::remove_file(&log);
    let visible = tokio::task::spawn_blocking(move || committed(&output))
        .await
        .unwrap();
    assert!(!done.is_empty(), "no item was done before the failure");
    let lost: Vec<&usize> = done.difference(&visible).collect();
    assert!(
        lost.is_empty(),
        "{} items done whose output was aborted (lost), first {:?}; {} done, {} visible",
        lost.len(),
        &lost[..lost.len().min(10)],
        done.len(),
        visible.len()
    );
}
