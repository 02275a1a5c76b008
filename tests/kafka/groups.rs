//! Two instances of one app in one consumer group split the partitions and together handle every
//! message exactly once.

use std::sync::LazyLock;

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};

use crate::broker::{create, topic, unique};

static NAME: LazyLock<String> = LazyLock::new(|| unique("split"));
static GROUP: LazyLock<String> = LazyLock::new(|| unique("split-group"));
pub static SEEN: Collected<(u8, String)> = Collected::new();

/// One app instance: the same topic and group, its own consumer.
macro_rules! instance {
    ($module:ident, $id:literal, $name:literal) => {
        mod $module {
            use super::*;

            pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAME, &GROUP));

            #[handle(source = INPUT, sink = [|v: String| SEEN.push(($id, v))], name = $name)]
            fn handle_message(msg: Message<String, String>) -> String {
                msg.value
            }
        }
    };
}

instance!(first, 1, "first");
instance!(second, 2, "second");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_the_partitions_and_handle_each_message_once() {
    create(first::INPUT.name(), 4).await;
    let one = app(&format!("{}::first", module_path!()));
    let two = app(&format!("{}::second", module_path!()));
    let (h1, h2) = (one.handle(), two.handle());
    let r1 = tokio::spawn(one.run());
    let r2 = tokio::spawn(two.run());

    // Wait until the group has settled: every partition assigned, each instance has some.
    until(90, || {
        let (a, b) = (first::INPUT.assignment(), second::INPUT.assignment());
        !a.is_empty() && !b.is_empty() && a.len() + b.len() == 4
    })
    .await;

    for i in 0..200 {
        first::INPUT
            .send(format!("key{i}"), format!("{i}"))
            .await
            .unwrap();
    }
    until(60, || SEEN.len() >= 200).await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    h1.shutdown();
    h2.shutdown();
    within(30, r1).await.unwrap().unwrap();
    within(30, r2).await.unwrap().unwrap();

    let seen = SEEN.get();
    let mut values: Vec<u32> = seen.iter().map(|(_, v)| v.parse().unwrap()).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        (0..200).collect::<Vec<_>>(),
        "every message exactly once"
    );
    assert!(
        seen.iter().any(|(id, _)| *id == 1) && seen.iter().any(|(id, _)| *id == 2),
        "both instances handled messages"
    );
}

/// Two topics read by one app in one consumer group: each consumer's joins and leaves rebalance
/// the other, and a commit refused meanwhile is taken again.
mod two_topics_one_group {
    use super::*;

    static NAMES: LazyLock<(String, String)> = LazyLock::new(|| (unique("two-a"), unique("two-b")));
    static SHARED_GROUP: LazyLock<String> = LazyLock::new(|| unique("two-group"));

    macro_rules! run_of {
        ($module:ident) => {
            pub mod $module {
                use super::*;
                pub static A: LazyLock<Topic> =
                    LazyLock::new(|| topic(&NAMES.0, &SHARED_GROUP).stop_at_end(true));
                pub static B: LazyLock<Topic> =
                    LazyLock::new(|| topic(&NAMES.1, &SHARED_GROUP).stop_at_end(true));
                pub static SEEN: Collected<String> = Collected::new();

                #[handle(source = A, sink = [|v: String| SEEN.push(v)])]
                fn from_a(msg: Message<String, String>) -> String {
                    format!("a{}", msg.value)
                }

                #[handle(source = B, sink = [|v: String| SEEN.push(v)])]
                fn from_b(msg: Message<String, String>) -> String {
                    format!("b{}", msg.value)
                }
            }
        };
    }

