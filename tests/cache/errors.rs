//! Errors are typed and clear, never panics: a database held by another process, a corrupt
//! directory, a value of another type.

use slipstream::{Cache, CacheErrorKind, Error};

use slipstream_tests::spawn_test_until;

use crate::TempDir;

fn kind(error: Error) -> CacheErrorKind {
    match error {
        Error::Cache { kind, .. } => kind,
        other => panic!("not a cache error: {other}"),
    }
}

/// Holds a cache open in a child process (this test binary, re-run).
#[test]
fn child_holds_cache() {
    let Ok(path) = std::env::var("CACHE_TEST_HOLD") else {
        return;
    };
    let _cache: Cache<String, String> = Cache::open(&path).unwrap();
    println!("holding");
    std::thread::sleep(std::time::Duration::from_secs(30));
}

/// Writes to a cache in a child process, then waits to be killed.
#[test]
fn child_writes_cache() {
    let Ok(path) = std::env::var("CACHE_TEST_WRITE") else {
        return;
    };
    let cache: Cache<u32, String> = Cache::open(&path).unwrap();
    for i in 0..1000u32 {
        cache.put(&i, &format!("value {i}")).unwrap();
    }
    println!("written");
    std::thread::sleep(std::time::Duration::from_secs(30));
}

#[test]
fn writes_survive_a_kill_9() {
    let dir = TempDir::new("killed");
    let mut child = spawn_test_until(
        "errors::child_writes_cache",
        ("CACHE_TEST_WRITE", dir.path()),
        "written",
    );
    child.kill().unwrap(); // SIGKILL: no flush, no close
    child.wait().unwrap();
    let cache: Cache<u32, String> = Cache::open(dir.path()).unwrap();
    let count = cache.keys().count();
    assert_eq!(count, 1000);
    assert_eq!(cache.get(&999).unwrap().as_deref(), Some("value 999"));
}

#[test]
fn a_cache_held_by_another_process_is_a_locked_error() {
    let dir = TempDir::new("locked");
    let mut child = spawn_test_until(
        "errors::child_holds_cache",
        ("CACHE_TEST_HOLD", dir.path()),
        "holding",
    );
    let error = Cache::<String, String>::open(dir.path()).unwrap_err();
    child.kill().unwrap();
    child.wait().unwrap();
    let message = error.to_string();
    assert_eq!(kind(error), CacheErrorKind::Locked, "{message}");
    assert!(message.contains("locked"), "{message}");
}

#[test]
fn opening_one_cache_twice_in_a_process_is_a_locked_error() {
    let dir = TempDir::new("twice");
    let _first: Cache<String, String> = Cache::open(dir.path()).unwrap();
    let error = Cache::<String, String>::open(dir.path()).unwrap_err();
    assert_eq!(kind(error), CacheErrorKind::Locked);
}

#[test]
fn a_corrupt_directory_is_a_corrupt_error() {
    let dir = TempDir::new("corrupt");
    {
        let cache: Cache<String, String> = Cache::open(dir.path()).unwrap();
        cache.put("k", "v").unwrap();
    }
    // Overwrite every manifest with garbage.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("MANIFEST")
        {
            std::fs::write(&path, b"this is not a manifest at all, not even close").unwrap();
        }
    }
    let error = Cache::<String, String>::open(dir.path()).unwrap_err();
    let message = error.to_string();
    assert_eq!(kind(error), CacheErrorKind::Corrupt, "{message}");
}

#[test]
fn a_value_of_another_type_is_a_decode_error() {
    let dir = TempDir::new("decode");
    {
        let cache: Cache<String, String> = Cache::open(dir.path()).unwrap();
        cache.put("k", "not a number").unwrap();
    }
    let numbers: Cache<String, u64> = Cache::open(dir.path()).unwrap();
    let error = numbers.get("k").unwrap_err();
    assert_eq!(kind(error), CacheErrorKind::Decode);
    let mut items = numbers.items();
    assert_eq!(
        kind(items.next().unwrap().unwrap_err()),
        CacheErrorKind::Decode
    );
    assert!(items.next().is_none());
}

/// The write-ahead log of a cache killed after writing (nothing flushed to table files yet).
fn killed_with_a_log(dir: &TempDir) -> std::path::PathBuf {
    let mut child = spawn_test_until(
        "errors::child_writes_cache",
        ("CACHE_TEST_WRITE", dir.path()),
        "written",
    );
    child.kill().unwrap();
    child.wait().unwrap();
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "log"))
        .max_by_key(|path| std::fs::metadata(path).unwrap().len())
        .expect("a write-ahead log")
}

#[test]
fn a_corrupt_write_ahead_log_is_reported_not_dropped_silently() {
    let dir = TempDir::new("corrupt-log");
    let log = killed_with_a_log(&dir);
    let mut bytes = std::fs::read(&log).unwrap();
    assert!(bytes.len() > 10_000, "{} bytes", bytes.len());
    // Damage a record in the middle (an incomplete last record is what a crash leaves, and is
    // tolerated; this is not).
    let middle = bytes.len() / 2;
    for byte in &mut bytes[middle..middle + 64] {
        *byte ^= 0xff;
    }
    std::fs::write(&log, bytes).unwrap();

    let error = Cache::<u32, String>::open(dir.path()).unwrap_err();
    let message = error.to_string();
    assert_eq!(kind(error), CacheErrorKind::Corrupt, "{message}");
    assert!(message.contains("recover_corrupt_log"), "{message}");

    // Asked to, it opens with the writes before the corruption.
    let cache: Cache<u32, String> = slipstream::CacheOptions::new()
        .recover_corrupt_log(true)
        .open(dir.path())
        .unwrap();
    assert_eq!(cache.get(&0).unwrap().as_deref(), Some("value 0"));
    let kept = cache.keys().count();
    assert!(kept > 0 && kept < 1000, "{kept} of 1000 kept");
}

#[test]
fn an_incomplete_last_log_record_is_what_a_crash_leaves_and_is_tolerated() {
    let dir = TempDir::new("torn-log");
    let log = killed_with_a_log(&dir);
    let bytes = std::fs::read(&log).unwrap();
    std::fs::write(&log, &bytes[..bytes.len() - 7]).unwrap();
    let cache: Cache<u32, String> = Cache::open(dir.path()).unwrap();
    assert_eq!(cache.keys().count(), 999);
}
