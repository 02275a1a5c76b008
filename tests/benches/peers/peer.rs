//! Run with: bash tests/benches/peers/run.sh (it builds this program and runs it)
//!
//! The Rust systems of the side-by-side bench (`tests/benches/peers/`), with the command line
//! every peer program of that bench takes:
//!
//! ```text
//! peer SYSTEM KIND BOOT IN OUT GROUP [eos]
//! ```
//!
//! - SYSTEM `slipstream`: a handler reading IN and writing OUT, as a user would write it;
//!   `pipelined`: a hand-written rdkafka loop that enqueues every output without waiting for
//!   the broker (at most 10,000 in flight) and lets librdkafka commit the offsets it stored;
//!   `awaiting`: the same loop waiting for each output's acknowledgement before the next record.
//! - KIND `upper`: each value upper-cased; `count`: each key's running count (the hand-written
//!   loops keep it in a `HashMap`, slipstream in a cache that follows IN's partitions).
//! - `eos`: exactly-once (slipstream only).
//!
//! Runs until SIGTERM or SIGINT; prints `FIRST <Unix time in ms>` on standard error when it
//! handles its first record.

use std::collections::{HashMap, VecDeque};
use std::sync::{LazyLock, Once, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use rdkafka::consumer::{Consumer as _, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientConfig, Message as _};
use slipstream::prelude::*;
use slipstream::{Cache, Message, StartAt, Topic};

/// The command line.
struct Args {
    system: String,
    kind: String,
    servers: String,
    input: String,
    output: String,
    group: String,
    eos: bool,
}

static ARGS: OnceLock<Args> = OnceLock::new();

fn args() -> &'static Args {
    ARGS.get().expect("the command line is read first")
}

/// Says when the first record was handled.
fn first() {
    static FIRST: Once = Once::new();
    FIRST.call_once(|| {
        let ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis();
        eprintln!("FIRST {ms}");
    });
}

fn conf() -> Vec<(&'static str, String)> {
    let a = args();
    let guarantee = if a.eos {
        "exactly_once"
    } else {
        "at_least_once"
    };
    vec![
        ("bootstrap.servers", a.servers.clone()),
        ("group.id", a.group.clone()),
        ("processing.guarantee", guarantee.to_owned()),
    ]
}

static INPUT: LazyLock<Topic> = LazyLock::new(|| {
    Topic::new(args().input.clone())
        .conf(conf())
        .start(StartAt::Beginning)
});
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| Topic::new(args().output.clone()).conf(conf()));
static COUNTS: LazyLock<Cache<String, u64>> = LazyLock::new(|| {
    let dir = std::env::temp_dir().join(format!("peer-slipstream-{}", args().group));
    let _ = std::fs::remove_dir_all(&dir);
    Cache::open(dir.join("counts")).unwrap().follow(&INPUT)
});

#[handle(source = INPUT, sink = [OUTPUT])]
fn upper(msg: Message<String, String>) -> (String, String) {
    first();
    (msg.key.unwrap_or_default(), msg.value.to_uppercase())
}

#[handle(source = INPUT, sink = [OUTPUT])]
fn count(msg: Message<String, String>) -> Result<(String, String), slipstream::Error> {
    first();
    let key = msg.key.unwrap_or_default();
    let n = COUNTS.get(&key)?.unwrap_or(0) + 1;
    COUNTS.put(&key, &n)?;
    Ok((key, n.to_string()))
}

/// The hand-written loop: subscribe, transform, produce (waiting for each acknowledgement when
/// `awaiting`), store the offset for librdkafka's automatic commit; until a signal.
async fn by_hand(awaiting: bool) -> anyhow::Result<()> {
    let a = args();
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &a.servers)
        .set("group.id", &a.group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = config.create()?;
    consumer.subscribe(&[&a.input])?;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &a.servers)
        .create()?;
    let counting = a.kind == "count";
    let mut counts: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut pending = VecDeque::new();
    let stop = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::pin!(stop);
    loop {
        let msg = tokio::select! {
            _ = &mut stop => break,
            _ = term.recv() => break,
            msg = consumer.recv() => msg?,
        };
        first();
        let key = msg.key().unwrap_or_default().to_vec();
        let value = if counting {
            let n = counts.entry(key.clone()).or_default();
            *n += 1;
            n.to_string()
        } else {
            std::str::from_utf8(msg.payload().unwrap_or_default())?.to_uppercase()
        };
        let record = FutureRecord::to(&a.output).key(&key).payload(&value);
        if awaiting {
            producer
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(e, _)| e)?;
        } else {
            pending.push_back(producer.send_result(record).map_err(|(e, _)| e)?);
            while pending.len() > 10_000 {
                pending.pop_front().unwrap().await?.map_err(|(e, _)| e)?;
            }
        }
        consumer.store_offset_from_message(&msg)?;
    }
    for delivery in pending {
        delivery.await?.map_err(|(e, _)| e)?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    // `cargo bench` passes `--bench`: not ours.
    let argv: Vec<String> = argv.into_iter().filter(|a| a != "--bench").collect();
    let [system, kind, servers, input, output, group, rest @ ..] = &argv[..] else {
        bail!("usage: peer slipstream|pipelined|awaiting upper|count BOOT IN OUT GROUP [eos]");
    };
    let eos = match rest {
        [] => false,
        [eos] if eos == "eos" => true,
        _ => bail!("the last argument may only be `eos`, not {rest:?}"),
    };
    if !matches!(kind.as_str(), "upper" | "count") {
        bail!("KIND is `upper` or `count`, not `{kind}`");
    }
    ARGS.set(Args {
        system: system.clone(),
        kind: kind.clone(),
        servers: servers.clone(),
        input: input.clone(),
        output: output.clone(),
        group: group.clone(),
        eos,
    })
    .ok()
    .context("the command line is read once")?;
    match (args().system.as_str(), eos) {
        ("slipstream", _) => {
            slipstream::App::new()
                .handlers([kind.as_str()])
                .logging(false)
                .run()
                .await?
        }
        ("pipelined" | "awaiting", false) => by_hand(system == "awaiting").await?,
        ("pipelined" | "awaiting", true) => bail!("the hand-written loops have no `eos` mode"),
        (other, _) => bail!("SYSTEM is slipstream, pipelined or awaiting, not `{other}`"),
    }
    Ok(())
}
