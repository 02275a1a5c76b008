use futures::stream;
use slipstream::prelude::*;

#[handle(source = stream::iter([1u8]), on_error = "retry")]
fn handler(n: u8) {
    let _ = n;
}

fn main() {}
