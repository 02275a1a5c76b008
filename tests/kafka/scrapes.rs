//! Hundreds of concurrent `/metrics` scrapes while a topic → handler → topic pipeline runs on the
//! real broker: the pipeline's rate stays at least 0.8× that of the same pipeline unscraped
//! (measured in the same run, on the same input, each read by a group of its own), and its
//! consumer never leaves its group (one assignment, no revocation). The unscraped run goes
//! first, so the scraped one reads from a broker that has served the input once (its rate is
//! not lower for that). Ignored by default, as it measures a rate: `tests/run.sh` runs it alone
//! against the real broker. `SCRAPE_TEST_RECORDS` (100,000) and `SCRAPE_TEST_SCRAPERS` (500)
//! change its size.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use rdkafka::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer as _};
use slipstream::prelude::*;
use slipstream::{Message, Topic};
use slipstream_tests::{app, sample, serve, until, within};

use crate::broker::{create, servers, topic, unique};

fn setting(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

static NAMES: LazyLock<(String, String)> =
    LazyLock::new(|| (unique("scrapes-in"), unique("scrapes-out")));
static OUTPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAMES.1, "writer"));

macro_rules! pipeline {
    ($module:ident, $name:literal) => {
        pub mod $module {
            use super::*;

            pub static GROUP: LazyLock<String> = LazyLock::new(|| unique($name));
            pub static INPUT: LazyLock<Topic> = LazyLock::new(|| topic(&NAMES.0, &GROUP));
            pub static FORWARDED: AtomicUsize = AtomicUsize::new(0);
            /// When the first message reached the handler (the group joined).
            pub static FIRST: OnceLock<Instant> = OnceLock::new();

            #[handle(source = INPUT, sink = [OUTPUT], name = $name)]
            fn forward(msg: Message<String, String>) -> (String, String) {
                FIRST.get_or_init(Instant::now);
                FORWARDED.fetch_add(1, Ordering::Relaxed);
                (msg.key.unwrap_or_default(), msg.value)
            }
        }
    };
}

pipeline!(quiet1, "scrapes_quiet1");
pipeline!(scraped1, "scrapes_scraped1");
pipeline!(quiet2, "scrapes_quiet2");
pipeline!(scraped2, "scrapes_scraped2");
pipeline!(quiet3, "scrapes_quiet3");
pipeline!(scraped3, "scrapes_scraped3");

/// Runs the pipeline of module `$m`, scraped by `$scrapers` clients.
macro_rules! timed_run {
    ($m:ident, $scrapers:expr) => {
        timed(
            &format!("{}::{}", module_path!(), stringify!($m)),
            &$m::GROUP,
            &$m::FORWARDED,
            &$m::FIRST,
            $scrapers,
        )
        .await
    };
}

/// `GET /metrics` on a connection of its own: the status, or `None` when the connection failed.
async fn scrape(addr: std::net::SocketAddr) -> Option<u16> {
    use http_body_util::{BodyExt, Empty};
    use hyper::body::Bytes;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(connection);
    let request = hyper::Request::get("/metrics")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .ok()?;
    let response = sender.send_request(request).await.ok()?;
    let status = response.status().as_u16();
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// Runs a module's pipeline over every record, with `scrapers` clients scraping `/metrics`
/// meanwhile: how long it took from its first message to its last, how many times its
/// partitions were assigned or revoked, and how many scrapes were answered.
async fn timed(
    module: &str,
    group: &str,
    forwarded: &'static AtomicUsize,
    first: &'static OnceLock<Instant>,
    scrapers: usize,
) -> (Duration, f64, usize) {
    let records = setting("SCRAPE_TEST_RECORDS", 100_000);
    let (handle, run, addr) = serve(app(module).http("127.0.0.1:0")).await;
    let stop = Arc::new(AtomicBool::new(false));
    // Each scraper asks again as soon as it is answered, until the pipeline is done (and at
    // least once); it returns how many answers it had.
    let clients: Vec<_> = (0..scrapers)
        .map(|_| {
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let mut answered = 0;
                while answered == 0 || !stop.load(Ordering::Relaxed) {
                    // More clients than the server takes at once: the kernel's accept queue
                    // overflows and some connections are dropped; they ask again.
                    if let Some(status) = scrape(addr).await {
                        assert_eq!(status, 200);
                        answered += 1;
                    }
                }
                answered
            })
        })
        .collect();
    until(300, || forwarded.load(Ordering::Relaxed) >= records).await;
    let took = first.get().expect("a first message").elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut answered = 0;
    for client in clients {
        let answers: usize = within(60, client).await.unwrap();
        assert!(answers > 0, "every scraper was answered");
        answered += answers;
    }
    let metrics = handle.metrics().await;
    let labels = format!(r#"topic="{}",group="{group}""#, NAMES.0);
    let rebalances = sample(&metrics, "slipstream_topic_rebalances_total", &labels)
        .expect("the rebalance count");
    handle.shutdown();
    within(60, run).await.unwrap().unwrap();
    (took, rebalances, answered)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "measures a rate: run alone against the real broker (tests/run.sh does)"]
async fn concurrent_scrapes_do_not_slow_the_pipeline_or_cost_it_its_group() {
    assert!(
        crate::broker::is_real(),
        "runs against a real broker: set TEST_KAFKA_BROKER (tests/run.sh does)"
    );
    let records = setting("SCRAPE_TEST_RECORDS", 100_000);
    let scrapers = setting("SCRAPE_TEST_SCRAPERS", 500);
    create(&NAMES.0, 3).await;
    create(&NAMES.1, 3).await;
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", servers())
        .create()
        .unwrap();
    for i in 0..records {
        let (key, value) = (format!("k{i}"), i.to_string());
        let mut record = FutureRecord::to(&NAMES.0).key(&key).payload(&value);
        while let Err((_, returned)) = producer.send_result(record) {
            record = returned;
            producer.poll(Duration::from_millis(10));
        }
    }
    producer.flush(Duration::from_secs(120)).unwrap();

    // Three runs of each, alternating; the fastest of each kind are compared (a spike of
    // load from elsewhere on the machine slows one run, not every run).
    let mut quiet = Vec::new();
    let mut scraped = Vec::new();
    quiet.push(timed_run!(quiet1, 0));
    scraped.push(timed_run!(scraped1, scrapers));
    quiet.push(timed_run!(quiet2, 0));
    scraped.push(timed_run!(scraped2, scrapers));
    quiet.push(timed_run!(quiet3, 0));
    scraped.push(timed_run!(scraped3, scrapers));
    let alone = quiet.iter().map(|r| r.0).min().unwrap();
    let with_scrapes = scraped.iter().map(|r| r.0).min().unwrap();
    let answered: usize = scraped.iter().map(|r| r.2).sum();
    let ratio = alone.as_secs_f64() / with_scrapes.as_secs_f64();
    eprintln!(
        "{records} records, fastest of 3 runs: {alone:?} alone, {with_scrapes:?} with {scrapers} \
         scrapers ({answered} scrapes answered in all): rate ratio {ratio:.2}"
    );
    for (_, rebalances, _) in &scraped {
        assert_eq!(*rebalances, 1.0, "the consumer kept its group membership");
    }
    assert!(
        ratio >= 0.8,
        "the pipeline's rate with scrapes fell to {ratio:.2}×"
    );
}
