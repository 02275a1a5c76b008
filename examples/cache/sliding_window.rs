//! Run with: cargo run --example sliding-window
//!
//! An aggregation over a sliding window, with the cache as the window's state: each reading is
//! stored under its timestamp, and each new reading sums the readings of the last three minutes
//! by iterating the cache from the window's start. Ten readings make eight full windows. Prints:
//! ```text
//! Sliding window ending at 10:02: 3 readings, total 6
//! Sliding window ending at 10:03: 3 readings, total 9
//! Sliding window ending at 10:04: 3 readings, total 12
//! Sliding window ending at 10:05: 3 readings, total 15
//! Sliding window ending at 10:06: 3 readings, total 18
//! Sliding window ending at 10:07: 3 readings, total 21
//! Sliding window ending at 10:08: 3 readings, total 24
//! Sliding window ending at 10:09: 3 readings, total 27
//! ```

use std::sync::LazyLock;

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::stream::{self, Stream};
use slipstream::prelude::*;
use slipstream_cache::Cache;

/// Readings by time; a fresh cache each run.
static READINGS: LazyLock<Cache<DateTime<Utc>, u32>> = LazyLock::new(|| {
    let path = std::env::temp_dir().join("slipstream-example-window");
    let _ = std::fs::remove_dir_all(&path);
    Cache::open(path).expect("the cache opens")
});

const WINDOW: Duration = Duration::minutes(3);

/// One reading a minute from 10:00: 1, 2, 3, ...
fn readings() -> impl Stream<Item = (DateTime<Utc>, u32)> {
    let start = Utc.with_ymd_and_hms(2025, 1, 1, 10, 0, 0).unwrap();
    stream::iter((0..10).map(move |i| (start + Duration::minutes(i), i as u32 + 1)))
}

#[handle(source = readings(), sink = [print])]
fn sliding_window((at, value): (DateTime<Utc>, u32)) -> Result<Option<String>, slipstream::Error> {
    READINGS.put(&at, &value)?;
    // The readings after `at - WINDOW`, up to `at`.
    let mut count = 0;
    let mut total = 0;
    for item in READINGS
        .items()
        .from_key(&(at - WINDOW + Duration::nanoseconds(1)))
    {
        let (time, value) = item?;
        if time > at {
            break;
        }
        count += 1;
        total += value;
    }
    let full = count == 3;
    Ok(full.then(|| {
        format!(
            "Sliding window ending at {}: {count} readings, total {total}",
            at.format("%H:%M")
        )
    }))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
