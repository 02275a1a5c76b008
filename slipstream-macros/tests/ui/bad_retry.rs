use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u8]), retry = -1)]
fn handler(n: u8) {}

fn main() {}
