//! Run with: cargo run --example proxy
//!
//! A `Proxy` passes values between handlers: one handler writes into it (as a sink), another
//! reads from it (as a source). The run ends by itself: the proxy's feed ends when the handler
//! writing into it has finished. Prints:
//! ```text
//! Proxied 🏆!
//! Proxied 📞!
//! Proxied 🐟!
//! Proxied 👌!
//! ```

use std::sync::LazyLock;

use futures::stream::{self, Stream};
use slipstream::prelude::*;

static EMOJI: LazyLock<Proxy<&'static str>> = LazyLock::new(Proxy::new);

fn messages() -> impl Stream<Item = &'static str> {
    stream::iter(["🏆", "📞", "🐟", "👌"])
}

#[handle(source = messages(), sink = [EMOJI])]
fn forward(msg: &'static str) -> &'static str {
    msg
}

#[handle(source = EMOJI, sink = [print])]
fn proxied(msg: &'static str) -> String {
    format!("Proxied {msg}!")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
