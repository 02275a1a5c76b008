//! A checkpoint whose cache follows the dependent stream's partitions (the fake partitioned
//! source of `follow.rs`): it keeps a record per partition, checked by pulses in that
//! partition's handler; heartbeats go to every partition held; the recovery callback runs for
//! the partition that recovered, with its own state; a partition reassigned is reloaded.

use std::sync::{Arc, LazyLock, Mutex};

use chrono::{DateTime, TimeZone, Utc};
use futures::{StreamExt, stream};
use serde_json::{Value, json};
use slipstream::prelude::*;
use slipstream::{
    Ack, Cache, Checkpoint, CheckpointStore, CheckpointView, Dependency, DependencyView, Error,
    PauseHandle, acked,
};
use slipstream_tests::{app, within};

use crate::TempDir;
use crate::follow::{Item, Parts};

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 1, h, m, 0).unwrap()
}

static ITEMS: LazyLock<Parts> = LazyLock::new(|| Parts {
    log: Arc::default(),
});
static DIR: LazyLock<TempDir> = LazyLock::new(|| TempDir::new("checkpoint-partitions"));
static STORE: LazyLock<Cache<String, Value>> =
    LazyLock::new(|| Cache::open(DIR.path()).unwrap().follow(&ITEMS));
static DEPENDENT: LazyLock<PauseHandle> = LazyLock::new(PauseHandle::new);
static CALLS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static CHECKPOINT: LazyLock<Checkpoint> = LazyLock::new(|| {
    let weather = Dependency::new("weather", &PauseHandle::new());
    Checkpoint::builder("ck", &*DEPENDENT, [weather])
        .on_downtime(
            |c: CheckpointView<DateTime<Utc>>, _: DependencyView<DateTime<Utc>>| {
                CALLS
                    .lock()
                    .unwrap()
                    .push(format!("down {:?}", c.partition));
            },
        )
        .on_recovery(
            |c: CheckpointView<DateTime<Utc>>, d: DependencyView<DateTime<Utc>>| {
                let offset = &d.checkpoint_state.unwrap()["offset"];
                CALLS
                    .lock()
                    .unwrap()
                    .push(format!("recovered {:?} at offset {offset}", c.partition));
            },
        )
        .cache(&STORE)
        .build()
        .unwrap()
});

/// `(partition, time, offset)` items of the dependent stream.
fn items() -> impl futures::Stream<Item = ((i32, DateTime<Utc>, i64), Ack)> {
    stream::iter([(0, at(10, 5), 3), (1, at(11, 30), 7)]).map(|item| (item, Ack::new(Item(item.0))))
}

#[handle(source = acked(items()))]
async fn pulse((_, time, offset): (i32, DateTime<Utc>, i64)) -> Result<(), Error> {
    CHECKPOINT.check_pulse(time, [("offset", offset)]).await?;
    Ok(())
}

fn stored(partition: i32, key: &str) -> Option<Value> {
    STORE.load_in(partition, key).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_keeps_a_record_per_partition() {
    // A heartbeat before any partition is held is kept for the partitions loaded later.
    CHECKPOINT.heartbeat(at(10, 0)).await.unwrap();
    within(20, app(module_path!()).run()).await.unwrap();
    // Partition 0 is 5 minutes ahead of the weather, partition 1 90 minutes: it alone is down.
    assert_eq!(*CALLS.lock().unwrap(), ["down Some(1)"]);
    assert!(DEPENDENT.is_paused());
    assert_eq!(stored(0, "_ck__state"), Some(json!({"offset": 3})));
    assert_eq!(stored(1, "_ck__state"), Some(json!({"offset": 7})));
    assert_eq!(CHECKPOINT.view().partition, Some(1));

    // Heartbeats go to every partition held.
    let beat = CHECKPOINT.heartbeat(at(11, 0)).await.unwrap();
    assert!(beat.is_late, "partition 1 is still ahead");
    for partition in [0, 1] {
        assert_eq!(
            stored(partition, "_ck_weather_checkpoint_marker"),
            Some(json!(at(11, 0)))
        );
    }
    // Past partition 1's marker: it recovers, with its own state.
    assert!(!CHECKPOINT.heartbeat(at(12, 0)).await.unwrap().is_late);
    assert!(!DEPENDENT.is_paused());
    assert_eq!(
        *CALLS.lock().unwrap(),
        ["down Some(1)", "recovered Some(1) at offset 7"]
    );

    // Partition 0 goes to another instance, which moves its state on, and comes back: the
    // checkpoint reloads it (the store restored it from the changelog).
    STORE
        .save_in(0, "_ck__state", &json!({"offset": 42}))
        .unwrap();
    let state = ITEMS.log.state.lock().unwrap().clone().unwrap();
    state.revoked(&[0]);
    state.ready(&[0]);
    CHECKPOINT.heartbeat(at(12, 30)).await.unwrap();
    assert_eq!(
        stored(0, "_ck_weather_checkpoint_state"),
        Some(json!({"offset": 42}))
    );
    // A partition not held is not written.
    state.revoked(&[1]);
    CHECKPOINT.heartbeat(at(13, 0)).await.unwrap();
    assert!(
        state.position(1).unwrap().is_some(),
        "partition 1 kept on disk"
    );
    let owned = STORE.held().unwrap();
    assert_eq!(owned.iter().map(|(p, _)| *p).collect::<Vec<_>>(), [0]);
}
