//! How far restorations have come, for health and metrics. Layer: state.

use std::collections::BTreeMap;
use std::sync::Mutex;

use slipstream_core::__component::{HealthProbe, lock};

/// The restorations under way, per changelog and partition: records applied and to apply.
#[derive(Default)]
pub(crate) struct Progress {
    restoring: Mutex<BTreeMap<(String, i32), (i64, i64)>>,
    /// Records restored so far, per changelog and partition.
    restored: Mutex<BTreeMap<(String, i32), u64>>,
}

impl Progress {
    pub(super) fn set(&self, changelog: &str, partition: i32, done: i64, total: i64) {
        lock(&self.restoring).insert((changelog.to_owned(), partition), (done, total));
    }

    pub(super) fn applied(&self, changelog: &str, partition: i32, records: u64) {
        *lock(&self.restored)
            .entry((changelog.to_owned(), partition))
            .or_default() += records;
    }

    pub(super) fn end(&self, changelog: &str, partition: i32) {
        lock(&self.restoring).remove(&(changelog.to_owned(), partition));
    }

    /// Each partition restored or restoring: `(changelog, partition, records restored, records
    /// left)`.
    pub(crate) fn report(&self) -> Vec<(String, i32, u64, i64)> {
        let restoring = lock(&self.restoring);
        let restored = lock(&self.restored);
        let mut keys: Vec<&(String, i32)> = restored.keys().chain(restoring.keys()).collect();
        keys.sort();
        keys.dedup();
        keys.into_iter()
            .map(|key| {
                let left = restoring.get(key).map_or(0, |(done, total)| total - done);
                (
                    key.0.clone(),
                    key.1,
                    restored.get(key).copied().unwrap_or(0),
                    left,
                )
            })
            .collect()
    }
}

impl HealthProbe for Progress {
    fn problem(&self) -> Option<String> {
        let restoring = lock(&self.restoring);
        if restoring.is_empty() {
            return None;
        }
        let parts: Vec<String> = restoring
            .iter()
            .map(|((changelog, partition), (done, total))| {
                format!("{changelog} partition {partition}: {done} of {total} records")
            })
            .collect();
        Some(format!("restoring state: {}", parts.join(", ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_says_restoring_with_progress_until_each_partition_is_done() {
        let progress = Progress::default();
        assert_eq!(progress.problem(), None);
        progress.set("counts", 3, 0, 5000);
        progress.applied("counts", 3, 1200);
        progress.set("counts", 3, 1200, 5000);
        assert_eq!(
            progress.problem().as_deref(),
            Some("restoring state: counts partition 3: 1200 of 5000 records")
        );
        assert_eq!(progress.report(), [("counts".to_owned(), 3, 1200, 3800)]);
        progress.end("counts", 3);
        assert_eq!(progress.problem(), None);
        // What was restored stays reported, with nothing left.
        assert_eq!(progress.report(), [("counts".to_owned(), 3, 1200, 0)]);
    }
}
