//! Kafka tests. Against a real broker when `TEST_KAFKA_BROKER` holds its address (the test
//! script starts one), otherwise against librdkafka's mock cluster in this process. Tests that
//! inject broker faults always use a mock cluster of their own.

mod acked;
mod admin;
mod broker;
mod changelog;
mod cluster;
mod deadline;
mod delivery;
mod exactly_once;
mod failover;
mod faults;
mod fenced;
mod groups;
mod killed;
mod poison;
mod policies;
mod refused;
mod replica;
mod restart;
mod round_trip;
mod scrapes;
mod secure;
mod state;
mod stream;
mod synchronized;
