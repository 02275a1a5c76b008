//! Compile-fail tests of `#[handle]` and `emit!`: each file in `ui/` must fail to compile with
//! exactly the committed `.stderr` (regenerate with `TRYBUILD=overwrite`).

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
