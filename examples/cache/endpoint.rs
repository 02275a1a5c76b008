//! Run with: cargo run --example endpoint
//!
//! An HTTP endpoint beside the handlers (axum): a timer handler writes the time into a cache
//! once a second (sinks: the cache and `print`), and `GET /updates` streams every cache update
//! as it happens. In another terminal, `curl -N http://127.0.0.1:8000/updates` prints a new line
//! each second:
//! ```text
//! 00:16:57
//! 00:16:58
//! 00:16:59
//! ...
//! ```
//! Ctrl-C stops both the handlers and the server. `ENDPOINT_ADDR` changes the address.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use futures::StreamExt;
use slipstream::AppHandle;
use slipstream::prelude::*;
use slipstream_cache::Cache;

static CACHE: LazyLock<Cache<String, String>> = LazyLock::new(|| {
    let path = std::env::temp_dir().join("slipstream-example-endpoint");
    Cache::open(path).expect("the cache opens")
});

#[handle(source = timer(Duration::from_secs(1)), sink = [CACHE, print])]
fn tick_tock() -> (String, String) {
    (
        "time".to_owned(),
        chrono::Local::now().format("%H:%M:%S").to_string(),
    )
}

/// Every value written into the cache from now on, one per line, until the app shuts down.
async fn updates(State(app): State<AppHandle>) -> impl IntoResponse {
    let lines = CACHE
        .updates()
        .map(|(_, value)| Ok::<_, Infallible>(format!("{value}\n")))
        .take_until(async move { app.wait_for_shutdown().await });
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(lines),
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = slipstream::App::new();
    let handle = app.handle();
    let addr = std::env::var("ENDPOINT_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let router = Router::new()
        .route("/updates", get(updates))
        .with_state(handle.clone());
    let server = axum::serve(listener, router)
        .with_graceful_shutdown(async move { handle.wait_for_shutdown().await });
    let (ran, served) = tokio::join!(app.run(), server);
    ran?;
    served?;
    Ok(())
}
