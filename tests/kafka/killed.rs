//! A child process running a topic → handler → proxy → handler → topic pipeline is killed with
//! SIGKILL midway, while messages sit in the proxy between the two handlers, and restarted:
//! every input message reaches the output at least once.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::LazyLock;
use std::time::{Duration, Instant};

use slipstream::prelude::*;
use slipstream::{Message, Topic};

use crate::broker::{create, read_all, servers, topic, unique};

const N: usize = 1000;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_default()
}

static INPUT: LazyLock<Topic> =
    LazyLock::new(|| topic(&env("KILL_TEST_INPUT"), "killed-pipeline").stop_at_end(true));
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| topic(&env("KILL_TEST_OUTPUT"), "writer"));

static BETWEEN: LazyLock<Proxy<(String, String)>> = LazyLock::new(Proxy::new);

/// Fast: the proxy's buffer in front of the slow `forward` fills up.
#[handle(source = INPUT, sink = [BETWEEN])]
fn pass(msg: Message<String, String>) -> (String, String) {
    (msg.key.unwrap_or_default(), msg.value)
}

#[handle(source = BETWEEN, sink = [OUTPUT])]
async fn forward(pair: (String, String)) -> (String, String) {
    tokio::time::sleep(Duration::from_millis(1)).await;
    println!("forwarded {}", pair.1);
    pair
}

/// The pipeline, when this binary runs as the child.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn child_pipeline() {
    if !crate::broker::run_as_child("KILL_TEST_INPUT", module_path!()).await {
        return;
    }
    println!("child done");
}

fn child(input: &str, output: &str) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "killed::child_pipeline",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("KILL_TEST_INPUT", input)
        .env("KILL_TEST_OUTPUT", output)
        .env("TEST_KAFKA_BROKER", servers())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipeline_killed_midway_loses_nothing_after_a_restart() {
    let (input, output) = (unique("kill-in"), unique("kill-out"));
    let producer: Topic = topic(&input, "writer");
    create(producer.name(), 3).await;
    create(&output, 3).await;
    for i in 0..N {
        producer
            .send(format!("k{i}"), format!("{i}"))
            .await
            .unwrap();
    }

    // First run: killed once it has forwarded about a third.
    let (input2, output2) = (input.clone(), output.clone());
    tokio::task::spawn_blocking(move || {
        let mut first = child(&input2, &output2);
        let lines = BufReader::new(first.stdout.take().unwrap()).lines();
        let mut forwarded = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        for line in lines.map_while(Result::ok) {
            forwarded += usize::from(line.contains("forwarded"));
            if forwarded >= N / 3 || Instant::now() > deadline {
                break;
            }
        }
        assert!(
            forwarded >= N / 3,
            "the first run forwarded only {forwarded}"
        );
        first.kill().unwrap(); // SIGKILL
        first.wait().unwrap();

        // Second run: picks up from the committed offsets and stops at the end of the input.
        let mut second = child(&input2, &output2);
        let out = BufReader::new(second.stdout.take().unwrap())
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>();
        let status = second.wait().unwrap();
        assert!(status.success(), "second run: {status:?}");
        assert!(out.iter().any(|l| l.contains("child done")));
    })
    .await
    .unwrap();

    let forwarded = read_all::<String, String>(&output).await;
    let distinct: BTreeSet<String> = forwarded.iter().map(|m| m.value.clone()).collect();
    assert_eq!(
        distinct.len(),
        N,
        "every input message reached the output ({} records in all)",
        forwarded.len()
    );
}
