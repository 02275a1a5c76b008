//! Run with: cargo run --example hello
//!
//! Prints, one per line and in order:
//! ```text
//! Hello 🏆!
//! Hello 📞!
//! Hello 🐟!
//! Hello 👌!
//! ```

use futures::stream::{self, Stream};
use slipstream::prelude::*;

fn messages() -> impl Stream<Item = &'static str> {
    stream::iter(["🏆", "📞", "🐟", "👌"])
}

#[handle(source = messages(), sink = [print])]
fn hello(msg: &'static str) -> String {
    format!("Hello {msg}!")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?; // returns when every finite source is drained
    Ok(())
}
