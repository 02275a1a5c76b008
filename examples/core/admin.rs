//! Run with: cargo run --example admin
//!
//! The built-in admin server (cargo feature `http`) beside a small pipeline: a timer makes a
//! number every 100 ms, `check` rejects the multiples of 7 (`on_error = "skip"`: logged,
//! counted as errors, and the pipeline goes on) and prints the others:
//! ```text
//! accepted 1
//! accepted 2
//! ...
//! ```
//! Meanwhile, in another terminal:
//! ```text
//! $ curl -s http://127.0.0.1:9100/health
//! {
//!   "status": "ok",
//!   "reasons": []
//! }
//! $ curl -s http://127.0.0.1:9100/metrics | grep check
//! slipstream_handler_up{handler="check"} 1
//! slipstream_handler_messages_total{handler="check"} 21
//! slipstream_handler_outputs_total{handler="check"} 18
//! slipstream_handler_errors_total{handler="check",kind="error"} 3
//! ...
//! $ curl -s http://127.0.0.1:9100/handlers   # every handler, its sources, sinks and state
//! ```
//! Ctrl-C stops it (`/health` answers 503 while it shuts down). `SLIPSTREAM_HTTP_ADDR` changes
//! the address.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use slipstream::prelude::*;

static NUMBERS: LazyLock<Proxy<u64>> = LazyLock::new(Proxy::new);

#[handle(source = timer(Duration::from_millis(100)), sink = [NUMBERS])]
fn count() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[handle(source = NUMBERS, sink = [print], on_error = "skip")]
fn check(n: u64) -> anyhow::Result<String> {
    anyhow::ensure!(!n.is_multiple_of(7), "{n} is a multiple of 7");
    Ok(format!("accepted {n}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::App::new().http("127.0.0.1:9100").run().await?;
    Ok(())
}
