//! What follows a consumer's assignment, as the consumer sees it (a trait the state layer
//! implements: this layer names none of it). Layer: consuming.

use crate::conf::Conf;
use slipstream_core::__component::RestoreReport;
use slipstream_core::Error;

/// What follows the consumer's assignment (the state of caches that follow its topic):
/// implemented by the changelogs, above this module, which names none of them.
pub(crate) trait RebalanceListener: Send + Sync {
    /// Whether any state follows the topic.
    fn any(&self) -> bool;
    /// Records where the group stood as this process's consumer of the topic starts (`conf`,
    /// its settings, names the group).
    fn note_start(&self, conf: &Conf, group: &str, topic: &str);
    /// Restores `partitions` (the group assigned them) before any of their messages is read.
    fn assigned(&self, partitions: &[i32]) -> Result<(), Error>;
    /// `partitions` went elsewhere.
    fn revoked(&self, partitions: &[i32]);
    /// Every partition went (a failed rebalance unassigns them all).
    fn revoked_all(&self);
    /// Stops the application (the state cannot follow the partitions).
    fn stop(&self, error: Error);
    /// The restorations under way, for health.
    fn restorations(&self) -> Vec<RestoreReport>;
}
