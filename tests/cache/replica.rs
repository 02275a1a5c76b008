//! A replicated cache (`Cache::replicate`), with a source of this test's own in place of a
//! Kafka topic: reads wait for the feed to catch up, the feed's deletions apply, its values are
//! published to `updates()` readers, writes are refused, and a reopened cache is fed only the
//! records it lacks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};

use futures::StreamExt;
use slipstream::partition::{Encode, Replica, Replicated, Replication};
use slipstream::{Cache, CacheErrorKind, Error};

use crate::TempDir;

/// A source of `(partition, key, value)` records (`None`: a deletion), fed when `go` is called.
struct Source {
    records: Vec<(i32, &'static str, Option<u64>)>,
    gate: Arc<Gate>,
}

/// What the test and the feed tell each other.
#[derive(Default)]
struct Gate {
    /// (the feed may start, the feed caught up, readers waiting)
    state: Mutex<(bool, bool, usize)>,
    changed: Condvar,
    applied: AtomicU64,
}

impl Gate {
    fn wait_for(&self, until: impl Fn(&(bool, bool, usize)) -> bool) {
        let mut state = self.state.lock().unwrap();
        while !until(&state) {
            state = self.changed.wait(state).unwrap();
        }
    }

    fn update(&self, change: impl FnOnce(&mut (bool, bool, usize))) {
        change(&mut self.state.lock().unwrap());
        self.changed.notify_all();
    }
}

impl Replication for Gate {
    fn caught_up(&self) -> Result<(), Error> {
        self.update(|s| s.2 += 1);
        self.wait_for(|s| s.1);
        Ok(())
    }

    fn applied(&self) -> u64 {
        self.applied.load(Ordering::SeqCst)
    }

    fn stop(&self) {}
}

impl Replicated<String, u64> for Source {
    fn replicated_name(&self) -> String {
        "reference".into()
    }

    fn replicate(
        &'static self,
        replica: Arc<dyn Replica>,
        encode: Encode<String, u64>,
    ) -> Arc<dyn Replication> {
        std::thread::spawn(move || {
            self.gate.wait_for(|s| s.0);
            for partition in [0, 1] {
                // Offsets are the records' indexes in their partition.
                let from = replica.position(partition).unwrap().unwrap_or(0);
                let records: Vec<_> = self.records.iter().filter(|r| r.0 == partition).collect();
                let changes: Vec<_> = records[from as usize..]
                    .iter()
                    .map(|(_, key, value)| encode(&key.to_string(), value.as_ref()).unwrap())
                    .collect();
                if !changes.is_empty() {
                    replica
                        .apply(partition, &changes, records.len() as i64)
                        .unwrap();
                    self.gate
                        .applied
                        .fetch_add(changes.len() as u64, Ordering::SeqCst);
                }
            }
            // Lets go of the database before saying so (a test reopens it then).
            drop(replica);
            self.gate.update(|s| s.1 = true);
        });
        Arc::clone(&self.gate) as Arc<dyn Replication>
    }
}

fn source(records: Vec<(i32, &'static str, Option<u64>)>) -> &'static Source {
    Box::leak(Box::new(Source {
        records,
        gate: Arc::default(),
    }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_wait_for_the_feed_and_see_the_whole_source() {
    let dir = TempDir::new("replica");
    let first = source(vec![
        (0, "ann", Some(1)),
        (1, "bob", Some(2)),
        (0, "cid", Some(3)),
        (0, "ann", None),
    ]);
    let cache: &'static Cache<String, u64> =
        Box::leak(Box::new(Cache::open(dir.path()).unwrap().replicate(first)));
    let mut updates = Box::pin(cache.updates());

    // A read before the feed has caught up waits for it.
    let reader = std::thread::spawn(|| cache.get("bob"));
    first.gate.wait_for(|s| s.2 == 1);
    first.gate.update(|s| s.0 = true);
    assert_eq!(reader.join().unwrap().unwrap(), Some(2));

    // Both partitions, with the deletion applied.
    let items: Vec<(String, u64)> = cache.items().collect::<Result<_, _>>().unwrap();
    assert_eq!(items, [("bob".to_owned(), 2), ("cid".to_owned(), 3)]);
    assert_eq!(cache.replicated_records(), 4);
    // Values stored were published (deletions are not), partition by partition.
    let mut published = Vec::new();
    for _ in 0..3 {
        published.push(updates.next().await.unwrap());
    }
    assert_eq!(
        published,
        [
            ("ann".to_owned(), 1),
            ("cid".to_owned(), 3),
            ("bob".to_owned(), 2)
        ]
    );

    // Only the feed writes.
    for refused in [cache.put("dan", &4), cache.delete("bob")] {
        match refused {
            Err(Error::Cache { kind, message, .. }) => {
                assert_eq!(kind, CacheErrorKind::Partition);
                assert!(message.contains("replicates `reference`"), "{message}");
            }
            other => panic!("a write to a replica: {other:?}"),
        }
    }
}

#[test]
fn a_reopened_replica_is_fed_only_what_it_lacks() {
    let dir = TempDir::new("replica-reopen");
    let mut records = vec![(0, "ann", Some(1)), (1, "bob", Some(2))];
    let first = source(records.clone());
    first.gate.update(|s| s.0 = true);
    let cache = Cache::<String, u64>::open(dir.path())
        .unwrap()
        .replicate(first);
    assert_eq!(cache.get("ann").unwrap(), Some(1));
    drop(cache);

    records.extend([(0, "ann", Some(5)), (1, "cid", Some(3))]);
    let second = source(records);
    second.gate.update(|s| s.0 = true);
    let cache = Cache::<String, u64>::open(dir.path())
        .unwrap()
        .replicate(second);
    let items: Vec<(String, u64)> = cache.items().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        items,
        [
            ("ann".to_owned(), 5),
            ("bob".to_owned(), 2),
            ("cid".to_owned(), 3)
        ]
    );
    assert_eq!(cache.replicated_records(), 2, "the tail only");
}
