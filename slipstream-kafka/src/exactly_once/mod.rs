//! Exactly-once: one transactional producer per instance, shared by every topic sink, dead
//! letter topic and changelog, and the transactions that commit what they produced together
//! with the input positions. Above the clients; below producing, consuming and state, which
//! use it (a consumer takes part as a [`Member`], a trait this layer owns).

mod failure;
mod gate;
mod instance;
mod limits;
mod member;
mod recorded;
mod transactions;

pub(crate) use instance::for_conf;
pub(crate) use member::Member;
pub(crate) use transactions::{Delivered, Transactions};
