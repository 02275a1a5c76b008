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

    #[test]
    fn no_module_names_a_layer_above_it() {
        let files: &[(&str, &str)] = &[
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
        for (path, text) in files {
            // Files beside lib.rs sit below every layer.
            let level = LAYERS
                .iter()
                .position(|layer| path.starts_with(&format!("{layer}/")))
                .map_or(0, |level| level + 1);
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                assert!(
                    !code.contains("super::super"),
                    "{path}:{}: reaches past its folder's face: {line}",
                    n + 1
                );
                for upper in &LAYERS[level..] {
                    assert!(
                        !code.contains(&format!("crate::{upper}")),
                        "{path}:{}: names `{upper}`, a layer above it: {line}",
                        n + 1
                    );
                }
            }
        }
    }
}
