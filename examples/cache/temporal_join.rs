//! Run with: cargo run --example temporal-join
//!
//! A temporal join: weather reports are stored in a cache under their time; each activity is
//! joined with the latest report at or before it, found by iterating the cache backwards from
//! the activity's time. Prints:
//! ```text
//! The weather during swimming was 🌞
//! The weather during hiking was 🌧
//! The weather during cycling was 🌤
//! The weather during stargazing was 🌙
//! ```

use std::sync::LazyLock;
use std::time::Duration;

use chrono::{NaiveDateTime, NaiveTime};
use futures::stream::{self, Stream, StreamExt};
use slipstream::prelude::*;
use slipstream_cache::Cache;

/// Weather reports by time; a fresh cache each run.
static WEATHER: LazyLock<Cache<NaiveDateTime, String>> = LazyLock::new(|| {
    let path = std::env::temp_dir().join("slipstream-example-weather");
    let _ = std::fs::remove_dir_all(&path);
    Cache::open(path).expect("the cache opens")
});

fn at(time: &str) -> NaiveDateTime {
    let time = NaiveTime::parse_from_str(time, "%H:%M").expect("a time");
    chrono::NaiveDate::from_ymd_opt(2025, 1, 1)
        .expect("a date")
        .and_time(time)
}

fn weather() -> impl Stream<Item = (NaiveDateTime, String)> {
    stream::iter([
        ("08:00", "🌞"),
        ("11:00", "🌧"),
        ("14:00", "🌤"),
        ("20:00", "🌙"),
    ])
    .map(|(time, weather)| (at(time), weather.to_owned()))
}

/// Activities arrive a moment after the weather (in a real app: on another topic).
fn activities() -> impl Stream<Item = (NaiveDateTime, &'static str)> {
    stream::iter([
        ("09:30", "swimming"),
        ("12:15", "hiking"),
        ("16:45", "cycling"),
        ("22:00", "stargazing"),
    ])
    .then(|(time, activity)| async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        (at(time), activity)
    })
}

/// Stores each report in the cache.
#[handle(source = weather(), sink = [WEATHER])]
fn report(report: (NaiveDateTime, String)) -> (NaiveDateTime, String) {
    report
}

#[handle(source = activities(), sink = [print])]
fn join((time, activity): (NaiveDateTime, &'static str)) -> Result<String, slipstream::Error> {
    let weather = match WEATHER.values().from_key(&time).backwards().next() {
        Some(weather) => weather?,
        None => "unknown".to_owned(),
    };
    Ok(format!("The weather during {activity} was {weather}"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    slipstream::run().await?;
    Ok(())
}
