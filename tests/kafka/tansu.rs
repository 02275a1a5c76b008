//! Brokers of a test's own: tansu processes started in a directory of their own (the binary
//! `tests/broker.sh install` builds), for tests that stop them or need a listener set up their way.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The tansu binary `tests/broker.sh install` builds.
pub fn binary() -> PathBuf {
    let cache = std::env::var("TEST_TOOLS_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/slipstream")
        });
    cache.join("tools/bin/tansu")
}

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running tansu; stopped with SIGTERM when dropped.
pub struct Tansu {
    /// `None` once stopped.
    child: Option<Child>,
}

impl Tansu {
    /// Starts tansu on `port` with its data in `dir`, telling clients to connect to `advertised`
    /// (`port` itself unless a proxy fronts it), and waits until it listens. `args` are more
    /// broker options (`--authentication`).
    pub fn start(dir: &Path, port: u16, advertised: u16, args: &[&str]) -> Tansu {
        let mut child = Command::new(binary())
            .current_dir(dir)
            .args(["broker", "--listener-url"])
            .arg(format!("tcp://127.0.0.1:{port}"))
            .arg("--advertised-listener-url")
            .arg(format!("tcp://127.0.0.1:{advertised}"))
            .args(["--storage-engine", "sqlite://tansu.db"])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tansu starts");
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Tansu { child: Some(child) };
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("tansu does not listen on {port}");
    }

    /// Stops it with SIGTERM, as an orderly broker shutdown, and waits for it to exit.
    pub fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").arg(child.id().to_string()).status();
            let _ = child.wait();
        }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        self.terminate();
    }
}
