//! Proxies: passing values between handlers, fan-out to several readers, termination.

use std::sync::LazyLock;

use futures::stream;
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, until, within};

mod chain {
    use super::*;

    static WORDS: LazyLock<Proxy<String>> = LazyLock::new(Proxy::new);
    static LENGTHS: LazyLock<Proxy<(String, usize)>> = LazyLock::new(Proxy::new);
    pub static OUT: Collected<(String, usize)> = Collected::new();
    pub static UPPER: Collected<String> = Collected::new();

    #[handle(source = stream::iter(["one", "three", "five"]), sink = [WORDS])]
    fn words(w: &'static str) -> String {
        w.to_string()
    }

    #[handle(source = WORDS, sink = [LENGTHS])]
    async fn lengths(w: String) -> (String, usize) {
        let n = w.len();
        (w, n)
    }

    #[handle(source = LENGTHS, sink = [|p: (String, usize)| OUT.push(p)])]
    fn collect(p: (String, usize)) -> (String, usize) {
        p
    }

    /// A second reader of the first proxy gets every value too.
    #[handle(source = WORDS, sink = [|w: String| UPPER.push(w)])]
    fn upper(w: String) -> String {
        w.to_uppercase()
    }

    #[tokio::test]
    async fn values_flow_through_a_chain_of_proxies_and_the_run_ends() {
        within(10, app(module_path!()).run()).await.unwrap();
        let expected: Vec<(String, usize)> =
            vec![("one".into(), 3), ("three".into(), 5), ("five".into(), 4)];
        assert_eq!(OUT.get(), expected);
        assert_eq!(UPPER.get(), ["ONE", "THREE", "FIVE"]);
    }
}

mod many_writers {
    use super::*;
    use std::time::Duration;

    static MERGED: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);
    pub static OUT: Collected<u32> = Collected::new();

    #[handle(source = stream::iter(0..50u32), sink = [MERGED])]
    fn fast(n: u32) -> u32 {
        n
    }

    #[handle(source = stream::iter(100..105u32), sink = [MERGED])]
    async fn slow(n: u32) -> u32 {
        tokio::time::sleep(Duration::from_millis(20)).await;
        n
    }

    #[handle(source = MERGED, sink = [|n: u32| OUT.push(n)])]
    fn read(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn the_feed_ends_only_when_every_writer_has_finished() {
        within(10, app(module_path!()).run()).await.unwrap();
        let mut out = OUT.get();
        out.sort();
        let mut expected: Vec<u32> = (0..50).collect();
        expected.extend(100..105);
        assert_eq!(out, expected);
    }
}

mod unwritten {
    use super::*;

    static NOBODY_WRITES: LazyLock<Proxy<u8>> = LazyLock::new(Proxy::new);
    pub static OUT: Collected<u8> = Collected::new();

    #[handle(source = NOBODY_WRITES, sink = [|n: u8| OUT.push(n)])]
    fn never(n: u8) -> u8 {
        n
    }

    /// Fed from outside handlers only (`Proxy::send`): it stays open until shutdown.
    #[tokio::test]
    async fn a_proxy_no_handler_writes_to_takes_values_until_shutdown() {
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        while NOBODY_WRITES.send(7).await.is_err() {
            tokio::task::yield_now().await;
        }
        until(10, || OUT.len() == 1).await;
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        assert_eq!(OUT.get(), [7]);
        assert!(matches!(
            NOBODY_WRITES.send(8).await,
            Err(slipstream::Error::NotRunning(_))
        ));
    }
}

mod sink_only {
    use super::*;

    static NOBODY_READS: LazyLock<Proxy<u8>> = LazyLock::new(Proxy::new);
    pub static SEEN: Collected<u8> = Collected::new();

    #[handle(source = stream::iter(0..200u8), sink = [NOBODY_READS])]
    fn write(n: u8) -> u8 {
        SEEN.push(n);
        n
    }

    #[tokio::test]
    async fn writing_into_a_proxy_nobody_reads_does_not_block() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(SEEN.len(), 200);
    }
}
