//! The instance's one set of transactions, created the first time a component asks for
//! exactly-once: the transactional producer, fencing any older instance with its id. Layer:
//! exactly-once (names no producer, consumer or state above it).

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, Producer as _};

use slipstream_core::__component::lock;
use slipstream_core::Error;

use super::gate::Gate;
use super::limits::{CALL_TIMEOUT, DEFAULT_INTERVAL, DEFAULT_TRANSACTION_TIMEOUT_MS};
use super::recorded::{Recorded, unsupported};
use super::transactions::{Delivered, Transactions};
use crate::client::Link;
use crate::client::{self, Linked};
use crate::conf::{COMMIT_INTERVAL, Conf, exactly_once};

/// The instance's transactions, once a component asked for them.
static TRANSACTIONS: Mutex<Option<Arc<Transactions>>> = Mutex::new(None);

/// The instance's transactions when `effective` asks for exactly-once (created, and checked
/// against the broker, the first time).
pub(crate) fn for_conf(effective: &Conf, what: &str) -> Result<Option<Arc<Transactions>>, Error> {
    if !exactly_once(effective, what)? {
        return Ok(None);
    }
    let mut slot = lock(&TRANSACTIONS);
    if let Some(transactions) = &*slot {
        return Ok(Some(Arc::clone(transactions)));
    }
    let transactions = Arc::new(client::blocking(|| Transactions::start(effective, what))?);
    *slot = Some(Arc::clone(&transactions));
    Ok(Some(transactions))
}

impl Transactions {
    /// Creates the transactional producer, fences any earlier producer with its id (on the mock
    /// cluster: records its start and checks that the broker commits transactions), and opens
    /// the first transaction. A broker that does not commit transactions fails the start here,
    /// or the first commit.
    fn start(effective: &Conf, what: &str) -> Result<Transactions, Error> {
        // A sink's topic may name no group: the application's global one serves.
        let global = Conf::global().effective(&Conf::new());
        let group = [effective.get("group.id"), global.get("group.id")]
            .into_iter()
            .flatten()
            .find(|g| !g.is_empty());
        let Some(group) = group else {
            return Err(Error::Conf {
                topic: what.to_owned(),
                key: "group.id".to_owned(),
                message: "exactly-once commits input positions with the consumer group: set `group.id` (with Conf::set, or on the topic that starts the transactions)".to_owned(),
            });
        };
        let group = group.to_owned();
        let interval = match effective.get(COMMIT_INTERVAL) {
            None => DEFAULT_INTERVAL,
            Some(ms) => match ms.trim().parse::<u64>() {
                Ok(ms) if ms > 0 => Duration::from_millis(ms),
                _ => {
                    return Err(Error::Conf {
                        topic: what.to_owned(),
                        key: COMMIT_INTERVAL.to_owned(),
                        message: format!("`{ms}` is not a positive number of milliseconds"),
                    });
                }
            },
        };
        let mut conf = client::resolve(what, effective)?;
        client::without_consumer_settings(&mut conf);
        let id = match conf.get("transactional.id") {
            Some(id) => id.to_owned(),
            None => {
                let started = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_nanos();
                format!("{group}-{}-{started:x}", std::process::id())
            }
        };
        conf.insert("transactional.id", id.clone());
        if conf.get("transaction.timeout.ms").is_none() {
            conf.insert("transaction.timeout.ms", DEFAULT_TRANSACTION_TIMEOUT_MS);
        }
        let timeout = Duration::from_millis(
            conf.get("transaction.timeout.ms")
                .and_then(|ms| ms.parse().ok())
                .unwrap_or(60_000),
        );
        let link = Arc::new(Link::new(
            format!("transactions `{id}`"),
            Duration::from_secs(30),
        ));
        let producer: FutureProducer<Linked> = client::client_config(&conf)
            .create_with_context(Linked(Arc::clone(&link)))
            .map_err(|e| client::creation_error(what, e))?;
        // An unreachable broker, or refused credentials, are said as such (not as a broker
        // without transactions).
        let probe = client::Probe {
            topic: what,
            name_it: false,
            servers: conf.get("bootstrap.servers").unwrap_or_default(),
            link: &link,
            timeout: client::CONNECT_TIMEOUT,
        };
        probe.connect(producer.client(), || std::thread::sleep(client::PROBE_POLL))?;
        producer
            .init_transactions(CALL_TIMEOUT)
            .map_err(|e| unsupported(what, e))?;
        let mock = producer
            .client()
            .fetch_cluster_id(CALL_TIMEOUT)
            .is_some_and(|cluster| cluster.starts_with("mockCluster"));
        let recorded = if mock {
            Some(Recorded::start(&group, &id, &conf, effective, &producer)?)
        } else {
            None
        };
        producer
            .begin_transaction()
            .map_err(|e| unsupported(what, e))?;
        tracing::info!(
            transactional_id = %id,
            ?interval,
            "exactly-once: what handlers produce to Kafka topics (and the changelogs of caches that follow a topic) commits in one transaction with the input positions; other sinks (functions, print, caches that follow no topic) are outside the guarantee and may see an item again after a crash"
        );
        let (settler, settling) = std::sync::mpsc::channel::<(DeliveryFuture, i32, Delivered)>();
        std::thread::Builder::new()
            .name("slipstream-txn-settler".into())
            .spawn(move || {
                for (delivery, partition, delivered) in settling {
                    delivered(match futures::executor::block_on(delivery) {
                        Ok(Ok(delivery)) => Ok((delivery.partition, delivery.offset)),
                        Ok(Err((error, _))) => Err((error, partition)),
                        Err(_) => Err((KafkaError::Canceled, partition)),
                    });
                }
            })
            .map_err(|e| Error::kafka(what, e))?;
        Ok(Transactions {
            producer,
            link,
            id,
            name: what.to_owned(),
            recorded,
            interval,
            timeout,
            inputs: Gate::default(),
            producing: RwLock::new(()),
            committing: Mutex::new(()),
            members: Mutex::default(),
            written: Mutex::default(),
            failure: Mutex::default(),
            abort_owed: AtomicBool::new(false),
            stops: Mutex::default(),
            committed: tokio::sync::watch::Sender::new(0),
            opened: Mutex::new(Instant::now()),
            settler: Mutex::new(settler),
            driver: Mutex::new(None),
        })
    }
}
