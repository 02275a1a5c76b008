//! Every handler shape (sync/async, zero or one parameter) and output kind.

use futures::stream;
use slipstream::prelude::*;
use slipstream_tests::{Collected, app, within};

fn numbers() -> impl futures::Stream<Item = u64> {
    stream::iter(0..6)
}

mod sync_value {
    use super::*;
    pub static OUT: Collected<String> = Collected::new();

    #[handle(source = numbers(), sink = [|s: String| OUT.push(s)])]
    fn value(n: u64) -> String {
        format!("v{n}")
    }

    #[tokio::test]
    async fn sends_one_output_per_item_in_order() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), ["v0", "v1", "v2", "v3", "v4", "v5"]);
        // A plain handler stays an ordinary function.
        assert_eq!(value(7), "v7");
    }
}

mod sync_option {
    use super::*;
    pub static OUT: Collected<u64> = Collected::new();

    #[handle(source = numbers(), sink = [|n: u64| OUT.push(n)])]
    fn odd(n: u64) -> Option<u64> {
        (n % 2 == 1).then_some(n)
    }

    #[tokio::test]
    async fn sends_only_some() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), [1, 3, 5]);
    }
}

mod sync_result {
    use super::*;
    pub static OUT: Collected<u64> = Collected::new();

    #[handle(source = numbers(), sink = [|n: u64| OUT.push(n)], on_error = "skip")]
    fn checked(n: u64) -> Result<u64, String> {
        if n == 2 {
            Err(format!("{n} is unlucky"))
        } else {
            Ok(n * 10)
        }
    }

    #[tokio::test]
    async fn sends_ok_values_and_skips_errors() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), [0, 10, 30, 40, 50]);
    }
}

mod sync_unit {
    use super::*;
    pub static SEEN: Collected<u64> = Collected::new();

    #[handle(source = numbers())]
    fn consume(n: u64) {
        SEEN.push(n);
    }

    #[handle(source = numbers())]
    fn consume_fallible(n: u64) -> Result<(), std::io::Error> {
        SEEN.push(100 + n);
        Ok(())
    }

    #[tokio::test]
    async fn runs_handlers_without_outputs() {
        within(10, app(module_path!()).run()).await.unwrap();
        let mut seen = SEEN.get();
        seen.sort();
        assert_eq!(seen, [0, 1, 2, 3, 4, 5, 100, 101, 102, 103, 104, 105]);
    }
}

mod zero_params {
    use super::*;
    pub static OUT: Collected<&'static str> = Collected::new();

    #[handle(source = stream::iter(["a", "b", "c"]), sink = [|s: &'static str| OUT.push(s)])]
    fn tick() -> &'static str {
        "tick"
    }

    #[tokio::test]
    async fn is_called_once_per_item() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(OUT.get(), ["tick", "tick", "tick"]);
    }
}

mod sync_generator {
    use super::*;
    pub static OUT: Collected<String> = Collected::new();

    #[handle(source = numbers(), sink = [|s: String| OUT.push(s)])]
    fn evens(n: u64) {
        if n == 0 {
            emit!(format!("zero: {n}"));
        }
        if n.is_multiple_of(2) {
            emit!(format!("even: {n}"));
        }
        match n {
            1 => emit!("one".to_string()),
            5 => {
                for i in 0..3 {
                    emit!(format!("five.{i}"));
                }
            }
            _ => {}
        }
    }

    #[tokio::test]
    async fn emits_any_number_of_values_in_order() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(
            OUT.get(),
            [
                "zero: 0", "even: 0", "one", "even: 2", "even: 4", "five.0", "five.1", "five.2"
            ]
        );
    }
}

mod generator_result {
    use super::*;
    pub static OUT: Collected<(String, u64)> = Collected::new();

    /// Emits a pair with `emit!(key, value)`; `?` and early returns work; values emitted before
    /// an error are still delivered.
    #[handle(source = stream::iter(["1", "x", "3"]), sink = [|p: (String, u64)| OUT.push(p)], on_error = "skip")]
    fn parse(word: &'static str) -> Result<(), std::num::ParseIntError> {
        emit!(format!("before {word}"), 0);
        let n: u64 = word.parse()?;
        if n == 3 {
            return Ok(());
        }
        emit!(word.to_string(), n);
        Ok(())
    }

    #[tokio::test]
    async fn delivers_emitted_values_and_routes_errors() {
        within(10, app(module_path!()).run()).await.unwrap();
        let out = OUT.get();
        let expected: Vec<(String, u64)> = vec![
            ("before 1".into(), 0),
            ("1".into(), 1),
            ("before x".into(), 0),
            ("before 3".into(), 0),
        ];
        assert_eq!(out, expected);
    }
}

mod async_shapes {
    use super::*;
    use std::time::Duration;
    pub static OUT: Collected<String> = Collected::new();
    pub static UNIT: Collected<u64> = Collected::new();

