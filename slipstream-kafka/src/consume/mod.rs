//! Consuming: one consumer per topic and run, its rebalance callbacks, the offset tracker that
//! commits what handlers have finished, the stream of decoded messages, and where reading
//! starts. Above the clients, exactly-once and producing (dead letters); below state and the
//! topic, which it reaches only through [`RebalanceListener`], a trait it owns.

mod commit;
mod listener;
mod rebalance;
mod report;
mod running;
mod start;
mod stream;
mod topic_stream;
mod tracker;

pub(crate) use listener::RebalanceListener;
pub(crate) use running::{Running, Shared};
pub use start::StartAt;
pub(crate) use stream::{OnUndecodable, Undecodable, messages};
pub use topic_stream::TopicStream;
