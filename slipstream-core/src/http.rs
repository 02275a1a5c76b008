//! The admin server (cargo feature `http`): `GET /health`, `GET /metrics` and `GET /handlers`
//! for a running application, turned on by [`App::http`](crate::App::http) or the
//! `SLIPSTREAM_HTTP_ADDR` environment variable. It sees the run through the
//! [`AppHandle`](crate::AppHandle) only: it must not name the controls, the monitor, the
//! context or the runtime.

use std::convert::Infallible;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

use crate::error::Error;
use crate::handle::AppHandle;

/// The environment variable that turns the admin server on (and wins over `App::http`).
pub(crate) const ENV: &str = "SLIPSTREAM_HTTP_ADDR";

/// How long a client may take to send a request's head.
const HEADER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// A running admin server; it stops when dropped.
pub(crate) struct Server {
    task: JoinHandle<()>,
    app: AppHandle,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
        self.app.set_http_addr(None);
    }
}

/// Where to listen: `HOST:PORT`, or a bare port (`9100`, `:9100`) on 127.0.0.1.
fn address(addr: &str) -> String {
    let addr = addr.trim();
    let port = addr.strip_prefix(':').unwrap_or(addr);
    if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
        format!("127.0.0.1:{port}")
    } else {
        addr.to_owned()
    }
}

impl Server {
    /// Stops answering and closes the listener and every connection.
    pub(crate) async fn stop(mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }

    /// Binds `addr` and starts answering.
    pub(crate) async fn start(addr: &str, app: AppHandle) -> Result<Server, Error> {
        let address = address(addr);
        let error = |source: std::io::Error| Error::Http {
            addr: addr.to_owned(),
            source,
        };
        let listener = TcpListener::bind(&address).await.map_err(error)?;
        let local = listener.local_addr().map_err(error)?;
        tracing::info!("admin server listening on http://{local} (/health, /metrics, /handlers)");
        app.set_http_addr(Some(local));
        let task = tokio::spawn(serve(listener, Arc::new(Reports::new(app.clone()))));
        Ok(Server { task, app })
    }
}

/// How many connections are served at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 32;
/// How many connections are accepted a second at most (in bursts of up to [`MAX_CONNECTIONS`]):
/// what the admin server may cost the handlers is bounded whatever its clients do.
const CONNECTIONS_PER_SECOND: u32 = 200;

/// Accepts connections until aborted, at most [`MAX_CONNECTIONS`] at a time and
/// [`CONNECTIONS_PER_SECOND`] a second; dropping it closes every connection.
async fn serve(listener: TcpListener, reports: Arc<Reports>) {
    let mut connections = JoinSet::new();
    let mut pace = Pace::new();
    loop {
        pace.wait().await;
        let stream = tokio::select! {
            accepted = listener.accept(), if connections.len() < MAX_CONNECTIONS => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "admin server: cannot accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            // Reap finished connections as they end (no connection was accepted).
            Some(_) = connections.join_next() => {
                pace.refund();
                continue;
            }
        };
        let reports = Arc::clone(&reports);
        connections.spawn(async move {
            let service = hyper::service::service_fn(move |request: Request<Incoming>| {
                let reports = Arc::clone(&reports);
                async move { Ok::<_, Infallible>(respond(&request, reports).await) }
            });
            // A client that never finishes its request does not hold a connection forever.
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin server: connection ended with an error");
            }
        });
    }
}

/// A token bucket for accepting connections.
struct Pace {
    tokens: f64,
    at: tokio::time::Instant,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            tokens: MAX_CONNECTIONS as f64,
            at: tokio::time::Instant::now(),
        }
    }

    /// Waits until a connection may be accepted, and counts it.
    async fn wait(&mut self) {
        let rate = f64::from(CONNECTIONS_PER_SECOND);
        let now = tokio::time::Instant::now();
        self.tokens =
            (self.tokens + (now - self.at).as_secs_f64() * rate).min(MAX_CONNECTIONS as f64);
        self.at = now;
        if self.tokens < 1.0 {
            let wait = std::time::Duration::from_secs_f64((1.0 - self.tokens) / rate);
            tokio::time::sleep(wait).await;
            self.tokens = 1.0;
            self.at = tokio::time::Instant::now();
        }
        self.tokens -= 1.0;
    }

    /// Gives back the count of a wait after which no connection was accepted.
    fn refund(&mut self) {
        self.tokens += 1.0;
    }
}

