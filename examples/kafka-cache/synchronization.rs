//! Run with: cargo run --example synchronization
//!
//! Keeping two streams in step with a `Checkpoint`. Activities arrive on a topic and are joined
//! with the weather at their time (weather reports are kept in a cache). The weather stream
//! stalls on purpose after its first report, so the first activity is joined with stale weather.
//! The checkpoint sees the weather fall more than an hour behind the activities and pauses the
//! activity topic; when the weather catches up it resumes it, and the recovery callback seeks the
//! topic back to the offset recorded at the checkpoint, so the faulty line is corrected. Uses the
//! embedded broker unless `SLIPSTREAM_BOOTSTRAP_SERVERS` is set. Prints:
//! ```text
//! The weather during swimming was 🌞
//! The weather is 90 minutes behind the activities: pausing them
//! The weather has caught up: replaying the activities from offset 0
//! The weather during swimming was 🌧
//! The weather during hiking was 🌤
//! The weather during cycling was ⛅
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{LazyLock, OnceLock};
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeDelta};
use futures::stream::{self, Stream, StreamExt};
use slipstream::prelude::*;
use slipstream::{AppHandle, Checkpoint, CheckpointView, Dependency, DependencyView, PauseHandle};
use slipstream_cache::Cache;
use slipstream_kafka::{Conf, Message, StartAt, Topic};

type Time = NaiveDateTime;

fn at(time: &str) -> Time {
    let date = NaiveDate::from_ymd_opt(2025, 1, 1).expect("a date");
    date.and_time(NaiveTime::parse_from_str(time, "%H:%M").expect("a time"))
}

/// Activities, read from the beginning of the topic (no consumer group needed).
static ACTIVITIES: LazyLock<Topic> =
    LazyLock::new(|| Topic::new("activities").start(StartAt::Beginning));

/// Weather reports by time; a fresh cache each run.
static WEATHER: LazyLock<Cache<Time, String>> = LazyLock::new(|| {
    let path = std::env::temp_dir().join("slipstream-example-synchronization");
    let _ = std::fs::remove_dir_all(&path);
    Cache::open(path).expect("the cache opens")
});

/// The activity stream depends on the weather stream.
static CHECKPOINT: LazyLock<Checkpoint<Time>> = LazyLock::new(|| {
    let weather =
        Dependency::new("weather", &PauseHandle::new()).downtime_threshold(TimeDelta::hours(1));
    Checkpoint::builder("activities", &*ACTIVITIES, [weather])
        .on_downtime(|c: CheckpointView<Time>, d: DependencyView<Time>| {
            let behind = c
                .state_marker
                .zip(d.checkpoint_marker)
                .map(|(a, w)| (a - w).num_minutes());
            println!(
                "The weather is {} minutes behind the activities: pausing them",
                behind.unwrap_or(0)
            );
        })
        .on_recovery(
            |_: CheckpointView<Time>, d: DependencyView<Time>| async move {
                let offset = d
                    .checkpoint_state
                    .and_then(|s| s.get("offset").and_then(|o| o.as_i64()))
                    .unwrap_or(0);
                println!(
                    "The weather has caught up: replaying the activities from offset {offset}"
                );
                ACTIVITIES.seek(0, offset)
            },
        )
        .build()
        .expect("a checkpoint")
});

static APP: OnceLock<AppHandle> = OnceLock::new();
static JOINED: AtomicUsize = AtomicUsize::new(0);

/// The first report, then a stall, then the rest at once.
fn weather() -> impl Stream<Item = (Time, &'static str)> {
    stream::iter([
        ("08:00", "🌞", 0),
        ("09:00", "🌧", 2000),
        ("12:00", "🌤", 0),
        ("15:00", "⛅", 0),
    ])
    .then(|(time, sky, delay)| async move {
        tokio::time::sleep(Duration::from_millis(delay)).await;
        (at(time), sky)
    })
}

/// Activities, produced to the topic a few hundred milliseconds apart.
fn activities() -> impl Stream<Item = (&'static str, &'static str)> {
    stream::iter([
        ("swimming", "09:30"),
        ("hiking", "12:15"),
        ("cycling", "15:40"),
    ])
    .then(|activity| async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        activity
    })
}

#[handle(source = activities(), sink = [ACTIVITIES])]
fn produce((activity, time): (&'static str, &'static str)) -> (String, String) {
    (activity.to_owned(), time.to_owned())
}

/// Stores each report, then tells the checkpoint how far the weather has come.
#[handle(source = weather())]
async fn report((time, sky): (Time, &'static str)) -> Result<(), slipstream::Error> {
    WEATHER.put(&time, sky)?;
    CHECKPOINT.heartbeat(time).await?;
    Ok(())
}

/// Joins each activity with the latest weather report before it, then checks the pulse.
#[handle(source = ACTIVITIES, sink = [print])]
async fn join(msg: Message<String, String>) -> Result<(), slipstream::Error> {
    let time = at(&msg.value);
    let activity = msg.key.unwrap_or_default();
    let sky = match WEATHER.values().from_key(&time).backwards().next() {
        Some(sky) => sky?,
        None => "unknown".to_owned(),
    };
    emit!(format!("The weather during {activity} was {sky}"));
    CHECKPOINT
        .check_pulse(time, [("offset", msg.offset)])
        .await?;
    // Three activities, one of them replayed: then the example is done.
    if JOINED.fetch_add(1, Ordering::SeqCst) + 1 == 4 {
        APP.get().expect("the app is running").shutdown();
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Conf::set([("bootstrap_servers", "embedded")]);
    ACTIVITIES.create(1).await?;
    let app = slipstream::App::new();
    APP.set(app.handle()).expect("set once");
    app.run().await?;
    Ok(())
}
