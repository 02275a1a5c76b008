//! The caches that follow one topic's partitions, as its consumer's rebalance listener:
//! restored before assigned partitions are read, let go when they are revoked. Layer: state
//! (above consuming, whose listener trait it implements; below the topic).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, OnceLock};

use slipstream_core::__component::{RestoreReport, lock};
use slipstream_core::Error;
use slipstream_core::partition::{Changelog, PartitionState};

use super::changelog::{CommittedPast, Input, TopicChangelog, committed_past, fail};
use super::progress::Progress;
use crate::conf::Conf;
use crate::consume::RebalanceListener;
use crate::fatal::Fatal;

/// The states following one topic, shared by the topic and its consumer.
#[derive(Default)]
pub(crate) struct Followers {
    list: Mutex<Vec<Arc<TopicChangelog>>>,
    /// The partitions the group has assigned to this instance (whether or not any state
    /// followed the topic then: a cache registering later restores only these).
    owned: Arc<Mutex<BTreeSet<i32>>>,
    /// Stops the running application (set when a handler reads the topic).
    fatal: Arc<Mutex<Option<Fatal>>>,
    progress: Arc<Progress>,
    /// A partition the group had committed past its start, with the offset, as this process's
    /// consumer of the topic started (before it committed anything); `None` until one started.
    committed_before: Arc<Mutex<Option<CommittedPast>>>,
}

impl Followers {
    pub(crate) fn add(
        &self,
        input: &'static dyn Input,
        state: Arc<dyn PartitionState>,
        name: Option<String>,
    ) -> Arc<TopicChangelog> {
        // Another state following the topic under the same name would share its changelog.
        let twin = lock(&self.list)
            .iter()
            .find(|other| match (&other.requested, &name) {
                (Some(theirs), Some(ours)) => theirs == ours,
                (None, None) => other.state.store() == state.store(),
                _ => false,
            })
            .map(|other| other.state.name());
        let changelog = Arc::new(TopicChangelog {
            input,
            state,
            twin,
            requested: name,
            ready: OnceLock::new(),
            preparing: Mutex::new(()),
            restoring: Mutex::new(()),
            owned: Arc::clone(&self.owned),
            fatal: Arc::clone(&self.fatal),
            progress: Arc::clone(&self.progress),
            committed_before: Arc::clone(&self.committed_before),
        });
        lock(&self.list).push(Arc::clone(&changelog));
        changelog
    }

    fn all(&self) -> Vec<Arc<TopicChangelog>> {
        lock(&self.list).clone()
    }

    /// Checks (or creates) every changelog: called when a consumer of the topic starts.
    pub(crate) fn prepare(&self, fatal: Option<Fatal>) -> Result<(), Error> {
        if fatal.is_some() {
            *lock(&self.fatal) = fatal;
        }
        self.all().iter().try_for_each(|c| c.prepare())
    }

    /// The restoration's health probe.
    pub(crate) fn progress(&self) -> Arc<Progress> {
        Arc::clone(&self.progress)
    }
}

impl RebalanceListener for Followers {
    /// Records where the group stood as this process's consumer of the topic starts (`conf`,
    /// its settings, names the group): a changelog found missing later is compared with it, not
    /// with what this process has committed since.
    fn note_start(&self, conf: &Conf, group: &str, topic: &str) {
        let mut before = lock(&self.committed_before);
        if before.is_some() {
            return;
        }
        match committed_past(conf, group, topic) {
            Ok(snapshot) => *before = Some(snapshot),
            Err(error) => {
                tracing::debug!(topic, %error, "cannot read the group's committed offsets at start")
            }
        }
    }

    /// Whether any state follows the topic.
    fn any(&self) -> bool {
        !lock(&self.list).is_empty()
    }

    /// Restores `partitions` of every state (the group assigned them).
    fn assigned(&self, partitions: &[i32]) -> Result<(), Error> {
        lock(&self.owned).extend(partitions.iter().copied());
        self.all().iter().try_for_each(|c| c.restore(partitions))
    }

    /// `partitions` went elsewhere.
    fn revoked(&self, partitions: &[i32]) {
        {
            let mut owned = lock(&self.owned);
            for partition in partitions {
                owned.remove(partition);
            }
        }
        for changelog in self.all() {
            changelog.state.revoked(partitions);
        }
    }

    /// Every partition went (a failed rebalance unassigns them all).
    fn revoked_all(&self) {
        let owned: Vec<i32> = lock(&self.owned).iter().copied().collect();
        self.revoked(&owned);
    }

    /// Stops the application (a restoration failed).
    fn stop(&self, error: Error) {
        fail(&self.fatal, error);
    }

    fn restorations(&self) -> Vec<RestoreReport> {
        self.progress
            .report()
            .into_iter()
            .map(|(changelog, partition, restored, left)| RestoreReport {
                changelog,
                partition,
                restored,
                left,
            })
            .collect()
    }
}
