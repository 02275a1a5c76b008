//! Cache updates streamed over HTTP beside the handlers (the `endpoint` recipe), read with a
//! real HTTP client.

use std::convert::Infallible;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::routing::get;
use futures::StreamExt;
use http_body_util::BodyExt;
use slipstream::prelude::*;
use slipstream::{AppHandle, Cache};
use slipstream_tests::{app, request, within};

static DIR: LazyLock<std::path::PathBuf> = LazyLock::new(|| {
    std::env::temp_dir().join(format!("slipstream-test-endpoint-{}", std::process::id()))
});
static CACHE: LazyLock<Cache<String, String>> = LazyLock::new(|| Cache::open(&*DIR).unwrap());
static TICKS: AtomicU32 = AtomicU32::new(0);

#[handle(source = timer(Duration::from_millis(50)), sink = [CACHE])]
fn tick() -> (String, String) {
    (
        "time".to_owned(),
        format!("tick {}", TICKS.fetch_add(1, Ordering::SeqCst)),
    )
}

async fn updates(State(app): State<AppHandle>) -> Body {
    let lines = CACHE
        .updates()
        .map(|(_, value)| Ok::<_, Infallible>(format!("{value}\n")))
        .take_until(async move { app.wait_for_shutdown().await });
    Body::from_stream(lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn updates_stream_over_http_while_the_app_runs_and_both_stop_together() {
    let app = app(module_path!());
    let handle = app.handle();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = Router::new()
        .route("/updates", get(updates))
        .with_state(handle.clone());
    let stop = handle.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.wait_for_shutdown().await })
            .await
    });
    let run = tokio::spawn(app.run());

    // A real HTTP client reads the streamed body as it comes.
    let response = request("GET", addr, "/updates").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()[axum::http::header::TRANSFER_ENCODING],
        "chunked"
    );
    let mut body = response.into_body();
    let mut received = String::new();
    within(10, async {
        while received.matches("tick ").count() < 3 {
            let frame = body
                .frame()
                .await
                .expect("the stream goes on")
                .expect("a frame");
            if let Ok(data) = frame.into_data() {
                received.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    })
    .await;
    let lines: Vec<&str> = received.lines().collect();
    assert!(
        lines.len() >= 3 && lines.iter().all(|l| l.starts_with("tick ")),
        "{received:?}"
    );

    handle.shutdown();
    within(10, run).await.unwrap().unwrap();
    within(10, server).await.unwrap().unwrap();
    let _ = std::fs::remove_dir_all(&*DIR);
}