    run_of!(first_run);
    run_of!(second_run);

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_finished_run_leaves_nothing_to_read_again() {
        create(&NAMES.0, 3).await;
        create(&NAMES.1, 3).await;
        for i in 0..60 {
            first_run::A
                .send(format!("k{i}"), i.to_string())
                .await
                .unwrap();
            first_run::B
                .send(format!("k{i}"), i.to_string())
                .await
                .unwrap();
        }
        within(120, app(&format!("{}::first_run", module_path!())).run())
            .await
            .unwrap();
        assert_eq!(first_run::SEEN.len(), 120);
        // Another message on each, then the same group again: only those are read.
        first_run::A.send("k", "last").await.unwrap();
        first_run::B.send("k", "last").await.unwrap();
        within(120, app(&format!("{}::second_run", module_path!())).run())
            .await
            .unwrap();
        let mut seen = second_run::SEEN.get();
        seen.sort();
        assert_eq!(seen, ["alast", "blast"]);
    }
}

/// Two instances of one group started at the beginning: they stay in their group and share the
/// partitions (each reads its own from the beginning, past what the group had committed)
/// instead of both reading everything.
mod start_in_group {
    use super::*;
    use slipstream::StartAt;
    use slipstream_tests::until_or;

    static NAME: LazyLock<String> = LazyLock::new(|| unique("start-in-group"));
    static GROUP: LazyLock<String> = LazyLock::new(|| unique("start-in-group-group"));
    pub static SEEN: Collected<String> = Collected::new();

    /// Reads the topic once in the group, from its committed offsets, committing what it read.
    mod earlier {
        use super::*;

        pub static INPUT: LazyLock<Topic> =
            LazyLock::new(|| topic(&NAME, &GROUP).stop_at_end(true));

        #[handle(source = INPUT, name = "earlier_reader")]
        fn read(_msg: Message<String, String>) {}
    }

    macro_rules! instance {
        ($module:ident, $name:literal) => {
            pub mod $module {
                use super::*;

                pub static INPUT: LazyLock<Topic> =
                    LazyLock::new(|| topic(&NAME, &GROUP).start(StartAt::Beginning));

                #[handle(source = INPUT, sink = [|v: String| SEEN.push(v)], name = $name)]
                fn read(msg: Message<String, String>) -> String {
                    msg.value
                }
            }
        };
    }

    instance!(first, "first_from_start");
    instance!(second, "second_from_start");

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn instances_started_at_the_beginning_share_the_partitions() {
        create(&NAME, 2).await;
        for i in 0..10 {
            earlier::INPUT
                .send(format!("key{i}"), format!("old{i}"))
                .await
                .unwrap();
        }
        // The group commits past the first ten.
        within(60, app(&format!("{}::earlier", module_path!())).run())
            .await
            .unwrap();

        let one = app(&format!("{}::first", module_path!()));
        let two = app(&format!("{}::second", module_path!()));
        let (h1, h2) = (one.handle(), two.handle());
        let r1 = tokio::spawn(one.run());
        let r2 = tokio::spawn(two.run());
        let state = || {
            (
                first::INPUT.assignment(),
                second::INPUT.assignment(),
                SEEN.len(),
            )
        };
        until_or(
            90,
            || first::INPUT.assignment().len() == 1 && second::INPUT.assignment().len() == 1,
            state,
        )
        .await;
        for i in 0..100 {
            first::INPUT
                .send(format!("key{i}"), format!("new{i}"))
                .await
                .unwrap();
        }
        until_or(60, || SEEN.starting_with("new").len() >= 100, state).await;
        // Read from the beginning, past the group's commits: the first ten again.
        let old = || {
            let seen: std::collections::BTreeSet<String> =
                SEEN.starting_with("old").into_iter().collect();
            seen.len()
        };
        until_or(60, || old() == 10, || (state(), old())).await;
        h1.shutdown();
        h2.shutdown();
        within(30, r1).await.unwrap().unwrap();
        within(30, r2).await.unwrap().unwrap();
        let mut new = SEEN.starting_with("new");
        new.sort();
        new.dedup();
        assert_eq!(
            SEEN.starting_with("new").len(),
            100,
            "each new message once: the instances share the partitions"
        );
        assert_eq!(new.len(), 100);
    }
}
