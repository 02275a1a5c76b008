//! The cache as a sink (stores and publishes each update) and as a source (the update feed),
//! and the feed's end.

use std::sync::LazyLock;

use futures::stream;
use slipstream::Cache;
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

use crate::TempDir;

static DIR: LazyLock<TempDir> = LazyLock::new(|| TempDir::new("feed"));
static SCORES: LazyLock<Cache<String, u32>> = LazyLock::new(|| Cache::open(DIR.path()).unwrap());
pub static UPDATES: Collected<(String, u32)> = Collected::new();

#[handle(source = stream::iter([("ann", 3u32), ("bob", 5), ("ann", 4)]), sink = [SCORES])]
fn score((name, points): (&'static str, u32)) -> (String, u32) {
    (name.to_owned(), points)
}

#[handle(source = SCORES, sink = [|u: (String, u32)| UPDATES.push(u)])]
fn updates(update: (String, u32)) -> (String, u32) {
    update
}

#[tokio::test]
async fn updates_through_the_sink_are_stored_and_fed_to_readers_and_the_feed_ends() {
    // The run returns: the feed ends when the only handler writing into it has finished.
    within(20, app(module_path!()).run()).await.unwrap();
    let expected: Vec<(String, u32)> =
        vec![("ann".into(), 3), ("bob".into(), 5), ("ann".into(), 4)];
    assert_eq!(UPDATES.get(), expected);
    assert_eq!(SCORES.get("ann").unwrap(), Some(4));
    assert_eq!(SCORES.get("bob").unwrap(), Some(5));
    // Direct writes are stored but not published.
    SCORES.put("cid", &1).unwrap();
    assert_eq!(UPDATES.len(), 3);
}
