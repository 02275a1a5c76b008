//! Brokers of a test's own: Apache Kafka nodes that `tests/broker.sh` starts in a directory of
//! their own, for tests that stop, kill or restart them, or need a listener set up their way.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running Apache Kafka cluster (one node or more); every node is stopped when it is dropped,
/// and its directory removed.
pub struct Cluster {
    dir: PathBuf,
    nodes: u32,
    /// The bootstrap address, every node's client listener.
    pub servers: String,
}

impl Cluster {
    /// Starts `nodes` combined broker/controller nodes and waits until each has started.
    /// `args` are more options of `tests/broker.sh start` (`--sasl`, `--advertise`).
    pub fn start(name: &str, nodes: u32, args: &[&str]) -> Cluster {
        let dir = std::env::temp_dir().join(format!(
            "slipstream-{name}-{}-{}",
            std::process::id(),
            free_port()
        ));
        let count = nodes.to_string();
        let mut all = vec!["start", dir.to_str().unwrap(), "--nodes", &count];
        all.extend_from_slice(args);
        let servers = run(&all).trim().to_owned();
        Cluster {
            dir,
            nodes,
            servers,
        }
    }

    /// Stops node `id` with SIGTERM (a graceful shutdown) and waits for it to exit.
    pub fn stop(&self, id: u32) {
        self.node(&id.to_string(), "stop");
    }

    /// Kills node `id` with SIGKILL and waits for it to exit.
    pub fn kill(&self, id: u32) {
        self.node(&id.to_string(), "kill");
    }

    /// Kills every node with SIGKILL.
    pub fn kill_all(&self) {
        self.node(&self.all(), "kill");
    }

    /// Starts node `id` again on its data and waits until it has started.
    pub fn restart(&self, id: u32) {
        self.node(&id.to_string(), "start");
    }

    /// Starts every node again on its data (together: a controller quorum must form) and
    /// waits until each has started.
    pub fn restart_all(&self) {
        self.node(&self.all(), "start");
    }

    /// The client port of node `id`.
    pub fn port(&self, id: u32) -> u16 {
        self.node(&id.to_string(), "port").trim().parse().unwrap()
    }

    /// Every node's id, separated by commas.
    fn all(&self) -> String {
        (1..=self.nodes)
            .map(|id| id.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    fn node(&self, ids: &str, action: &str) -> String {
        run(&["node", self.dir.to_str().unwrap(), ids, action])
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = script().arg("stop").arg(&self.dir).status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `tests/broker.sh` with `args`; what it printed. A failure fails the test, with its
/// standard error.
fn run(args: &[&str]) -> String {
    let output = script().args(args).output().expect("tests/broker.sh runs");
    assert!(
        output.status.success(),
        "tests/broker.sh {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn script() -> Command {
    let mut command = Command::new("bash");
    command.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("broker.sh"));
    command
}
