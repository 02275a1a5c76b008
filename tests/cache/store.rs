//! The store itself: order, ranges, persistence, batches, snapshots, column families, the size
//! bound, transactions.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use slipstream::{Cache, CacheOptions};

use crate::{TempDir, du};

fn keys<K: slipstream::CacheKey, V: serde::de::DeserializeOwned>(cache: &Cache<K, V>) -> Vec<K> {
    cache.keys().collect::<Result<_, _>>().unwrap()
}

#[test]
fn get_put_delete_contains() {
    let dir = TempDir::new("basic");
    let cache: Cache<String, String> = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.get("prize").unwrap(), None);
    cache.put("prize", "🏆").unwrap();
    cache.put(&"phone".to_string(), &"📞".to_string()).unwrap();
    assert_eq!(cache.get("prize").unwrap().as_deref(), Some("🏆"));
    assert!(cache.contains("phone").unwrap());
    cache.delete("phone").unwrap();
    assert!(!cache.contains("phone").unwrap());
    let items: Vec<(String, String)> = cache.items().collect::<Result<_, _>>().unwrap();
    assert_eq!(items, [("prize".to_string(), "🏆".to_string())]);
}

#[test]
fn integers_floats_and_strings_iterate_in_natural_order() {
    let dir = TempDir::new("order");
    let ints: Cache<i64, ()> = Cache::open(dir.path().join("ints")).unwrap();
    for k in [5i64, -1, i64::MIN, 0, 1_000_000, -300, 42] {
        ints.put(&k, &()).unwrap();
    }
    assert_eq!(keys(&ints), [i64::MIN, -300, -1, 0, 5, 42, 1_000_000]);

    let floats: Cache<f64, u8> = Cache::open(dir.path().join("floats")).unwrap();
    for k in [1.5f64, -0.25, -1e9, 0.0, 3.75, -2.5, 1e-9] {
        floats.put(&k, &0).unwrap();
    }
    assert_eq!(keys(&floats), [-1e9, -2.5, -0.25, 0.0, 1e-9, 1.5, 3.75]);

    let strings: Cache<String, u8> = Cache::open(dir.path().join("strings")).unwrap();
    for k in ["pear", "apple", "app", "Zebra", "", "äpfel"] {
        strings.put(k, &0).unwrap();
    }
    assert_eq!(
        keys(&strings),
        ["", "Zebra", "app", "apple", "pear", "äpfel"]
    );

    let times: Cache<DateTime<Utc>, u8> = Cache::open(dir.path().join("times")).unwrap();
    let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
    for t in [
        "2025-01-01T10:00:00Z",
        "1969-07-20T20:17:40Z",
        "2025-01-01T09:59:59.5Z",
    ] {
        times.put(&at(t), &0).unwrap();
    }
    assert_eq!(
        keys(&times),
        [
            at("1969-07-20T20:17:40Z"),
            at("2025-01-01T09:59:59.5Z"),
            at("2025-01-01T10:00:00Z")
        ]
    );
}

#[test]
fn ranges_backwards_and_prefixes() {
    let dir = TempDir::new("ranges");
    let cache: Cache<i32, String> = Cache::open(dir.path()).unwrap();
    for k in [-20, -10, 0, 10, 20, 30] {
        cache.put(&k, &format!("v{k}")).unwrap();
    }
    let from: Vec<i32> = cache.keys().from_key(&5).collect::<Result<_, _>>().unwrap();
    assert_eq!(from, [10, 20, 30]);
    let back: Vec<i32> = cache.keys().backwards().collect::<Result<_, _>>().unwrap();
    assert_eq!(back, [30, 20, 10, 0, -10, -20]);
    // The nearest key at or before a point: a temporal join on negative and fractional keys.
    let nearest: Vec<i32> = cache
        .keys()
        .from_key(&-5)
        .backwards()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(nearest, [-10, -20]);
    let exact = cache
        .values()
        .from_key(&10)
        .backwards()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(exact, "v10");
    assert!(cache.items().from_key(&-21).backwards().next().is_none());

    let temps: Cache<f64, String> = Cache::open(dir.path().join("temps")).unwrap();
    for (t, w) in [(-2.5, "🌨"), (-0.5, "🌧"), (0.25, "🌤"), (1.75, "🌞")] {
        temps.put(&t, w).unwrap();
    }
    let at = |t: f64| {
        temps
            .values()
            .from_key(&t)
            .backwards()
            .next()
            .unwrap()
            .unwrap()
    };
    assert_eq!(at(-1.0), "🌨");
    assert_eq!(at(-0.5), "🌧");
    assert_eq!(at(0.1), "🌧");
    assert_eq!(at(100.0), "🌞");

    let words: Cache<String, u8> = Cache::open(dir.path().join("words")).unwrap();
    for w in ["car", "cat", "catalog", "cathode", "cats", "dog", "ca"] {
        words.put(w, &0).unwrap();
    }
    let cat: Vec<String> = words
        .keys()
        .prefix("cat")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(cat, ["cat", "catalog", "cathode", "cats"]);
    let back: Vec<String> = words
        .keys()
        .prefix("cat")
        .backwards()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(back, ["cats", "cathode", "catalog", "cat"]);
    let within: Vec<String> = words
        .keys()
        .prefix("cat")
        .from_key("cath")
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(within, ["cathode", "cats"]);
    let none: Vec<String> = words
        .keys()
        .prefix("zebra")
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(none.is_empty());
}

