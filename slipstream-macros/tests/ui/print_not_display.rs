use slipstream::prelude::*;

struct Point {
    x: i32,
}

#[handle(source = futures::stream::iter([1i32]), sink = [print])]
fn point(x: i32) -> Point {
    Point { x }
}

fn main() {}
