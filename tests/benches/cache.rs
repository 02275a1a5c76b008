//! Run with: cargo bench -p slipstream-tests --bench cache
//!
//! Put, get and ordered iteration of 1,000,000 small entries (`u64` keys, 20-byte `String`
//! values) through `Cache`, and the same through the raw `rocksdb` crate with the same options
//! (the raw side stores the key's 8 big-endian bytes and the string's bytes), in one run. Prints
//! the rates and the ratios.

use std::time::{Duration, Instant};

use slipstream::{Cache, CacheOptions};

const N: u64 = 1_000_000;

fn value(i: u64) -> String {
    format!("value-{i:014}")
}

/// Shuffled keys, the same for both sides.
fn shuffled() -> Vec<u64> {
    let mut keys: Vec<u64> = (0..N).collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..keys.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        keys.swap(i, (state % (i as u64 + 1)) as usize);
    }
    keys
}

fn timed(work: impl FnOnce() -> u64) -> (Duration, u64) {
    let started = Instant::now();
    let count = work();
    (started.elapsed(), count)
}

fn main() {
    let root = std::env::temp_dir().join(format!("slipstream-bench-cache-{}", std::process::id()));
    // Large enough that FIFO compaction drops nothing during the benchmark.
    let options = CacheOptions::new().max_size(4 * 1024 * 1024 * 1024);
    let keys = shuffled();

    let raw = rocksdb::DB::open(&options.rocksdb_options(), root.join("raw")).unwrap();
    let cache: Cache<u64, String> = options.open(root.join("cache")).unwrap();

    let raw_put = timed(|| {
        for &k in &keys {
            raw.put(k.to_be_bytes(), value(k).as_bytes()).unwrap();
        }
        N
    });
    let cache_put = timed(|| {
        for &k in &keys {
            cache.put(&k, &value(k)).unwrap();
        }
        N
    });
    let raw_get = timed(|| {
        let mut found = 0;
        for &k in &keys {
            let bytes = raw.get_pinned(k.to_be_bytes()).unwrap().unwrap();
            found += u64::from(std::str::from_utf8(&bytes).unwrap().len() == 20);
        }
        found
    });
    let cache_get = timed(|| {
        let mut found = 0;
        for &k in &keys {
            found += u64::from(cache.get(&k).unwrap().unwrap().len() == 20);
        }
        found
    });
    let raw_iter = timed(|| {
        let mut count = 0;
        let mut iter = raw.raw_iterator();
        iter.seek_to_first();
        while let Some((k, v)) = iter.item() {
            let key = u64::from_be_bytes(k.try_into().unwrap());
            count += u64::from(std::str::from_utf8(v).unwrap().len() == 20 && key < N);
            iter.next();
        }
        count
    });
    let cache_iter = timed(|| {
        let mut count = 0;
        for item in cache.items() {
            let (key, value) = item.unwrap();
            count += u64::from(value.len() == 20 && key < N);
        }
        count
    });
    for (name, (_, n)) in [
        ("raw get", raw_get),
        ("cache get", cache_get),
        ("raw iteration", raw_iter),
        ("cache iteration", cache_iter),
    ] {
        assert_eq!(n, N, "{name} saw every entry");
    }

    let rate = |(d, n): (Duration, u64)| n as f64 / d.as_secs_f64();
    println!("{N} entries (u64 keys, 20-byte strings), same RocksDB options on both sides");
    println!(
        "{:<22}{:>14}{:>14}{:>8}",
        "operation", "raw rocksdb", "Cache", "ratio"
    );
    for (name, raw, ours) in [
        ("put (shuffled keys)", raw_put, cache_put),
        ("get (shuffled keys)", raw_get, cache_get),
        ("ordered iteration", raw_iter, cache_iter),
    ] {
        println!(
            "{name:<22}{:>10.0} op/s{:>10.0} op/s{:>8.2}",
            rate(raw),
            rate(ours),
            rate(ours) / rate(raw)
        );
    }
    drop((raw, cache));
    let _ = std::fs::remove_dir_all(root);
}
