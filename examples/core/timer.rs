//! Run with: cargo run --example timer
//!
//! A timer source feeds a handler that takes no parameter. Prints the local time once a second
//! until Ctrl-C (a second Ctrl-C exits at once):
//! ```text
//! 23:25:10
//! 23:25:11
//! 23:25:12
//! ...
//! ```

use std::time::Duration;

use slipstream::prelude::*;

#[handle(source = timer(Duration::from_secs(1)))]
fn tick() {
    println!("{}", chrono::Local::now().format("%H:%M:%S"));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
