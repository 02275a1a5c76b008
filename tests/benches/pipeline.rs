//! Run with: cargo bench -p slipstream-tests --bench pipeline
//!
//! 1,000,000 integers through source → handler (filter + map) → counting sink, against the same
//! work done by a hand-written loop over the same stream, in the same run. Prints both
//! throughputs, their ratio, the framework's overhead per message in nanoseconds, and the heap
//! allocations the framework made per message; then the same with metrics on (`App::metrics`,
//! what the admin server turns on: counters and a processing-time histogram per handler).

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::{self, Stream};
use slipstream::prelude::*;
use slipstream_tests::CountingAllocator;

const N: u64 = 1_000_000;
const ROUNDS: usize = 7;

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

static COUNT: AtomicU64 = AtomicU64::new(0);

fn numbers() -> impl Stream<Item = u64> {
    stream::iter(0..N)
}

/// The work: drop multiples of 3, double the rest.
#[inline]
fn filter_map(n: u64) -> Option<u64> {
    (!n.is_multiple_of(3)).then_some(n * 2)
}

fn count(n: u64) {
    COUNT.fetch_add(black_box(n) & 1 | 1, Ordering::Relaxed);
}

#[handle(source = numbers(), sink = [count])]
fn pipeline(n: u64) -> Option<u64> {
    filter_map(n)
}

/// The same work, written by hand.
async fn baseline() {
    let mut numbers = std::pin::pin!(numbers());
    while let Some(n) = numbers.next().await {
        if let Some(out) = filter_map(n) {
            count(out);
        }
    }
}

async fn framework() {
    run(false).await;
}

async fn measured() {
    run(true).await;
}

async fn run(metrics: bool) {
    slipstream::App::new()
        .metrics(metrics)
        .handlers(["pipeline"])
        .signals(false)
        .logging(false)
        .run()
        .await
        .expect("the pipeline runs");
}

async fn timed<F: std::future::Future<Output = ()> + Send + 'static>(work: F) -> (Duration, usize) {
    COUNT.store(0, Ordering::SeqCst);
    let allocations = CountingAllocator::allocations();
    let started = Instant::now();
    tokio::spawn(work).await.unwrap();
    let elapsed = started.elapsed();
    let allocated = CountingAllocator::allocations() - allocations;
    assert_eq!(
        COUNT.load(Ordering::SeqCst),
        N - N.div_ceil(3),
        "every output was counted"
    );
    (elapsed, allocated)
}

#[tokio::main]
async fn main() {
    // Warm up both paths once.
    timed(baseline()).await;
    timed(framework()).await;

    let (mut base, mut fw, mut with_metrics) = (Vec::new(), Vec::new(), Vec::new());
    let mut allocations = usize::MAX;
    for _ in 0..ROUNDS {
        base.push(timed(baseline()).await.0);
        let (elapsed, allocated) = timed(framework()).await;
        fw.push(elapsed);
        allocations = allocations.min(allocated);
        with_metrics.push(timed(measured()).await.0);
    }
    base.sort();
    fw.sort();
    with_metrics.sort();
    let (base, fw, with_metrics) = (base[ROUNDS / 2], fw[ROUNDS / 2], with_metrics[ROUNDS / 2]);
    let rate = |d: Duration| N as f64 / d.as_secs_f64() / 1e6;
    println!("{N} integers, source -> filter+map -> counting sink (median of {ROUNDS} rounds)");
    println!(
        "hand-written loop : {:>8.1} M msg/s ({:?})",
        rate(base),
        base
    );
    println!("slipstream        : {:>8.1} M msg/s ({:?})", rate(fw), fw);
    println!(
        "ratio (slipstream / hand-written throughput): {:.2}",
        base.as_secs_f64() / fw.as_secs_f64()
    );
    println!(
        "framework overhead: {:.1} ns per message",
        (fw.as_secs_f64() - base.as_secs_f64()) * 1e9 / N as f64
    );
    println!(
        "with metrics on   : {:>8.1} M msg/s ({:?}), ratio {:.2}, overhead {:.1} ns per message",
        rate(with_metrics),
        with_metrics,
        base.as_secs_f64() / with_metrics.as_secs_f64(),
        (with_metrics.as_secs_f64() - base.as_secs_f64()) * 1e9 / N as f64
    );
    println!(
        "heap allocations during a framework run: {allocations} ({:.6} per message)",
        allocations as f64 / N as f64
    );
}
