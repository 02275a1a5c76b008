//! Pausing and resuming sources: nothing is delivered while paused, nothing is lost after.

use std::sync::LazyLock;
use std::time::Duration;

use futures::stream::{self, StreamExt};
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, until, within};

/// An endless stream of 0, 1, 2, ... one every millisecond.
fn counter() -> impl futures::Stream<Item = u64> {
    stream::iter(0..).then(|n| async move {
        tokio::time::sleep(Duration::from_millis(1)).await;
        n
    })
}

mod handler_input {
    use super::*;
    pub static OUT: Collected<u64> = Collected::new();

    #[handle(source = counter(), sink = [|n: u64| OUT.push(n)])]
    fn count(n: u64) -> u64 {
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_paused_handler_receives_nothing_and_loses_nothing() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());

        until(10, || OUT.len() >= 20).await;
        handle.pause("count").unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await; // let an in-flight item land
        let at_pause = OUT.len();
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(OUT.len(), at_pause, "nothing is delivered while paused");

        handle.resume("count").unwrap();
        until(10, || OUT.len() >= at_pause + 20).await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();

        let out = OUT.get();
        assert_eq!(
            out,
            (0..out.len() as u64).collect::<Vec<_>>(),
            "no item lost or repeated"
        );
        assert!(handle.pause("no_such_handler").is_err());
    }
}

mod paused_before_start {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();

    #[handle(source = stream::iter(0..100u32), sink = [|n: u32| OUT.push(n)])]
    fn held(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn a_handler_paused_before_the_run_starts_waits_for_resume() {
        let app = app(module_path!());
        let handle = app.handle();
        handle.pause("held").unwrap();
        let run = tokio::spawn(app.run());
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(OUT.is_empty());
        handle.resume("held").unwrap();
        within(10, run).await.unwrap().unwrap();
        assert_eq!(OUT.get(), (0..100).collect::<Vec<_>>());
    }
}

mod shared_handles {
    use super::*;

    static FEED: LazyLock<Proxy<u64>> = LazyLock::new(Proxy::new);
    static SHARED: LazyLock<Shared<u64>> = LazyLock::new(|| Shared::new(counter()));
    pub static FROM_PROXY: Collected<u64> = Collected::new();
    pub static FROM_SHARED: Collected<u64> = Collected::new();

    #[handle(source = counter(), sink = [FEED])]
    fn write(n: u64) -> u64 {
        n
    }

    #[handle(source = FEED, sink = [|n: u64| FROM_PROXY.push(n)])]
    fn read_proxy(n: u64) -> u64 {
        n
    }

    #[handle(source = SHARED, sink = [|n: u64| FROM_SHARED.push(n)])]
    fn read_shared(n: u64) -> u64 {
        n
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn proxies_and_shared_streams_pause_and_resume() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());

        until(10, || FROM_PROXY.len() >= 10 && FROM_SHARED.len() >= 10).await;
        FEED.pause();
        SHARED.pause();
        assert!(FEED.is_paused() && SHARED.is_paused());
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (proxy_at, shared_at) = (FROM_PROXY.len(), FROM_SHARED.len());
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(FROM_PROXY.len(), proxy_at);
        assert_eq!(FROM_SHARED.len(), shared_at);

        FEED.resume();
        SHARED.resume();
        until(10, || {
            FROM_PROXY.len() >= proxy_at + 10 && FROM_SHARED.len() >= shared_at + 10
        })
        .await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();

        for out in [FROM_PROXY.get(), FROM_SHARED.get()] {
            assert_eq!(out, (0..out.len() as u64).collect::<Vec<_>>());
        }
    }
}

mod merged_sources {
    use super::*;
    pub static OUT: Collected<u32> = Collected::new();

    #[handle(source = [stream::iter(0..50u32), stream::iter(100..150u32)], sink = [|n: u32| OUT.push(n)])]
    fn merged(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn resuming_wakes_every_source_of_a_handler() {
        let app = app(module_path!());
        let handle = app.handle();
        handle.pause("merged").unwrap();
        let run = tokio::spawn(app.run());
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(OUT.is_empty());
        handle.resume("merged").unwrap();
        within(10, run).await.unwrap().unwrap();
        let mut out = OUT.get();
        out.sort();
        assert_eq!(out, (0..50).chain(100..150).collect::<Vec<_>>());
    }
}

mod immediate {
    use super::*;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    pub static FED: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);
    /// What `slow` received, and whether the proxy was paused when it did.
    pub static RECEIVED: Mutex<Vec<(u32, bool)>> = Mutex::new(Vec::new());
    pub static WRITTEN: AtomicU32 = AtomicU32::new(0);
    pub static GO: tokio::sync::Notify = tokio::sync::Notify::const_new();
    pub static FIRST: tokio::sync::Notify = tokio::sync::Notify::const_new();

    #[handle(source = stream::iter(0..1000u32), sink = [FED])]
    fn write(n: u32) -> u32 {
        WRITTEN.fetch_add(1, Ordering::SeqCst);
        n
    }

    /// Holds its first item until told to go, so that the items behind it fill its buffer.
    #[handle(source = FED)]
    async fn slow(n: u32) {
        RECEIVED.lock().unwrap().push((n, FED.is_paused()));
        if n == 0 {
            FIRST.notify_one();
            GO.notified().await;
        }
    }

    // One thread: while the test task yields, the handlers run, so a leak would show.
    #[tokio::test(flavor = "current_thread")]
    async fn a_paused_source_delivers_nothing_more_even_from_a_full_buffer() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());

        FIRST.notified().await;
        // The writer blocks once the buffers between it and `slow` are full: hundreds of items
        // wait for `slow`.
        let mut last = 0;
        loop {
            for _ in 0..50 {
                tokio::task::yield_now().await;
            }
            let written = WRITTEN.load(Ordering::SeqCst);
            if written == last {
                break;
            }
            last = written;
        }
        assert!(last > 200, "only {last} written");
        FED.pause();
        GO.notify_one();
        for _ in 0..200 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            RECEIVED.lock().unwrap().len(),
            1,
            "nothing reaches the paused handler"
        );

        FED.resume();
        until(10, || RECEIVED.lock().unwrap().len() == 1000).await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        let received = RECEIVED.lock().unwrap().clone();
        assert!(
            received.iter().all(|(_, paused)| !paused),
            "delivered while paused"
        );
        assert_eq!(
            received.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
            (0..1000).collect::<Vec<_>>(),
            "every item, in order"
        );
    }
}
