//! Tests of `Cache`: key order, ranges, persistence, the size bound, transactions, the cache as
//! a sink and a source, and its errors.

mod checkpoint;
mod crash;
mod errors;
mod feed;
mod follow;
mod outside;
mod replica;
mod store;

/// A fresh directory for one test's cache, removed when dropped.
pub struct TempDir(pub std::path::PathBuf);

impl TempDir {
    pub fn new(name: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let path = std::env::temp_dir().join(format!(
            "slipstream-test-{name}-{}-{nanos}",
            std::process::id()
        ));
        TempDir(path)
    }

    pub fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The total size of the files in a directory tree.
pub fn du(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                du(&entry.path())
            } else {
                meta.len()
            }
        })
        .sum()
}
