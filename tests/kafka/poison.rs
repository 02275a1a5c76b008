//! A message that cannot be decoded is logged, counted, optionally dead-lettered, and the stream
//! goes on.

use std::sync::LazyLock;

use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{Collected, app, until, within};

use crate::broker::{create, read_all, topic, unique};

static NAME: LazyLock<String> = LazyLock::new(|| unique("poison"));
static DEAD: LazyLock<String> = LazyLock::new(|| unique("poison-dead"));
static INPUT: LazyLock<Topic> =
    LazyLock::new(|| topic(&NAME, "poison-group").dead_letter(DEAD.as_str()));
pub static SEEN: Collected<String> = Collected::new();

#[handle(source = INPUT, sink = [|v: String| SEEN.push(v)])]
fn text(msg: Message<String, String>) -> String {
    msg.value
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_is_counted_dead_lettered_and_skipped() {
    create(INPUT.name(), 1).await;
    create(&DEAD, 1).await;
    // Raw bytes that are not UTF-8, between two good messages.
    let raw: Topic<Vec<u8>, Vec<u8>> = topic(&NAME, "writer");
    INPUT.send("a", "first").await.unwrap();
    raw.send(b"bad".to_vec(), vec![0xff, 0xfe]).await.unwrap();
    INPUT.send("b", "second").await.unwrap();

    let app = app(module_path!());
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    until(60, || SEEN.len() >= 2).await;
    handle.shutdown();
    within(30, run).await.unwrap().unwrap();

    assert_eq!(SEEN.get(), ["first", "second"]);
    assert_eq!(INPUT.undecodable(), 1);
    let dead = read_all::<Vec<u8>, Vec<u8>>(&DEAD).await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some(&b"bad"[..]));
    assert_eq!(dead[0].value, vec![0xff, 0xfe]);
}
