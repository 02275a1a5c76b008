//! Run with: cargo run --example conf
//!
//! Global defaults with `Conf::set`, per-topic settings on top, secrets hidden when displayed.
//! A topic starts from the global defaults as they are when it is created. Prints:
//! ```text
//! {bootstrap.servers: "localhost:29092", group.id: "default-demo"}
//! {bootstrap.servers: "localhost:29091", group.id: "demo", sasl.mechanism: "PLAIN", sasl.password: "********", sasl.username: "myuser", security.protocol: "SASL_SSL"}
//! ```
//! (`SLIPSTREAM_*` environment variables such as `SLIPSTREAM_BOOTSTRAP_SERVERS` would override
//! both.)

use slipstream_kafka::{Conf, Topic};

fn main() {
    Conf::set([
        ("bootstrap_servers", "localhost:29091"),
        ("group_id", "default-demo"),
    ]);

    let topic1: Topic = Topic::new("emoji").conf([("bootstrap_servers", "localhost:29092")]);

    Conf::set([
        ("security_protocol", "SASL_SSL"),
        ("sasl_mechanism", "PLAIN"),
        ("sasl_plain_username", "myuser"),
        ("sasl_plain_password", "mypass"),
    ]);

    let topic2: Topic = Topic::new("conf").conf([("group_id", "demo")]);

    println!("{}", topic1.effective_conf());
    println!("{}", topic2.effective_conf());
}
