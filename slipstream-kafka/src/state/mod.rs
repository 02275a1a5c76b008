//! State that follows a topic's partitions: changelogs (appending changes, restoring them),
//! the followers a consumer tells of its rebalances, restoration progress, and replicas of a
//! whole topic. Above consuming and exactly-once; below the topic.

mod changelog;
mod followers;
mod progress;
pub(crate) mod replica;
mod restore;

pub(crate) use changelog::Input;
pub(crate) use followers::Followers;
