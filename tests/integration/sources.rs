//! Several sources into one handler, fan-out of shared sources, timers.

use std::sync::LazyLock;
use std::time::Duration;

use futures::stream;
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

mod merged {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();

    #[handle(source = [stream::iter(0..100u32), stream::iter(1000..1100u32), stream::iter(5000..5001u32)],
             sink = [|n: u32| OUT.push(n)])]
    fn both(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn several_sources_feed_one_handler() {
        within(10, app(module_path!()).run()).await.unwrap();
        let out = OUT.get();
        assert_eq!(out.len(), 201);
        // Each source's own order is kept.
        let low: Vec<_> = out.iter().copied().filter(|n| *n < 1000).collect();
        let high: Vec<_> = out
            .iter()
            .copied()
            .filter(|n| (1000..5000).contains(n))
            .collect();
        assert_eq!(low, (0..100).collect::<Vec<_>>());
        assert_eq!(high, (1000..1100).collect::<Vec<_>>());
        assert!(out.contains(&5000));
    }
}

mod fan_out {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    static POLLED: AtomicUsize = AtomicUsize::new(0);

    /// Counts how often the underlying stream is read, to prove it is read once.
    static NUMBERS: LazyLock<Shared<u64>> = LazyLock::new(|| {
        Shared::new(stream::iter(0..1000u64).inspect(|_| {
            POLLED.fetch_add(1, Ordering::SeqCst);
        }))
    });
    use futures::StreamExt;

    pub static DOUBLED: Collected<u64> = Collected::new();
    pub static SQUARED: Collected<u64> = Collected::new();
    pub static ALSO: Collected<u64> = Collected::new();

    #[handle(source = NUMBERS, sink = [|n: u64| DOUBLED.push(n)])]
    fn double(n: u64) -> u64 {
        n * 2
    }

    #[handle(source = NUMBERS, sink = [|n: u64| SQUARED.push(n)])]
    async fn square(n: u64) -> u64 {
        if n.is_multiple_of(100) {
            // A slow sibling: the other handlers wait for it (bounded buffers) but lose nothing.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n * n
    }

    #[handle(source = [NUMBERS, stream::iter([7777u64])], sink = [|n: u64| ALSO.push(n)])]
    fn also(n: u64) -> u64 {
        n
    }

    #[tokio::test]
    async fn a_shared_source_is_read_once_and_every_item_reaches_every_handler() {
        within(20, app(module_path!()).run()).await.unwrap();
        assert_eq!(POLLED.load(Ordering::SeqCst), 1000);
        assert_eq!(DOUBLED.get(), (0..1000).map(|n| n * 2).collect::<Vec<_>>());
        assert_eq!(SQUARED.get(), (0..1000).map(|n| n * n).collect::<Vec<_>>());
        let also = ALSO.get();
        assert_eq!(also.len(), 1001);
        assert_eq!(
            also.iter()
                .copied()
                .filter(|n| *n != 7777)
                .collect::<Vec<_>>(),
            (0..1000).collect::<Vec<_>>()
        );
    }
}

mod plain_streams {
    use super::*;
    pub static A: Collected<u8> = Collected::new();
    pub static B: Collected<u8> = Collected::new();

    fn letters() -> impl futures::Stream<Item = u8> {
        stream::iter(*b"abc")
    }

    #[handle(source = letters(), sink = [|c: u8| A.push(c)])]
    fn first(c: u8) -> u8 {
        c
    }

    #[handle(source = letters(), sink = [|c: u8| B.push(c)])]
    fn second(c: u8) -> u8 {
        c
    }

    #[tokio::test]
    async fn a_stream_expression_is_evaluated_per_handler() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(A.get(), b"abc");
        assert_eq!(B.get(), b"abc");
    }
}

mod timers {
    use super::*;
    use tokio::time::Instant;
    pub static TICKS: Collected<Instant> = Collected::new();

    #[handle(source = timer(Duration::from_millis(200)), sink = [|t: Instant| TICKS.push(t)])]
    fn tick(at: Instant) -> Instant {
        at
    }

    #[tokio::test]
    async fn a_timer_ticks_at_once_then_every_period_until_shutdown() {
        let started = Instant::now();
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        slipstream_tests::until(10, || TICKS.len() >= 4).await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        let ticks = TICKS.get();
        assert!(
            ticks[0] - started < Duration::from_millis(100),
            "the first tick comes at once"
        );
        for pair in ticks.windows(2) {
            let gap = pair[1] - pair[0];
            assert!(
                gap >= Duration::from_millis(195),
                "ticks are a period apart: {gap:?}"
            );
        }
    }
}
