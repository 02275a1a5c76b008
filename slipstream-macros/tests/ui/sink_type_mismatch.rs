use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u64]), sink = [|s: String| println!("{s}")])]
fn number(n: u64) -> u64 {
    n
}

fn main() {}
