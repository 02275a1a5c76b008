use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u8]), sinks = [print])]
fn handler(n: u8) -> u8 {
    n
}

fn main() {}