const TEXT: &str = "text/plain; charset=utf-8";
const JSON: &str = "application/json";
/// Prometheus' text exposition format.
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// How long a metrics report is served again instead of asking the brokers anew.
const METRICS_FRESH_FOR: std::time::Duration = std::time::Duration::from_secs(1);

/// What the admin server answers from. Metrics ask brokers about every partition: one report
/// is made at a time and served to every request within a second of it, so that no number of
/// clients can load the brokers or the pipeline more than one scrape a second would.
struct Reports {
    app: AppHandle,
    metrics: tokio::sync::Mutex<Option<(std::time::Instant, String)>>,
}

impl Reports {
    fn new(app: AppHandle) -> Self {
        Reports {
            app,
            metrics: tokio::sync::Mutex::new(None),
        }
    }

    /// The metrics report, made at most once a second whatever the number of requests.
    async fn metrics(&self) -> Result<String, tokio::task::JoinError> {
        // Requests arriving meanwhile wait here, then share the report just made.
        let mut cached = self.metrics.lock().await;
        if let Some((made, text)) = &*cached
            && made.elapsed() < METRICS_FRESH_FOR
        {
            return Ok(text.clone());
        }
        // Blocking: it asks brokers, and may hold the last reference to a consumer that has
        // just finished, whose drop closes it.
        let app = self.app.clone();
        let text = tokio::task::spawn_blocking(move || app.prometheus_blocking()).await?;
        *cached = Some((std::time::Instant::now(), text.clone()));
        Ok(text)
    }
}

async fn respond(request: &Request<Incoming>, reports: Arc<Reports>) -> Response<Full<Bytes>> {
    let path = request.uri().path();
    if !matches!(path, "/" | "/health" | "/metrics" | "/handlers") {
        return reply(
            StatusCode::NOT_FOUND,
            TEXT,
            format!("no such page: {path} (try /health, /metrics, /handlers)\n"),
        );
    }
    if !matches!(*request.method(), Method::GET | Method::HEAD) {
        let mut response = reply(
            StatusCode::METHOD_NOT_ALLOWED,
            TEXT,
            "only GET and HEAD\n".to_owned(),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let app = &reports.app;
    match path {
        // Cheap: no broker is asked.
        "/health" => {
            let health = app.health();
            let status = if health.is_ok() {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            reply(status, JSON, json(&health))
        }
        "/handlers" => reply(StatusCode::OK, JSON, json(&app.handler_status())),
        "/metrics" => match reports.metrics().await {
            Ok(text) => reply(StatusCode::OK, PROMETHEUS, text),
            Err(error) => reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                TEXT,
                format!("the report failed: {error}\n"),
            ),
        },
        _ => reply(
            StatusCode::OK,
            TEXT,
            "slipstream admin server: /health, /metrics, /handlers\n".to_owned(),
        ),
    }
}

fn json(value: &impl serde::Serialize) -> String {
    let mut text =
        serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

#[cfg(test)]
mod tests {
    use super::address;

    #[test]
    fn bare_ports_listen_on_localhost() {
        assert_eq!(address("9100"), "127.0.0.1:9100");
        assert_eq!(address(":9100"), "127.0.0.1:9100");
        assert_eq!(address(" 0 "), "127.0.0.1:0");
        assert_eq!(address("0.0.0.0:9100"), "0.0.0.0:9100");
        assert_eq!(address("localhost:9100"), "localhost:9100");
        assert_eq!(address("[::1]:9100"), "[::1]:9100");
    }
}
