use slipstream::prelude::*;

#[handle(sink = [print])]
fn handler(n: u8) -> u8 {
    n
}

fn main() {}
