//! Run with: cargo run --example acks
//!
//! A custom source that learns when each of its items is done: every job comes with an
//! acknowledgement that travels with it through `first`, the proxy and `second`. A job is done
//! once both handlers have finished with it; the one `second` fails on stops the application
//! (the default policy), and its source hears that it failed, so it could deliver it again.
//! Prints:
//! ```text
//! second: job 1
//! job 1 done
//! second: job 2
//! job 2 done
//! job 3 failed
//! run() returned: handler `second` failed: job 3 is broken
//! ```

use std::sync::LazyLock;

use futures::stream::{self, Stream};
use slipstream::prelude::*;
use slipstream::{Ack, Acknowledge, acked};

/// What the source does when a job is done with (a queue would delete or redeliver it).
struct Job(u32);

impl Acknowledge for Job {
    fn done(&self) {
        println!("job {} done", self.0);
    }

    fn failed(&self) {
        println!("job {} failed", self.0);
    }
}

fn jobs() -> impl Stream<Item = (u32, Ack)> {
    stream::iter((1..=3).map(|n| (n, Ack::new(Job(n)))))
}

static CHECKED: LazyLock<Proxy<u32>> = LazyLock::new(Proxy::new);

#[handle(source = acked(jobs()), sink = [CHECKED])]
fn first(job: u32) -> u32 {
    job
}

#[handle(source = CHECKED, sink = [print])]
fn second(job: u32) -> anyhow::Result<String> {
    anyhow::ensure!(job != 3, "job {job} is broken");
    Ok(format!("second: job {job}"))
}

#[tokio::main]
async fn main() {
    match slipstream::run().await {
        Ok(()) => println!("run() returned Ok"),
        Err(error) => println!("run() returned: {error}"),
    }
}
