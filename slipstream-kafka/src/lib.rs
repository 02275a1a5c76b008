//! Kafka topics for [slipstream](https://docs.rs/slipstream): [`Topic`] as a handler source
//! and sink, and on its own; its settings ([`Conf`]) and codecs ([`Codec`]).
//!
//! Applications usually reach these through the `kafka` feature of the `slipstream` crate
//! (`slipstream::Topic`); depending on this crate directly gives the same types.

#![warn(missing_docs)]

mod client;
mod codec;
mod conf;
mod consume;
mod exactly_once;
mod fatal;
mod message;
mod produce;
mod state;
mod topic;

pub use client::{EMBEDDED, embedded_address};
pub use codec::{Codec, DefaultCodec, JsonCodec, Nullable, Raw, Utf8};
pub use conf::Conf;
pub use consume::{StartAt, TopicStream};
pub use message::{Message, Record};
pub use produce::{TopicSink, dead_letter};
pub use topic::Topic;

#[cfg(test)]
mod layering {
    /// The layers, bottom to top: each folder may name those before it, never one after it.
    /// A lower layer that must call up does it through a trait it owns (`Member`,
    /// `RebalanceListener`).
    const LAYERS: [&str; 6] = [
        "client",
        "exactly_once",
        "produce",
        "consume",
        "state",
        "topic",
    ];

    /// Every file of the crate but lib.rs, with its text.
    const FILES: &[(&str, &str)] = &[
        ("conf.rs", include_str!("conf.rs")),
        ("codec.rs", include_str!("codec.rs")),
        ("message.rs", include_str!("message.rs")),
        ("fatal.rs", include_str!("fatal.rs")),
        ("client/admin.rs", include_str!("client/admin.rs")),
        ("client/config.rs", include_str!("client/config.rs")),
        ("client/connect.rs", include_str!("client/connect.rs")),
        ("client/embedded.rs", include_str!("client/embedded.rs")),
        ("client/link.rs", include_str!("client/link.rs")),
        ("client/log.rs", include_str!("client/log.rs")),
        ("client/mod.rs", include_str!("client/mod.rs")),
        (
            "exactly_once/failure.rs",
            include_str!("exactly_once/failure.rs"),
        ),
        ("exactly_once/gate.rs", include_str!("exactly_once/gate.rs")),
        (
            "exactly_once/instance.rs",
            include_str!("exactly_once/instance.rs"),
        ),
        (
            "exactly_once/limits.rs",
            include_str!("exactly_once/limits.rs"),
        ),
        (
            "exactly_once/member.rs",
            include_str!("exactly_once/member.rs"),
        ),
        ("exactly_once/mod.rs", include_str!("exactly_once/mod.rs")),
        (
            "exactly_once/recorded.rs",
            include_str!("exactly_once/recorded.rs"),
        ),
        (
            "exactly_once/transactions.rs",
            include_str!("exactly_once/transactions.rs"),
        ),
        (
            "produce/dead_letter.rs",
            include_str!("produce/dead_letter.rs"),
        ),
        ("produce/mod.rs", include_str!("produce/mod.rs")),
        ("produce/producer.rs", include_str!("produce/producer.rs")),
        ("produce/sink.rs", include_str!("produce/sink.rs")),
        ("consume/commit.rs", include_str!("consume/commit.rs")),
        ("consume/listener.rs", include_str!("consume/listener.rs")),
        ("consume/mod.rs", include_str!("consume/mod.rs")),
        ("consume/rebalance.rs", include_str!("consume/rebalance.rs")),
        ("consume/report.rs", include_str!("consume/report.rs")),
        ("consume/running.rs", include_str!("consume/running.rs")),
        ("consume/start.rs", include_str!("consume/start.rs")),
        ("consume/stream.rs", include_str!("consume/stream.rs")),
        (
            "consume/topic_stream.rs",
            include_str!("consume/topic_stream.rs"),
        ),
        ("consume/tracker.rs", include_str!("consume/tracker.rs")),
        ("state/changelog.rs", include_str!("state/changelog.rs")),
        ("state/followers.rs", include_str!("state/followers.rs")),
        ("state/mod.rs", include_str!("state/mod.rs")),
        ("state/progress.rs", include_str!("state/progress.rs")),
        ("state/replica.rs", include_str!("state/replica.rs")),
        ("state/restore.rs", include_str!("state/restore.rs")),
    ];

    /// Inside each folder, its files bottom to top: each may name those before it (through
    /// `super::`), never one after it.
    const FOLDERS: [(&str, &[&str]); 5] = [
        (
            "client",
            &["log", "embedded", "link", "config", "connect", "admin"],
        ),
        (
            "exactly_once",
            &[
                "limits",
                "member",
                "gate",
                "recorded",
                "transactions",
                "failure",
                "instance",
            ],
        ),
        ("produce", &["producer", "sink", "dead_letter"]),
        (
            "consume",
            &[
                "start",
                "listener",
                "commit",
                "tracker",
                "rebalance",
                "running",
                "report",
                "stream",
                "topic_stream",
            ],
        ),
        (
            "state",
            &["progress", "replica", "restore", "changelog", "followers"],
        ),
    ];

    /// The lines of `text` that are code (not comments), numbered from 1.
    fn code(text: &str) -> impl Iterator<Item = (usize, &str)> {
        text.lines()
            .enumerate()
            .map(|(n, line)| (n + 1, line.trim_start()))
            .filter(|(_, line)| !line.starts_with("//"))
    }

    /// Whether `line` names module `name` through `prefix` (`super::name`, not `super::names`).
    fn names(line: &str, prefix: &str, name: &str) -> bool {
        let path = format!("{prefix}{name}");
        line.match_indices(&path).any(|(at, _)| {
            !line[at + path.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
        })
    }

    #[test]
    fn no_file_names_a_sibling_above_it() {
        for (folder, order) in FOLDERS {
            for (level, file) in order.iter().enumerate() {
                let path = format!("{folder}/{file}.rs");
                let (_, text) = FILES
                    .iter()
                    .find(|(p, _)| *p == path)
                    .unwrap_or_else(|| panic!("{path} is not in FILES"));
                for (n, line) in code(text) {
                    for upper in &order[level + 1..] {
                        assert!(
                            !names(line, "super::", upper),
                            "{path}:{n}: names `{upper}`, a file above it in {folder}/: {line}"
                        );
                    }
                }
            }
            let listed = FILES
                .iter()
                .filter(|(p, _)| p.starts_with(&format!("{folder}/")) && !p.ends_with("/mod.rs"))
                .count();
            assert_eq!(listed, order.len(), "every file of {folder}/ has its place");
        }
    }

    #[test]
    fn no_module_names_a_layer_above_it() {
        let files = FILES;
        for (path, text) in files {
            // Files beside lib.rs sit below every layer.
            let level = LAYERS
                .iter()
                .position(|layer| path.starts_with(&format!("{layer}/")))
                .map_or(0, |level| level + 1);
            for (n, line) in code(text) {
                assert!(
                    !line.contains("super::super"),
                    "{path}:{n}: reaches past its folder's face: {line}"
                );
                for upper in &LAYERS[level..] {
                    assert!(
                        !names(line, "crate::", upper),
                        "{path}:{n}: names `{upper}`, a layer above it: {line}"
                    );
                }
            }
        }
    }
}
