//! Helpers shared by slipstream's integration tests.

use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use slipstream::App;

/// A sink target that remembers every value it is given, in order.
pub struct Collected<T> {
    items: Mutex<Vec<T>>,
}

impl<T: Clone> Collected<T> {
    /// An empty collection (usable in a `static`).
    pub const fn new() -> Self {
        Collected {
            items: Mutex::new(Vec::new()),
        }
    }

    /// Records a value.
    pub fn push(&self, item: T) {
        self.items.lock().unwrap().push(item);
    }

    /// Everything recorded so far.
    pub fn get(&self) -> Vec<T> {
        self.items.lock().unwrap().clone()
    }

    /// How many values were recorded.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap().len()
    }

    /// The values recorded so far that start with `prefix`, in order.
    pub fn starting_with(&self, prefix: &str) -> Vec<T>
    where
        T: AsRef<str>,
    {
        let items = self.items.lock().unwrap();
        items
            .iter()
            .filter(|s| s.as_ref().starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Whether nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Clone> Default for Collected<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// An app running only the handlers of `module`, without signal handling, and without logging
/// unless `TEST_LOG` is set (to debug a failing test: `RUST_LOG` then sets the level; a test
/// that installs a subscriber of its own fails then, as only one can be installed).
pub fn app(module: &str) -> App {
    App::new()
        .module(module)
        .signals(false)
        .logging(std::env::var_os("TEST_LOG").is_some())
}

/// Runs `future`, failing the test if it takes longer than `secs` seconds.
pub async fn within<F: Future>(secs: u64, future: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(secs), future)
        .await
        .expect("the test timed out")
}

/// Waits until `condition` holds (polling every 5 ms), failing after `secs` seconds.
pub async fn until(secs: u64, mut condition: impl FnMut() -> bool) {
    within(secs, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
}

/// Waits until `condition` holds (polling every 5 ms), failing after `secs` seconds with what
/// `state` says then.
pub async fn until_or<S: std::fmt::Debug>(
    secs: u64,
    mut condition: impl FnMut() -> bool,
    state: impl FnOnce() -> S,
) {
    let waited = tokio::time::timeout(Duration::from_secs(secs), async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    if waited.is_err() {
        panic!("still waiting after {secs} s: {:?}", state());
    }
}

/// Runs one test of the current test binary in a child process, with `env` set, and waits until
/// it prints a line containing `ready` (the child test does nothing unless its variable is set).
/// Panics if the child ends first.
pub fn spawn_test_until(
    test: &str,
    env: (&str, &std::path::Path),
    ready: &str,
) -> std::process::Child {
    use std::io::BufRead;
    use std::process::{Command, Stdio};
    let mut child = Command::new(std::env::current_exe().expect("the test binary"))
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(env.0, env.1)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the child starts");
    let stdout = child.stdout.take().expect("piped");
    let found = std::io::BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .any(|line| line.contains(ready));
    assert!(found, "the child test {test} never printed {ready:?}");
    child
}

/// A global allocator that counts allocations, for checking that a path allocates nothing per
/// message: install it with `#[global_allocator]` in a test or bench binary of its own.
pub struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

impl CountingAllocator {
    /// How many allocations the process has made so far.
    pub fn allocations() -> usize {
        ALLOCATIONS.load(Ordering::SeqCst)
    }
}

// SAFETY: delegates every call to the system allocator; only counts.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The answer to an HTTP request: its status, content type and body.
#[derive(Debug)]
pub struct Reply {
    /// The status code.
    pub status: u16,
    /// The `Content-Type` header.
    pub content_type: String,
    /// The body, as text.
    pub body: String,
}

/// Sends `method path` over HTTP/1.1 to `addr` (a hyper client on a new connection) and
/// returns the response as soon as its head has arrived; its body streams.
pub async fn request(
    method: &str,
    addr: std::net::SocketAddr,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    use http_body_util::Empty;
    use hyper::body::Bytes;
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("the server accepts connections");
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .expect("an HTTP/1.1 handshake");
    // Drives the connection until the response is read (or the server closes it).
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .expect("a valid request");
    sender.send_request(request).await.expect("an answer")
}

/// Sends `method path` to `addr` and reads the whole answer.
pub async fn http(method: &str, addr: std::net::SocketAddr, path: &str) -> Reply {
    use http_body_util::BodyExt;
    let response = request(method, addr, path).await;
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("the whole body")
        .to_bytes();
    Reply {
        status,
        content_type,
        body: String::from_utf8(body.to_vec()).expect("a UTF-8 body"),
    }
}

/// `GET path` from `addr`.
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Reply {
    http("GET", addr, path).await
}

/// The value of the Prometheus sample `name{labels}` in `metrics` (`labels` exactly as
/// written, e.g. `handler="relay"`), if there is one.
pub fn sample(metrics: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map(|value| value.parse().expect("a number"))
}

/// Checks `metrics` against the rules of Prometheus' text format (0.0.4) that a scraper
/// enforces: every sample belongs to a family announced by one `# HELP` and one `# TYPE` line
/// before it, no series appears twice, values are numbers, and each histogram's buckets are
/// cumulative with `+Inf` equal to its `_count`. Panics with the offending line.
pub fn check_exposition(metrics: &str) {
    use std::collections::{HashMap, HashSet};
    let mut types: HashMap<&str, &str> = HashMap::new();
    let mut helps: HashSet<&str> = HashSet::new();
    let mut series: HashSet<&str> = HashSet::new();
    // Per histogram series (name and labels without `le`): the last bucket count, and `+Inf`.
    let mut buckets: HashMap<String, (f64, Option<f64>)> = HashMap::new();
    let mut counts: HashMap<String, f64> = HashMap::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap();
            assert!(helps.insert(name), "a second HELP: {line}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut words = rest.split(' ');
            let (name, kind) = (words.next().unwrap(), words.next().unwrap());
            assert!(
                ["counter", "gauge", "histogram"].contains(&kind),
                "unknown type: {line}"
            );
            assert!(types.insert(name, kind).is_none(), "a second TYPE: {line}");
            continue;
        }
        assert!(
            !line.starts_with('#') && !line.is_empty(),
            "stray line: {line:?}"
        );
        let (key, value) = line.rsplit_once(' ').expect("a sample: name{labels} value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number: {line}"));
        assert!(series.insert(key), "a series twice: {line}");
        let name = key.split('{').next().unwrap();
        assert!(
            name.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b':'),
            "bad metric name: {line}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                let base = name.strip_suffix(suffix)?;
                (types.get(base) == Some(&"histogram")).then_some(base)
            })
            .unwrap_or(name);
        assert!(
            types.contains_key(family) && helps.contains(family),
            "a sample before its family's HELP and TYPE: {line}"
        );
        if types[family] == "histogram" {
            let labels = key[name.len()..].to_owned();
            if name.ends_with("_bucket") {
                let (rest, le) = labels
                    .rsplit_once(",le=\"")
                    .expect("le is the last label of a bucket");
                let id = format!("{family}{rest}}}");
                let entry = buckets.entry(id).or_insert((0.0, None));
                assert!(value >= entry.0, "buckets are not cumulative: {line}");
                entry.0 = value;
                if le == "+Inf\"}" {
                    entry.1 = Some(value);
                }
            } else if name.ends_with("_count") {
                counts.insert(format!("{family}{labels}"), value);
            }
        }
    }
    for (id, (_, infinity)) in &buckets {
        assert_eq!(
            *infinity,
            counts.get(id).copied(),
            "the +Inf bucket of {id} is not its _count"
        );
    }
}

/// Runs `app` in a task and waits for its admin server: the app's handle, its run, and the
/// server's address.
pub async fn serve(
    app: App,
) -> (
    slipstream::AppHandle,
    tokio::task::JoinHandle<Result<(), slipstream::Error>>,
    std::net::SocketAddr,
) {
    let handle = app.handle();
    let run = tokio::spawn(app.run());
    let addr = within(10, handle.http_addr())
        .await
        .expect("the admin server is on");
    (handle, run, addr)
}

/// `GET path` from `addr` every 20 ms until the answer satisfies `done`, which it returns;
/// after `secs` seconds, fails the test with the last answer.
pub async fn get_until(
    secs: u64,
    addr: std::net::SocketAddr,
    path: &str,
    mut done: impl FnMut(&Reply) -> bool,
) -> Reply {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        let reply = get(addr, path).await;
        if done(&reply) {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "GET {path} never gave the expected answer; the last one: {reply:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
