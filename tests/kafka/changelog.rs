//! Start-up errors of a cache that follows a topic: a changelog whose partition count is not
//! the topic's, and a topic read without a group.

mod wrong_count {
    use std::sync::LazyLock;

    use slipstream::prelude::*;
    use slipstream::{Cache, Message, Topic};
    use slipstream_tests::{app, within};

    use crate::broker::{create, topic, unique};

    static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&unique("state-start-in"), "start-up"));
    static DIR: LazyLock<std::path::PathBuf> =
        LazyLock::new(|| std::env::temp_dir().join(unique("state-start")));
    static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
        Cache::open(DIR.join("counts"))
            .unwrap()
            .follow_with_changelog(&INPUT, format!("{}-changelog", INPUT.name()))
    });

    #[handle(source = INPUT, sink = [COUNTS])]
    fn count(msg: Message<String, String>) -> (String, u64) {
        (msg.value, 1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_changelog_with_another_partition_count_is_an_error() {
        create(INPUT.name(), 6).await;
        create(&format!("{}-changelog", INPUT.name()), 3).await;
        let error = within(60, app(module_path!()).run()).await.unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("has 3 partitions but") && message.contains("has 6"),
            "{message}"
        );
        let _ = std::fs::remove_dir_all(&*DIR);
    }
}

mod without_group {
    use std::sync::LazyLock;

    use slipstream::prelude::*;
    use slipstream::{Cache, Message, Topic};
    use slipstream_tests::{app, within};

    use crate::broker::{conf, create, unique};

    static UNGROUPED: LazyLock<Topic> = LazyLock::new(|| {
        let mut settings = conf("unused");
        settings.retain(|(key, _)| *key != "group.id");
        Topic::new(unique("state-ungrouped")).conf(settings)
    });
    static DIR: LazyLock<std::path::PathBuf> =
        LazyLock::new(|| std::env::temp_dir().join(unique("state-ungrouped")));
    static COUNTS: LazyLock<Cache<String, u64>> =
        LazyLock::new(|| Cache::open(DIR.join("counts")).unwrap().follow(&UNGROUPED));

    #[handle(source = UNGROUPED, sink = [COUNTS])]
    fn count(msg: Message<String, String>) -> (String, u64) {
        (msg.value, 1)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_topic_read_without_a_group_is_an_error() {
        create(UNGROUPED.name(), 2).await;
        let error = within(60, app(module_path!()).run()).await.unwrap_err();
        let message = error.to_string();
        assert!(message.contains("set its `group.id`"), "{message}");
        let _ = std::fs::remove_dir_all(&*DIR);
    }
}
