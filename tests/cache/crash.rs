//! A following cache after a crash: a partition the last run held and did not release cleanly
//! may hold changes its changelog lacks, so its local copy is dropped and restored from the
//! changelog's start; one released cleanly keeps its copy and position (the fake partitioned
//! source of `follow.rs`; explicit-partition writes as a checkpoint makes them).

use std::path::Path;
use std::sync::Arc;

use serde_json::{Value, json};
use slipstream::partition::PartitionState;
use slipstream::{Cache, CheckpointStore};

use crate::TempDir;
use crate::follow::Parts;

/// Opens the cache at `path` following a fresh fake source; returns its partition state.
fn open(
    path: &Path,
) -> (
    Cache<String, Value>,
    Arc<dyn PartitionState>,
    &'static Parts,
) {
    let parts: &'static Parts = Box::leak(Box::new(Parts {
        log: Arc::default(),
    }));
    let cache = Cache::open(path).unwrap().follow(parts);
    let state = parts.log.state.lock().unwrap().clone().unwrap();
    (cache, state, parts)
}

/// Closes the cache as a process ending would (the source lets go of it too).
fn close(cache: Cache<String, Value>, state: Arc<dyn PartitionState>, parts: &Parts) {
    drop((cache, state));
    parts.log.state.lock().unwrap().take();
}

#[test]
fn a_partition_left_by_a_crash_is_restored_from_scratch_and_a_released_one_is_kept() {
    let dir = TempDir::new("crash");
    let (cache, state, parts) = open(dir.path());
    // Partitions 0 and 2 taken, written (each change delivered at once), 2 released cleanly.
    state.ready(&[0, 2]);
    cache.save_in(0, "ann", &json!(1)).unwrap();
    cache.save_in(2, "bob", &json!(2)).unwrap();
    state.revoked(&[2]);
    assert_eq!(state.position(0).unwrap(), Some(1));
    // A crash: partition 0 is never released.
    close(cache, state, parts);

    let (cache, state, _) = open(dir.path());
    assert_eq!(state.position(0).unwrap(), None, "restored from the start");
    assert_eq!(
        state.position(2).unwrap(),
        Some(1),
        "kept with its position"
    );
    state.ready(&[0, 2]);
    assert_eq!(cache.load_in(0, "ann").unwrap(), None);
    assert_eq!(cache.load_in(2, "bob").unwrap(), Some(json!(2)));
}

#[test]
fn a_partition_with_a_refused_change_is_not_released() {
    let dir = TempDir::new("crash-pending");
    let (cache, state, parts) = open(dir.path());
    state.ready(&[1]);
    cache.save_in(1, "cid", &json!(3)).unwrap();
    // The changelog refused a change: the local copy holds one the changelog lacks.
    state.refused(1);
    state.revoked(&[1]);
    close(cache, state, parts);

    let (_cache, state, _) = open(dir.path());
    assert_eq!(state.position(1).unwrap(), None, "restored from the start");
}