#[test]
fn data_survives_reopening() {
    let dir = TempDir::new("persist");
    {
        let cache: Cache<String, Vec<u32>> = Cache::open(dir.path()).unwrap();
        cache.put("primes", &vec![2, 3, 5, 7]).unwrap();
    }
    let cache: Cache<String, Vec<u32>> = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.get("primes").unwrap(), Some(vec![2, 3, 5, 7]));
}

#[test]
fn batches_snapshots_column_families_and_destroy() {
    let dir = TempDir::new("misc");
    let cache: Cache<u32, String> = Cache::open(dir.path()).unwrap();
    let mut batch = cache.batch();
    batch
        .put(&1, "one")
        .unwrap()
        .put(&2, "two")
        .unwrap()
        .delete(&3);
    assert_eq!(batch.len(), 3);
    cache.put(&3, "three").unwrap();
    cache.write(batch).unwrap();
    assert_eq!(keys(&cache), [1, 2]);

    let snapshot = cache.snapshot();
    cache.put(&4, "four").unwrap();
    assert_eq!(snapshot.get(&4).unwrap(), None);
    let seen: Vec<u32> = snapshot.keys().collect::<Result<_, _>>().unwrap();
    assert_eq!(seen, [1, 2]);
    drop(snapshot);
    assert_eq!(keys(&cache), [1, 2, 4]);

    let other: Cache<String, bool> = cache.column_family("flags").unwrap();
    other.put("on", &true).unwrap();
    assert_eq!(other.get("on").unwrap(), Some(true));
    assert_eq!(keys(&cache), [1, 2, 4], "column families are separate");
    cache.flush().unwrap();
    drop((cache, other));

    let reopened: Cache<u32, String> = Cache::open(dir.path()).unwrap();
    let flags: Cache<String, bool> = reopened.column_family("flags").unwrap();
    assert_eq!(flags.get("on").unwrap(), Some(true));
    drop((reopened, flags));
    Cache::<u32, String>::destroy(dir.path()).unwrap();
    assert!(!dir.path().join("CURRENT").exists());
}

#[test]
fn the_size_bound_holds() {
    let dir = TempDir::new("bound");
    let bound = 4 * 1024 * 1024;
    let cache: Cache<u64, Vec<u8>> = CacheOptions::new()
        .max_size(bound)
        .write_buffer_size(256 * 1024)
        .open(dir.path())
        .unwrap();
    // 40 MB of incompressible values: ten times the bound.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    for key in 0..40_000u64 {
        let value: Vec<u8> = (0..1024)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state as u8
            })
            .collect();
        cache.put(&key, &value).unwrap();
    }
    cache.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    let size = du(dir.path());
    // The tables stay within the bound; the write-ahead log, memtable and small files add a
    // little.
    assert!(
        size < bound + 2 * 1024 * 1024,
        "the directory holds {size} bytes for a bound of {bound}"
    );
    assert!(
        cache.get(&39_999).unwrap().is_some(),
        "the newest data is kept"
    );
    assert!(
        cache.get(&0).unwrap().is_none(),
        "the oldest data was dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_transactions_on_one_key_serialize() {
    let dir = TempDir::new("tx");
    let cache: Arc<Cache<String, u64>> = Arc::new(Cache::open(dir.path()).unwrap());
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            let cache = Arc::clone(&cache);
            tokio::spawn(async move {
                let _guard = cache.transaction("count").await;
                let count = cache.get("count").unwrap().unwrap_or(0);
                tokio::task::yield_now().await; // let the others try to interleave
                cache.put("count", &(count + 1)).unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(cache.get("count").unwrap(), Some(100));

    // Plain reads and writes are not blocked by a held transaction.
    let _guard = cache.transaction("count").await;
    cache.put("count", &7).unwrap();
    assert_eq!(cache.get("count").unwrap(), Some(7));
}

#[test]
fn pair_keys_by_their_first_component() {
    let dir = TempDir::new("pairs");
    let readings: Cache<(String, i64), f64> = Cache::open(dir.path()).unwrap();
    for (who, t, v) in [
        ("ann", -5, 1.0),
        ("ann", 10, 2.0),
        ("bob", -20, 3.0),
        ("bob", 3, 4.0),
        ("annie", 0, 5.0),
    ] {
        readings.put(&(who.to_string(), t), &v).unwrap();
    }
    let ann: Vec<(String, i64)> = readings
        .keys()
        .prefix(&("ann".to_string(),))
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(
        ann,
        [("ann".to_string(), -5), ("ann".to_string(), 10)],
        "not annie's"
    );
    // A per-entity temporal join: bob's latest reading at or before t = 0, never another's.
    let bob_at = |t: i64| {
        readings
            .values()
            .prefix(&("bob".to_string(),))
            .from_key(&("bob".to_string(), t))
            .backwards()
            .next()
            .transpose()
            .unwrap()
    };
    assert_eq!(bob_at(0), Some(3.0));
    assert_eq!(bob_at(5), Some(4.0));
    assert_eq!(
        bob_at(-100),
        None,
        "ann's readings sort before bob's but are not his"
    );
}
