use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u8]), on_error = "skip", dead_letter = "failed")]
fn handler(n: u8) {}

fn main() {}
