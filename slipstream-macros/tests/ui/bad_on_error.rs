use slipstream::prelude::*;

#[handle(source = futures::stream::iter([1u8]), on_error = "retry")]
fn handler(n: u8) {
    let _ = n;
}

fn main() {}