    async fn slow<T>(value: T) -> T {
        tokio::time::sleep(Duration::from_millis(1)).await;
        value
    }

    #[handle(source = stream::iter(0..3u64), sink = [|s: String| OUT.push(s)])]
    async fn value(n: u64) -> String {
        slow(format!("value {n}")).await
    }

    #[handle(source = stream::iter(10..14u64), sink = [|s: String| OUT.push(s)])]
    async fn option(n: u64) -> Option<String> {
        slow(n.is_multiple_of(2))
            .await
            .then(|| format!("option {n}"))
    }

    #[handle(source = stream::iter(20..23u64), sink = [|s: String| OUT.push(s)], on_error = "skip")]
    async fn result(n: u64) -> anyhow::Result<String> {
        anyhow::ensure!(slow(n).await != 21, "no 21");
        Ok(format!("result {n}"))
    }

    #[handle(source = stream::iter(30..32u64))]
    async fn unit(n: u64) {
        UNIT.push(slow(n).await);
    }

    #[handle(source = stream::iter(40..42u64), on_error = "skip")]
    async fn unit_result(n: u64) -> Result<(), String> {
        UNIT.push(slow(n).await);
        Err("ignored".into())
    }

    #[tokio::test]
    async fn every_async_output_kind() {
        within(10, app(module_path!()).run()).await.unwrap();
        let of = |prefix: &str| OUT.starting_with(prefix);
        assert_eq!(of("value"), ["value 0", "value 1", "value 2"]);
        assert_eq!(of("option"), ["option 10", "option 12"]);
        assert_eq!(of("result"), ["result 20", "result 22"]);
        assert_eq!(OUT.len(), 7);
        let mut unit = UNIT.get();
        unit.sort();
        assert_eq!(unit, [30, 31, 40, 41]);
    }
}

mod async_generator {
    use super::*;
    use std::sync::Mutex;
    pub static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn log(line: String) {
        LOG.lock().unwrap().push(line);
    }

    async fn sink(value: u64) {
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        log(format!("sink {value}"));
    }

    #[handle(source = stream::iter([1u64, 2]), sink = [sink], on_error = "skip")]
    async fn twice(n: u64) -> Result<(), String> {
        for i in 0..2 {
            log(format!("emit {n}.{i}"));
            emit!(n * 10 + i);
            tokio::task::yield_now().await;
        }
        if n == 2 {
            return Err("stop here".into());
        }
        log(format!("done {n}"));
        Ok(())
    }

    #[tokio::test]
    async fn each_emit_reaches_the_sinks_before_the_body_continues() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(
            *LOG.lock().unwrap(),
            [
                "emit 1.0", "sink 10", "emit 1.1", "sink 11", "done 1", "emit 2.0", "sink 20",
                "emit 2.1", "sink 21"
            ]
        );
    }
}

mod several_sinks {
    use super::*;
    use std::sync::Mutex;
    pub static LOG: Mutex<Vec<String>> = Mutex::new(Vec::new());

    fn first(s: String) {
        LOG.lock().unwrap().push(format!("first {s}"));
    }

    async fn second(s: String) -> Result<(), std::io::Error> {
        LOG.lock().unwrap().push(format!("second {s}"));
        Ok(())
    }

    struct Third;
    impl Sink<String> for Third {
        async fn send(&mut self, s: String) -> Result<(), slipstream::BoxError> {
            LOG.lock().unwrap().push(format!("third {s}"));
            Ok(())
        }
        async fn close(&mut self) -> Result<(), slipstream::BoxError> {
            LOG.lock().unwrap().push("third closed".into());
            Ok(())
        }
    }

    #[handle(source = stream::iter(["a", "b"]), sink = [first, second, Third, print])]
    fn upper(s: &'static str) -> String {
        s.to_uppercase()
    }

    #[tokio::test]
    async fn every_output_goes_to_every_sink_in_order() {
        within(10, app(module_path!()).run()).await.unwrap();
        assert_eq!(
            *LOG.lock().unwrap(),
            [
                "first A",
                "second A",
                "third A",
                "first B",
                "second B",
                "third B",
                "third closed"
            ]
        );
    }
}

mod emit_in_other_macros {
    use super::*;
    pub static OUT: Collected<u64> = Collected::new();

    #[handle(source = stream::iter([1u64, 2]), sink = [|n: u64| OUT.push(n)])]
    async fn selected(n: u64) {
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_millis(1)) => emit!(n * 10),
        }
    }

    #[handle(source = stream::iter([3u64]), sink = [|n: u64| OUT.push(n)])]
    fn in_closure_and_macro(n: u64) {
        std::iter::once(n).for_each(|x| emit!(x));
        assert!({
            emit!(n + 1);
            true
        });
    }

    #[tokio::test]
    async fn emit_works_inside_other_macros_and_closures() {
        within(10, app(module_path!()).run()).await.unwrap();
        let mut out = OUT.get();
        out.sort();
        assert_eq!(out, [3, 4, 10, 20]);
    }
}
