//! The embedded development broker: librdkafka's in-process mock cluster, started when
//! `bootstrap.servers` is `"embedded"`.

use std::sync::OnceLock;
use std::sync::mpsc;

use rdkafka::mocking::MockCluster;

/// The `bootstrap.servers` value that starts the embedded broker.
pub const EMBEDDED: &str = "embedded";

/// A request to create a topic: its name, partitions, and where to answer.
type CreateTopic = (String, i32, mpsc::Sender<Result<(), String>>);

struct Embedded {
    servers: String,
    requests: mpsc::Sender<CreateTopic>,
}

static CLUSTER: OnceLock<Result<Embedded, String>> = OnceLock::new();

fn cluster() -> Result<&'static Embedded, String> {
    CLUSTER
        .get_or_init(|| {
            let (ready_tx, ready_rx) = mpsc::channel();
            let (requests, requests_rx) =
                mpsc::channel::<(String, i32, mpsc::Sender<Result<(), String>>)>();
            // The cluster lives on its own thread for the rest of the process; it creates
            // topics on request.
            std::thread::Builder::new()
                .name("slipstream-embedded-kafka".into())
                .spawn(move || match MockCluster::new(1) {
                    Ok(cluster) => {
                        let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                        for (topic, partitions, reply) in requests_rx {
                            let created = cluster
                                .create_topic(&topic, partitions, 1)
                                .map_err(|e| e.to_string());
                            let _ = reply.send(created);
                        }
                    }
                    Err(error) => {
                        let _ = ready_tx.send(Err(error.to_string()));
                    }
                })
                .map_err(|e| e.to_string())?;
            let servers = ready_rx.recv().map_err(|e| e.to_string())??;
            let notice = "started the embedded Kafka broker (librdkafka's mock cluster): for \
                          development only, nothing is persisted; set \
                          SLIPSTREAM_BOOTSTRAP_SERVERS to use a real broker";
            if tracing::dispatcher::has_been_set() {
                tracing::warn!(servers, "{notice}");
            } else {
                eprintln!("slipstream: {notice}");
            }
            Ok(Embedded { servers, requests })
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// The address of the embedded broker, started on first use.
pub(crate) fn servers() -> Result<String, String> {
    cluster().map(|c| c.servers.clone())
}

/// Creates a topic on the embedded broker.
pub(crate) fn create_topic(topic: &str, partitions: i32) -> Result<(), String> {
    let cluster = cluster()?;
    let (reply, answer) = mpsc::channel();
    cluster
        .requests
        .send((topic.to_owned(), partitions, reply))
        .map_err(|_| "the embedded broker has stopped".to_owned())?;
    answer
        .recv()
        .map_err(|_| "the embedded broker has stopped".to_owned())?
}

/// The address of the embedded broker, started if it is not running yet: other processes of a
/// development setup (several instances of an application, say) connect to it with
/// `SLIPSTREAM_BOOTSTRAP_SERVERS` set to it. It lives as long as this process.
///
/// ```no_run
/// let servers = slipstream::kafka::embedded_address()?;
/// println!("instances connect to {servers}");
/// # Ok::<(), slipstream::Error>(())
/// ```
pub fn embedded_address() -> Result<String, slipstream_core::Error> {
    servers().map_err(|message| slipstream_core::Error::Conf {
        topic: String::new(),
        key: "bootstrap.servers".to_owned(),
        message: format!("cannot start the embedded broker: {message}"),
    })
}
