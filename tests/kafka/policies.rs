//! The error policies end to end: topic → handler `a` → proxy → handler `b` → topic, with `b`
//! failing on one message. The acknowledgement of each input message travels through the
//! proxy, so its offset is committed only once `b` is done with it.

use std::collections::BTreeSet;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};

use slipstream::kafka::dead_letter;
use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{app, within};

use crate::broker::{create, read_all, topic, unique};

/// The dead-letter topic of the `dead_letter` pipeline (a fixed name: the policy names it in
/// the attribute; each test binary run has a broker of its own).
const DEAD: &str = "policies-dead-letters";

macro_rules! pipeline {
    ($module:ident, $($policy:tt)*) => {
        pub mod $module {
            use super::*;

            pub static NAMES: LazyLock<(String, String)> = LazyLock::new(|| {
                (unique(concat!(stringify!($module), "-in")), unique(concat!(stringify!($module), "-out")))
            });
            pub static INPUT: LazyLock<Topic> = LazyLock::new(|| {
                topic(&NAMES.0, &format!("{}-group", NAMES.0)).stop_at_end(true)
            });
            pub static OUTPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAMES.1, "writer"));
            pub static PASSED: LazyLock<Proxy<String>> = LazyLock::new(Proxy::new);
            /// Whether `b` refuses "5".
            pub static FAIL: AtomicBool = AtomicBool::new(true);

            #[handle(source = INPUT, sink = [PASSED])]
            fn a(msg: Message<String, String>) -> String {
                msg.value
            }

            #[handle(source = PASSED, sink = [OUTPUT], $($policy)*)]
            fn b(value: String) -> Result<String, String> {
                if value == "5" && FAIL.load(Ordering::SeqCst) {
                    Err(format!("{value} is refused"))
                } else {
                    Ok(value)
                }
            }

            /// Creates the topics and writes "0".."9" (keys "k0".."k9") to the input.
            pub async fn prepare() {
                create(&NAMES.0, 1).await;
                create(&NAMES.1, 1).await;
                for i in 0..10 {
                    INPUT.send(format!("k{i}"), i.to_string()).await.unwrap();
                }
            }

            pub async fn run() -> Result<(), slipstream::Error> {
                within(120, app(module_path!()).run()).await
            }

            pub async fn output() -> Vec<String> {
                read_all::<String, String>(&NAMES.1)
                    .await
                    .into_iter()
                    .map(|m| m.value)
                    .collect()
            }
        }
    };
}

pipeline!(stopping,);
pipeline!(skipping, on_error = "skip");
pipeline!(dead_lettering, dead_letter = "policies-dead-letters");
// A dead-letter topic that cannot be written (see `forbid`).
pipeline!(unwritable, dead_letter = "policies dead letters!");

fn values(range: impl Iterator<Item = u32>) -> BTreeSet<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_stop_a_restart_processes_the_failed_message_and_everything_after_it() {
    stopping::prepare().await;
    let err = stopping::run().await.unwrap_err();
    assert_eq!(err.to_string(), "handler `b` failed: 5 is refused");
    let first: BTreeSet<String> = stopping::output().await.into_iter().collect();
    assert!(!first.contains("5"), "{first:?}");

    // Fixed and restarted with the same group: nothing is lost.
    stopping::FAIL.store(false, Ordering::SeqCst);
    stopping::run().await.unwrap();
    let all: BTreeSet<String> = stopping::output().await.into_iter().collect();
    assert_eq!(all, values(0..10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_skip_the_failed_message_is_acknowledged_and_the_rest_goes_on() {
    skipping::prepare().await;
    skipping::run().await.unwrap();
    let out = skipping::output().await;
    assert_eq!(out, ["0", "1", "2", "3", "4", "6", "7", "8", "9"]);
    // Committed past it: a second run of the group reads nothing again.
    skipping::FAIL.store(false, Ordering::SeqCst);
    skipping::run().await.unwrap();
    assert_eq!(skipping::output().await.len(), 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_dead_letter_the_failed_input_is_forwarded_with_why_and_where() {
    create(DEAD, 1).await;
    dead_lettering::prepare().await;
    dead_lettering::run().await.unwrap();
    assert_eq!(
        dead_lettering::output().await,
        ["0", "1", "2", "3", "4", "6", "7", "8", "9"]
    );
    let dead: Vec<Message<String, String>> = read_all(DEAD)
        .await
        .into_iter()
        .filter(|m| m.header(dead_letter::TOPIC_HEADER) == Some(dead_lettering::NAMES.0.as_bytes()))
        .collect();
    assert_eq!(dead.len(), 1, "{dead:?}");
    let letter = &dead[0];
    assert_eq!(
        (letter.key.as_deref(), letter.value.as_str()),
        (Some("k5"), "5")
    );
    let header = |name| String::from_utf8(letter.header(name).unwrap().to_vec()).unwrap();
    assert_eq!(header(dead_letter::HANDLER_HEADER), "b");
    assert_eq!(header(dead_letter::ERROR_HEADER), "5 is refused");
    assert_eq!(header(dead_letter::PARTITION_HEADER), "0");
    assert_eq!(header(dead_letter::OFFSET_HEADER), "5");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_that_cannot_be_written_stops_and_the_record_is_read_again() {
    crate::broker::forbid("policies dead letters!");
    unwritable::prepare().await;
    let err = unwritable::run().await.unwrap_err();
    assert!(err.to_string().contains("5 is refused"), "{err}");
    let first: BTreeSet<String> = unwritable::output().await.into_iter().collect();
    assert!(!first.contains("5"), "{first:?}");

    // Restarted with the same group: the poison record is read again, nothing is lost.
    unwritable::FAIL.store(false, Ordering::SeqCst);
    unwritable::run().await.unwrap();
    let all: BTreeSet<String> = unwritable::output().await.into_iter().collect();
    assert_eq!(all, values(0..10));
}
