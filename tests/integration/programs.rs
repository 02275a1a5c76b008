//! Programs written the way the design brief shows, with other data and combinations: they must
//! compile and behave as documented.

use std::sync::LazyLock;

use futures::stream::{self, BoxStream, StreamExt};
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

mod inferred_closures {
    use super::*;
    pub static OUT: Collected<String> = Collected::new();
    pub static ASYNC_OUT: Collected<String> = Collected::new();

    fn remember<T: std::fmt::Display>(value: T) {
        OUT.push(format!("generic {value}"));
    }

    // Closure parameters without annotations take the handler's output type.
    #[handle(source = stream::iter([1u32, 2]),
             sink = [|n| OUT.push(format!("closure {n}")), remember,
                     |n: u32| async move { ASYNC_OUT.push(format!("async {n}")) }])]
    fn identity(n: u32) -> u32 {
        n
    }

    #[tokio::test]
    async fn closures_generic_functions_and_async_closures_are_sinks() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(
            OUT.get(),
            ["closure 1", "generic 1", "closure 2", "generic 2"]
        );
        assert_eq!(ASYNC_OUT.get(), ["async 1", "async 2"]);
    }
}

mod pairs {
    use super::*;

    static COUNTS: LazyLock<Proxy<(String, usize)>> = LazyLock::new(Proxy::new);
    pub static OUT: Collected<(String, usize)> = Collected::new();

    #[handle(source = stream::iter(["a b a", "b"]), sink = [COUNTS, print])]
    fn words(line: &'static str) {
        for word in line.split(' ') {
            emit!(word.to_string(), word.len());
        }
    }

    #[handle(source = [COUNTS], sink = [|p: (String, usize)| OUT.push(p)])]
    async fn forward(pair: (String, usize)) -> (String, usize) {
        pair
    }

    #[tokio::test]
    async fn emit_a_key_value_pair_through_a_proxy() {
        within(10, app(module_path!()).run()).await.unwrap();
        let words: Vec<String> = OUT.get().into_iter().map(|(w, _)| w).collect();
        assert_eq!(words, ["a", "b", "a", "b"]);
    }
}

mod window {
    use super::*;
    pub static OUT: Collected<Vec<i32>> = Collected::new();

    fn windows(
        size: usize,
    ) -> impl FnOnce(BoxStream<'static, i32>) -> BoxStream<'static, Vec<i32>> {
        move |s| s.chunks(size).boxed()
    }

    #[handle(source = stream::iter(1..=7), pipe = [windows(3)], sink = [|w: Vec<i32>| OUT.push(w)])]
    fn total(window: Vec<i32>) -> Vec<i32> {
        window
    }

    #[tokio::test]
    async fn a_pipe_stage_built_by_a_function_call() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), [vec![1, 2, 3], vec![4, 5, 6], vec![7]]);
    }
}

mod renamed_crate {
    use super::*;
    pub static OUT: Collected<u8> = Collected::new();

    #[renamed::handle(source = stream::iter([9u8]), sink = [|n: u8| OUT.push(n)], crate = renamed, name = "renamed_crate_handler")]
    fn through_renamed(n: u8) -> u8 {
        n
    }

    #[tokio::test]
    async fn crate_names_a_renamed_dependency() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), [9]);
        assert!(
            slipstream::handlers()
                .iter()
                .any(|h| h.name == "renamed_crate_handler")
        );
    }
}

mod current_thread {
    use super::*;
    pub static OUT: Collected<u64> = Collected::new();

    static SHARED: LazyLock<Shared<u64>> = LazyLock::new(|| Shared::new(stream::iter(0..300)));

    #[handle(source = SHARED, sink = [|n: u64| OUT.push(n)])]
    async fn a(n: u64) -> u64 {
        n
    }

    #[handle(source = SHARED, sink = [|n: u64| OUT.push(n)])]
    fn b(n: u64) -> Option<u64> {
        None.filter(|_: &u64| n > 0)
    }

    #[tokio::test(flavor = "current_thread")]
    async fn fan_out_on_a_single_threaded_runtime() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), (0..300).collect::<Vec<_>>());
    }
}
