//! A topic read on its own (`Topic::stream`): closing the stream waits for its last commit, and
//! the embedded broker hands a restarted group its partitions quickly.

use std::time::{Duration, Instant};

use futures::StreamExt;
use slipstream::Topic;

use crate::broker::{create, topic, unique};

/// The values a consumer of `group` reads from topic `name`, closing its stream after `take` of
/// them (or at the end of the topic).
async fn read(name: &str, group: &str, take: usize) -> Vec<String> {
    let reader: Topic = topic(name, group).stop_at_end(true);
    let mut stream = reader.stream().expect("a consumer");
    let mut values = Vec::new();
    while values.len() < take {
        match stream.next().await {
            Some(message) => values.push(message.value),
            None => break,
        }
    }
    stream.close().await;
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_stream_has_committed_what_it_read() {
    let name = unique("stream-close");
    let writer: Topic = topic(&name, "writer");
    create(writer.name(), 1).await;
    for i in 0..6 {
        writer.send(i.to_string(), i.to_string()).await.unwrap();
    }
    let group = unique("stream-group");
    assert_eq!(read(&name, &group, 3).await, ["0", "1", "2"]);
    // The same group goes on from the commit `close` waited for.
    assert_eq!(read(&name, &group, 10).await, ["3", "4", "5"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_broker_gives_a_restarted_group_its_partitions_quickly() {
    // No group timings set: the embedded broker's own defaults apply.
    let name = unique("embedded-rejoin");
    let conf = [
        ("bootstrap.servers", "embedded".to_owned()),
        ("group.id", unique("rejoin")),
        ("auto.offset.reset", "earliest".to_owned()),
    ];
    let writer: Topic = Topic::new(&name).conf(conf.clone());
    writer.create(1).await.unwrap();
    for i in 0..2 {
        writer.send(i.to_string(), i.to_string()).await.unwrap();
    }
    let reader = |take| {
        let topic: Topic = Topic::new(&name).conf(conf.clone());
        async move {
            let mut stream = topic.stream().expect("a consumer");
            let mut values = Vec::new();
            while values.len() < take {
                values.push(stream.next().await.expect("a message").value);
            }
            stream.close().await;
            values
        }
    };
    assert_eq!(reader(1).await, ["0"]);
    let restarted = Instant::now();
    assert_eq!(reader(1).await, ["1"]);
    // librdkafka's default session timeout (45 s) would make the rejoin wait about that long.
    let waited = restarted.elapsed();
    assert!(waited < Duration::from_secs(30), "waited {waited:?}");
}
