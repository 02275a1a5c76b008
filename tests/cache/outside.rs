//! The cache fed from outside handlers (`Cache::send`): stored, and fed to the handlers reading
//! its update feed while the application runs.

use std::sync::LazyLock;

use slipstream::Cache;
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

use crate::TempDir;

static DIR: LazyLock<TempDir> = LazyLock::new(|| TempDir::new("feed-outside"));
static PRICES: LazyLock<Cache<String, u32>> = LazyLock::new(|| Cache::open(DIR.path()).unwrap());
pub static SEEN: Collected<(String, u32)> = Collected::new();

/// Reads the cache's update feed; nothing in this run writes into it but outside code.
#[handle(source = PRICES, sink = [|u: (String, u32)| SEEN.push(u)])]
fn price(update: (String, u32)) -> (String, u32) {
    update
}

#[tokio::test]
async fn a_cache_takes_updates_from_outside_handlers_stores_and_feeds_them() {
    let app = app(module_path!());
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    // Before the feed is wired, the value is stored all the same.
    PRICES.send("tea".into(), 3).await.unwrap();
    assert_eq!(PRICES.get("tea").unwrap(), Some(3));
    // Once the run reads the feed, the handler sees what is sent.
    while SEEN.is_empty() {
        PRICES.send("coffee".into(), 4).await.unwrap();
        tokio::task::yield_now().await;
    }
    handle.shutdown();
    within(10, run).await.unwrap().unwrap();
    assert!(SEEN.get().iter().all(|u| u == &("coffee".to_owned(), 4)));
    assert_eq!(PRICES.get("coffee").unwrap(), Some(4));
}
