//! Acknowledgements: an item's ack travels with it through handlers, proxies and pipes, and its
//! source hears `done` once every holder has finished, `failed` if any failed or dropped it.

use std::sync::{LazyLock, Mutex};

use futures::stream::{self, Stream};
use slipstream::prelude::*;
use slipstream::{Ack, Acknowledge, acked};
use slipstream_tests::{app, within};

/// What a test source heard about its items, in order.
#[derive(Default)]
pub struct Heard(Mutex<Vec<String>>);

impl Heard {
    fn push(&self, line: String) {
        self.0.lock().unwrap().push(line);
    }

    pub fn get(&self) -> Vec<String> {
        let mut heard = self.0.lock().unwrap().clone();
        heard.sort();
        heard
    }
}

struct Item(u32, &'static Heard);

impl Acknowledge for Item {
    fn done(&self) {
        self.1.push(format!("{} done", self.0));
    }
    fn failed(&self) {
        self.1.push(format!("{} failed", self.0));
    }
}

fn items(n: u32, heard: &'static Heard) -> impl Stream<Item = (u32, Ack)> {
    stream::iter((0..n).map(move |i| (i, Ack::new(Item(i, heard)))))
}

fn lines(items: impl IntoIterator<Item = (u32, &'static str)>) -> Vec<String> {
    let mut lines: Vec<String> = items.into_iter().map(|(i, s)| format!("{i} {s}")).collect();
    lines.sort();
    lines
}

mod through_a_proxy {
    use super::*;
    pub static HEARD: Heard = Heard(Mutex::new(Vec::new()));
    pub static MIDDLE: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);
    pub static OUT: Mutex<Vec<u32>> = Mutex::new(Vec::new());

    #[handle(source = acked(items(4, &HEARD)), sink = [MIDDLE])]
    fn first(n: u32) -> u32 {
        n
    }

    /// Two readers of the proxy: an item is done once both are.
    #[handle(source = MIDDLE, sink = [|n: u32| OUT.lock().unwrap().push(n)])]
    fn second(n: u32) -> u32 {
        n
    }

    #[handle(source = MIDDLE, on_error = "skip")]
    fn third(n: u32) -> Result<(), String> {
        if n == 2 { Err("two".into()) } else { Ok(()) }
    }

    #[tokio::test]
    async fn an_item_is_done_once_every_handler_it_reached_is() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(*OUT.lock().unwrap(), [0, 1, 2, 3]);
        // `third` skips its failure on 2: acknowledged.
        assert_eq!(
            HEARD.get(),
            lines([(0, "done"), (1, "done"), (2, "done"), (3, "done")])
        );
    }
}

mod stopping {
    use super::*;
    pub static HEARD: Heard = Heard(Mutex::new(Vec::new()));
    pub static MIDDLE: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);

    #[handle(source = acked(items(300, &HEARD)), sink = [MIDDLE])]
    fn produce(n: u32) -> u32 {
        n
    }

    /// Stops on 5 (the default policy): 5 failed, and the items it never handled are not
    /// taken for handled.
    #[handle(source = MIDDLE)]
    fn fragile(n: u32) -> Result<(), String> {
        if n == 5 { Err("five".into()) } else { Ok(()) }
    }

    #[tokio::test]
    async fn a_failed_item_and_those_dropped_unhandled_are_not_done() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        assert_eq!(err.to_string(), "handler `fragile` failed: five");
        let heard = HEARD.get();
        for i in 0..5 {
            assert!(heard.contains(&format!("{i} done")), "{i}: {heard:?}");
        }
        assert!(heard.contains(&"5 failed".to_owned()), "{heard:?}");
        assert!(
            !heard
                .iter()
                .any(|h| h.ends_with("done")
                    && h.split(' ').next().unwrap().parse::<u32>().unwrap() > 5),
            "nothing after the failure is done: {heard:?}"
        );
    }
}

mod through_a_pipe {
    use super::*;
    use futures::StreamExt;
    use futures::stream::BoxStream;

    pub static HEARD: Heard = Heard(Mutex::new(Vec::new()));
    pub static OUT: Mutex<Vec<Vec<u32>>> = Mutex::new(Vec::new());

    fn evens_in_pairs(s: BoxStream<'static, u32>) -> impl Stream<Item = Vec<u32>> {
        s.filter(|n| std::future::ready(n % 2 == 0)).chunks(2)
    }

    #[handle(source = acked(items(7, &HEARD)), pipe = [evens_in_pairs], sink = [|v: Vec<u32>| OUT.lock().unwrap().push(v)])]
    fn pairs(pair: Vec<u32>) -> Vec<u32> {
        pair
    }

    #[tokio::test]
    async fn items_a_pipe_drops_or_batches_are_done_with_what_it_yields() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(*OUT.lock().unwrap(), [vec![0, 2], vec![4, 6]]);
        assert_eq!(HEARD.get(), lines((0..7).map(|i| (i, "done"))));
    }
}

mod from_outside {
    use super::*;
    pub static ORDERS: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);
    pub static OUT: Mutex<Vec<u32>> = Mutex::new(Vec::new());
    pub static RECEIVED: tokio::sync::Notify = tokio::sync::Notify::const_new();

    #[handle(source = ORDERS, sink = [|n: u32| { OUT.lock().unwrap().push(n); RECEIVED.notify_one(); }])]
    fn order(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn a_proxy_takes_values_from_outside_handlers_while_the_app_runs() {
        assert!(matches!(
            ORDERS.send(0).await,
            Err(slipstream::Error::NotRunning(_))
        ));
        let app = app(module_path!());
        let handle = app.handle();
        let run = tokio::spawn(app.run());
        // The proxy is wired once the app has started: retry until it takes the value.
        while ORDERS.send(1).await.is_err() {
            tokio::task::yield_now().await;
        }
        ORDERS.send(2).await.unwrap();
        while OUT.lock().unwrap().len() < 2 {
            RECEIVED.notified().await;
        }
        handle.shutdown();
        within(10, run).await.unwrap().unwrap();
        assert_eq!(*OUT.lock().unwrap(), [1, 2]);
    }
}

mod one_to_many {
    use super::*;
    use futures::StreamExt;
    use futures::stream::BoxStream;

    pub static HEARD: Heard = Heard(Mutex::new(Vec::new()));

    fn twice(s: BoxStream<'static, u32>) -> impl Stream<Item = (u32, u8)> {
        s.flat_map(|n| stream::iter([(n, 0), (n, 1)]))
    }

    /// Fails (and stops) on the second item made from 1: 1 fails, though its first copy was
    /// handled.
    #[handle(source = acked(items(3, &HEARD)), pipe = [twice])]
    fn copies(copy: (u32, u8)) -> Result<(), String> {
        if copy == (1, 1) {
            Err("second copy of 1".into())
        } else {
            Ok(())
        }
    }

    #[tokio::test]
    async fn every_item_a_pipe_makes_of_one_carries_its_ack() {
        let err = within(10, app(module_path!()).run()).await.unwrap_err();
        assert_eq!(err.to_string(), "handler `copies` failed: second copy of 1");
        assert_eq!(HEARD.get(), lines([(0, "done"), (1, "failed")]));
    }
}
