//! Run with: cargo run --example yield
//!
//! Generator-style handlers send zero or more values with `emit!`. Prints:
//! ```text
//! zero: 0
//! even: 0
//! even: 2
//! even: 4
//! ```

use futures::stream::{self, Stream};
use slipstream::prelude::*;

fn numbers() -> impl Stream<Item = u64> {
    stream::iter(0..5)
}

#[handle(source = numbers(), sink = [print])]
fn evens(n: u64) {
    if n == 0 {
        emit!(format!("zero: {n}"));
    }
    if n.is_multiple_of(2) {
        emit!(format!("even: {n}"));
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
