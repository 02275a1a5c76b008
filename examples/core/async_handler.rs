//! Run with: cargo run --example async-handler
//!
//! Handlers and sinks can be `async`. An async handler that uses `emit!` hands each value to
//! its sinks and waits for them before it goes on (back-pressure). Prints:
//! ```text
//! looked up 1: one
//! stored: one
//! looked up 2: two
//! stored: two
//! looked up 3: three
//! stored: three
//! ```

use std::time::Duration;

use futures::stream::{self, Stream};
use slipstream::prelude::*;

fn ids() -> impl Stream<Item = u32> {
    stream::iter([1, 2, 3])
}

/// Pretends to ask a remote service.
async fn lookup(id: u32) -> &'static str {
    tokio::time::sleep(Duration::from_millis(50)).await;
    ["zero", "one", "two", "three"][id as usize]
}

/// An async sink.
async fn store(name: String) {
    tokio::time::sleep(Duration::from_millis(10)).await;
    println!("stored: {name}");
}

#[handle(source = ids(), sink = [store])]
async fn names(id: u32) {
    let name = lookup(id).await;
    println!("looked up {id}: {name}");
    // `store` has printed `stored: ..` before the next line runs.
    emit!(name.to_string());
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
