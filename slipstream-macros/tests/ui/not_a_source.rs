use slipstream::prelude::*;

#[handle(source = 42, sink = [print])]
fn handler(n: u8) -> u8 {
    n
}

fn main() {}
