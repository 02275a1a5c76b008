use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u8]), backoff_ms = 50)]
fn handler(n: u8) {}

fn main() {}
