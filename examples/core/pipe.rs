//! Run with: cargo run --example pipe
//!
//! `pipe = [..]` stages transform a handler's source before the handler sees it: here a
//! running sum, then a pairwise stage that hands the handler each (previous, current) pair.
//! Prints:
//! ```text
//! 1 -> 3 (+2)
//! 3 -> 6 (+3)
//! 6 -> 10 (+4)
//! 10 -> 15 (+5)
//! ```

use futures::stream::{self, BoxStream, Stream, StreamExt};
use slipstream::prelude::*;

fn numbers() -> impl Stream<Item = u64> {
    stream::iter(1..=5)
}

/// The running sum of a stream of numbers.
fn running_sum(numbers: BoxStream<'static, u64>) -> impl Stream<Item = u64> {
    numbers.scan(0, |total, n| {
        *total += n;
        futures::future::ready(Some(*total))
    })
}

/// Each item paired with the one before it (the first item only opens the first pair).
fn pairwise<T: Clone + Send + 'static>(items: BoxStream<'static, T>) -> impl Stream<Item = (T, T)> {
    items
        .scan(None::<T>, |previous, item| {
            let pair = previous.replace(item.clone()).map(|prev| (prev, item));
            futures::future::ready(Some(pair))
        })
        .filter_map(futures::future::ready)
}

#[handle(source = numbers(), pipe = [running_sum, pairwise], sink = [print])]
fn growth((before, after): (u64, u64)) -> String {
    format!("{before} -> {after} (+{})", after - before)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
