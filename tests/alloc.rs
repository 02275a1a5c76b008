//! The path source → plain handler → sink makes no heap allocation per message, with or without
//! metrics (its own test binary: it installs a counting global allocator).

use std::sync::atomic::{AtomicUsize, Ordering};

use futures::stream;
use slipstream::prelude::*;
use slipstream_tests::CountingAllocator;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

const N: u64 = 100_000;
static SUM: AtomicUsize = AtomicUsize::new(0);

fn add(n: u64) {
    SUM.fetch_add(n as usize, Ordering::Relaxed);
}

#[handle(source = stream::iter(0..N), sink = [add])]
fn sync_plain(n: u64) -> Option<u64> {
    n.is_multiple_of(2).then_some(n)
}

#[handle(source = stream::iter(0..N), sink = [add])]
async fn async_plain(n: u64) -> u64 {
    n
}

#[handle(source = stream::iter(0..N), sink = [add])]
fn generator(n: u64) {
    emit!(n);
    emit!(n);
}

#[tokio::test]
async fn no_allocation_per_message() {
    // With metrics on too: counting and timing allocate nothing per message either.
    for (handler, metrics) in ["sync_plain", "async_plain", "generator"]
        .into_iter()
        .flat_map(|h| [(h, false), (h, true)])
    {
        let app = slipstream::App::new()
            .metrics(metrics)
            .handlers([handler])
            .signals(false)
            .logging(false);
        let before = CountingAllocator::allocations();
        app.run().await.unwrap();
        let allocated = CountingAllocator::allocations() - before;
        assert!(
            allocated < 100,
            "{handler} (metrics {metrics}): {allocated} allocations for {N} messages"
        );
    }
    assert!(SUM.load(Ordering::SeqCst) > 0);
}
