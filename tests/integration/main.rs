//! Integration tests of the runtime: each module declares its own handlers and runs only them
//! (`App::module(module_path!())`), so the tests of one binary do not see each other's.

// The facade under another name, for `#[handle(crate = ..)]`.
extern crate slipstream as renamed;

mod acks;
mod admin;
mod checkpoint;
mod endpoint;
mod errors;
mod pause;
mod pipes;
mod programs;
mod proxy;
mod registry;
mod shapes;
mod shutdown;
mod sources;
