//! Kafka topics for [slipstream](https://docs.rs/slipstream): [`Topic`] as a handler source
//! and sink, and on its own; its settings ([`Conf`]) and codecs ([`Codec`]).
//!
//! Applications usually reach these through the `kafka` feature of the `slipstream` crate
//! (`slipstream::Topic`); depending on this crate directly gives the same types.

#![warn(missing_docs)]

mod admin;
mod changelog;
mod client;
mod codec;
mod conf;
mod consumer;
pub mod dead_letter;
mod embedded;
mod fatal;
mod link;
mod log;
mod message;
mod producer;
mod replica;
mod start;
mod topic;
mod tracker;
mod transaction;

pub use codec::{Codec, DefaultCodec, JsonCodec, Nullable, Raw, Utf8};
pub use conf::Conf;
pub use embedded::{EMBEDDED, embedded_address};
pub use message::{Message, Record};
pub use producer::TopicSink;
pub use start::StartAt;
pub use topic::{Topic, TopicStream};

#[cfg(test)]
mod layering {
    /// Imports go down the layers only: the clients and shared helpers at the bottom; the
    /// transactions; producing; consuming; the state that follows partitions; the topic on top.
    /// A lower layer that must call up does it through a trait it owns (`Member`,
    /// `RebalanceListener`).
    #[test]
    fn no_module_names_one_above_it() {
        const ABOVE_CLIENTS: [&str; 8] = [
            "transaction",
            "producer",
            "dead_letter",
            "tracker",
            "consumer",
            "replica",
            "changelog",
            "topic",
        ];
        let rules: [(&str, &str, &[&str]); 13] = [
            ("admin", include_str!("admin.rs"), &ABOVE_CLIENTS),
            ("client", include_str!("client.rs"), &ABOVE_CLIENTS),
            ("conf", include_str!("conf.rs"), &ABOVE_CLIENTS),
            ("embedded", include_str!("embedded.rs"), &ABOVE_CLIENTS),
            ("link", include_str!("link.rs"), &ABOVE_CLIENTS),
            ("log", include_str!("log.rs"), &ABOVE_CLIENTS),
            ("start", include_str!("start.rs"), &ABOVE_CLIENTS),
            (
                "transaction",
                include_str!("transaction.rs"),
                &ABOVE_CLIENTS[1..],
            ),
            ("producer", include_str!("producer.rs"), &ABOVE_CLIENTS[2..]),
            (
                "dead_letter",
                include_str!("dead_letter.rs"),
                &ABOVE_CLIENTS[3..],
            ),
            ("tracker", include_str!("tracker.rs"), &ABOVE_CLIENTS[4..]),
            ("consumer", include_str!("consumer.rs"), &ABOVE_CLIENTS[5..]),
            ("replica", include_str!("replica.rs"), &ABOVE_CLIENTS[6..]),
        ];
        for (module, text, above) in rules {
            for (n, line) in text.lines().enumerate() {
                let code = line.trim_start();
                if code.starts_with("//") {
                    continue;
                }
                for upper in above {
                    for path in [format!("crate::{upper}"), format!("super::{upper}")] {
                        assert!(
                            !code.contains(&path),
                            "{module}.rs:{}: names `{upper}`, a layer above it: {line}",
                            n + 1
                        );
                    }
                }
            }
        }
    }
}
