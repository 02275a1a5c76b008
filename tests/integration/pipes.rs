//! `pipe = [..]` stages between a source and its handler.

use futures::stream::{self, BoxStream, Stream, StreamExt};
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

pub static OUT: Collected<String> = Collected::new();

fn running_sum(s: BoxStream<'static, i64>) -> impl Stream<Item = i64> {
    s.scan(0, |acc, n| {
        *acc += n;
        futures::future::ready(Some(*acc))
    })
}

fn pairwise<T: Clone + Send + 'static>(s: BoxStream<'static, T>) -> impl Stream<Item = (T, T)> {
    s.scan(None::<T>, |prev, x| {
        futures::future::ready(Some(prev.replace(x.clone()).map(|p| (p, x))))
    })
    .filter_map(futures::future::ready)
}

#[handle(source = stream::iter([3i64, -1, 4, -1, 5]),
         pipe = [running_sum, pairwise, |s: BoxStream<'static, (i64, i64)>| s.map(|(a, b)| b - a)],
         sink = [|s: String| OUT.push(s)])]
fn diff(d: i64) -> String {
    format!("{d:+}")
}

#[tokio::test]
async fn stages_apply_in_order_before_the_handler() {
    within(10, app(module_path!()).run()).await.unwrap();
    // Running sums 3, 2, 6, 5, 10; pairwise differences -1, +4, -1, +5.
    assert_eq!(OUT.get(), ["-1", "+4", "-1", "+5"]);
}
