//! A cache that follows a partitioned source (`Cache::follow`), with a source of this test's
//! own in place of a Kafka topic: writes go under the partition of the item being handled and
//! into its changelog, reads in a handler see that partition only, reads elsewhere merge the
//! partitions held, writes elsewhere fail, and a partition is restored before first use.

use std::sync::{Arc, LazyLock, Mutex};

use futures::{StreamExt, stream};
use slipstream::partition::{
    Change, Changelog, Origin, PartitionState, Partitioned, Replica, Replication,
};
use slipstream::prelude::*;
use slipstream::{Ack, Acknowledge, Cache, CacheErrorKind, Error, acked};
use slipstream_tests::{Collected, app, within};

use crate::TempDir;

/// A partitioned source: the changelog records appends, and restores partition 1 with one
/// record on first use.
pub struct Parts {
    pub log: Arc<Log>,
}

#[derive(Default)]
pub struct Log {
    pub state: Mutex<Option<Arc<dyn PartitionState>>>,
    appended: Mutex<Vec<(i32, Change)>>,
    restored: Mutex<Vec<i32>>,
}

impl Changelog for Log {
    fn name(&self) -> Result<String, Error> {
        Ok("fake-changelog".into())
    }

    fn prepare(&self) -> Result<(), Error> {
        Ok(())
    }

    fn append(&self, partition: i32, change: Change, ack: Option<Ack>) -> Result<(), Error> {
        let offset = {
            let mut appended = self.appended.lock().unwrap();
            appended.push((partition, change));
            appended.iter().filter(|(p, _)| *p == partition).count() as i64 - 1
        };
        // Delivered at once (the partition's changes are numbered from 0).
        let state = self.state.lock().unwrap().clone().unwrap();
        state.delivered(partition, offset);
        if let Some(ack) = ack {
            ack.done();
        }
        Ok(())
    }

    fn owns(&self, _: i32) -> bool {
        true
    }

    fn restore(&self, partitions: &[i32]) -> Result<(), Error> {
        let state = self.state.lock().unwrap().clone().unwrap();
        for &partition in partitions {
            if partition == 1 && state.position(1)?.is_none() {
                // What another instance wrote before: "zed" = 9 (MessagePack 9 is one byte).
                let mut key = Vec::new();
                slipstream::CacheKey::encode_key(&"zed".to_owned(), &mut key);
                let change = Change {
                    key,
                    value: Some(vec![9]),
                };
                state.apply(1, &[change], 1)?;
            }
            self.restored.lock().unwrap().push(partition);
        }
        state.ready(partitions);
        Ok(())
    }

    fn replicate(self: Arc<Self>, _: Arc<dyn Replica>) -> Arc<dyn Replication> {
        unreachable!("nothing replicates this test's cache")
    }
}

impl Partitioned for Parts {
    fn source_name(&self) -> &str {
        "parts"
    }

    fn follow(
        &'static self,
        state: Arc<dyn PartitionState>,
        _changelog: Option<String>,
    ) -> Arc<dyn Changelog> {
        *self.log.state.lock().unwrap() = Some(state);
        self.log.clone()
    }
}

pub struct Item(pub i32);

impl Acknowledge for Item {
    fn done(&self) {}
    fn failed(&self) {}
    fn origin(&self) -> Option<Origin> {
        Some(Origin {
            source: "parts".into(),
            partition: self.0,
        })
    }
}

static PARTS: LazyLock<Parts> = LazyLock::new(|| Parts {
    log: Arc::default(),
});
static DIR: LazyLock<TempDir> = LazyLock::new(|| TempDir::new("follow"));
static COUNTS: LazyLock<Cache<String, u64>> =
    LazyLock::new(|| Cache::open(DIR.path()).unwrap().follow(&PARTS));
static SEEN: Collected<String> = Collected::new();

/// `(partition, key)` items: "ann" in both partitions, "bob" in partition 0.
fn items() -> impl futures::Stream<Item = ((i32, &'static str), Ack)> {
    stream::iter([(0, "ann"), (1, "ann"), (0, "bob"), (0, "ann")])
        .map(|(partition, key)| ((partition, key), Ack::new(Item(partition))))
}

#[handle(source = acked(items()))]
fn count((partition, key): (i32, &'static str)) -> Result<(), Error> {
    let count = COUNTS.get(key)?.unwrap_or(0) + 1;
    COUNTS.put(key, &count)?;
    // Partition 1 sees what was restored into it, and not partition 0's keys.
    let keys: Vec<String> = COUNTS.keys().collect::<Result<_, _>>()?;
    SEEN.push(format!("{partition}: {}", keys.join(",")));
    Ok(())
}

#[tokio::test]
async fn state_is_kept_per_partition_and_recorded_in_the_changelog() {
    within(20, app(module_path!()).run()).await.unwrap();
    assert_eq!(
        SEEN.get(),
        ["0: ann", "1: ann,zed", "0: ann,bob", "0: ann,bob"],
        "a handler sees its item's partition"
    );
    // Each partition counted its own "ann".
    let appended = PARTS.log.appended.lock().unwrap().clone();
    let partitions: Vec<i32> = appended.iter().map(|(p, _)| *p).collect();
    assert_eq!(partitions, [0, 1, 0, 0]);
    assert_eq!(*PARTS.log.restored.lock().unwrap(), [0, 1]);

    // Outside handlers: reads merge the partitions held, in key order.
    let items: Vec<(String, u64)> = COUNTS.items().collect::<Result<_, _>>().unwrap();
    assert_eq!(
        items,
        [
            ("ann".to_owned(), 2),
            ("ann".to_owned(), 1),
            ("bob".to_owned(), 1),
            ("zed".to_owned(), 9)
        ]
    );
    assert_eq!(COUNTS.get("zed").unwrap(), Some(9));
    assert_eq!(COUNTS.get("nobody").unwrap(), None);
    // ... and writes fail: the partition is unknown.
    match COUNTS.put("ann", &7) {
        Err(Error::Cache { kind, message, .. }) => {
            assert_eq!(kind, CacheErrorKind::Partition);
            assert!(
                message.contains("follows the partitions of `parts`"),
                "{message}"
            );
        }
        other => panic!("a write outside handlers: {other:?}"),
    }
    // ... batches too: nothing is written silently.
    let mut batch = COUNTS.batch();
    assert!(batch.put("ann", &7).is_err());
    batch.delete("bob");
    assert!(COUNTS.write(batch).is_err());
    assert_eq!(COUNTS.get("bob").unwrap(), Some(1));
}
