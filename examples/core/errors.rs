//! Run with: cargo run --example errors
//!
//! No failed item is lost silently. A handler with `on_error = "skip"` logs (on standard error,
//! with the handler's name) and counts an item it returns `Err` or panics on, and goes on with
//! the next item. By default (`stop`) a failure stops the application before the item is
//! acknowledged, and `run()` returns its error; `retry = N` tries the item again first. Prints
//! on standard output:
//! ```text
//! parsed 1
//! parsed 3
//! checked 1
//! run() returned: handler `checked` failed: 7 is too large
//! ```
//! while standard error logs the failures of `parsed` (for "two" and the panic on "") and the
//! two retries of `checked` on 7.

use futures::StreamExt;
use futures::stream::{self, Stream};
use slipstream::prelude::*;
use tokio::sync::Notify;

/// Notified once `parsed` has handled every word (so that the output's order is fixed).
static PARSED_ALL: Notify = Notify::const_new();

fn words() -> impl Stream<Item = &'static str> {
    // The handler asks for the item after "3" once it has printed "parsed 3".
    let done = stream::once(async { PARSED_ALL.notify_one() }).filter_map(|()| async { None });
    stream::iter(["1", "two", "", "3"]).chain(done)
}

/// Fails on "two" (and is logged), panics on "" (and is logged), goes on after both.
#[handle(source = words(), sink = [print], on_error = "skip")]
fn parsed(word: &'static str) -> Result<String, std::num::ParseIntError> {
    if word.is_empty() {
        panic!("an empty word");
    }
    Ok(format!("parsed {}", word.parse::<u32>()?))
}

fn numbers() -> impl Stream<Item = u32> {
    stream::once(PARSED_ALL.notified())
        .flat_map(|()| stream::iter([1, 7]))
        .chain(stream::pending())
}

/// Starts once `parsed` is done; tries a failing item twice more, then stops the whole
/// application (the default policy; its source would never end otherwise).
#[handle(source = numbers(), sink = [print], retry = 2, backoff_ms = 10)]
async fn checked(n: u32) -> anyhow::Result<String> {
    anyhow::ensure!(n < 5, "{n} is too large");
    Ok(format!("checked {n}"))
}

#[tokio::main]
async fn main() {
    match slipstream::run().await {
        Ok(()) => println!("run() returned Ok"),
        Err(error) => println!("run() returned: {error}"),
    }
}
