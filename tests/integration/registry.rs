//! `slipstream::handlers()` lists what `#[handle]` registered.

use futures::stream;
use slipstream::prelude::*;

#[handle(source = [stream::iter([1u8]), stream::iter([2u8])], sink = [print, |_: u8| ()], name = "renamed")]
fn listed(n: u8) -> u8 {
    n
}

#[test]
fn handlers_lists_name_module_sources_and_sinks() {
    let info = slipstream::handlers()
        .into_iter()
        .find(|h| h.name == "renamed")
        .expect("the handler is registered under its given name");
    assert_eq!(info.module, module_path!());
    assert_eq!(info.sources, ["stream::iter([1u8])", "stream::iter([2u8])"]);
    assert_eq!(info.sinks, ["print", "|_: u8| ()"]);
    assert_eq!(info.on_error, None);
    assert!(info.is_in_module("integration"));
    assert!(!info.is_in_module("integ"));
}

#[tokio::test]
async fn an_unknown_handler_name_is_an_error() {
    let err = slipstream::App::new()
        .handlers(["no_such_handler"])
        .signals(false)
        .logging(false)
        .run()
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "no handler named `no_such_handler` is registered"
    );
}

mod duplicates {
    use super::*;

    mod a {
        use super::*;
        #[handle(source = stream::iter([1u8]))]
        fn same(_: u8) {}
    }

    mod b {
        use super::*;
        #[handle(source = stream::iter([1u8]))]
        fn same(_: u8) {}
    }

    #[tokio::test]
    async fn two_handlers_with_one_name_in_one_run_are_an_error() {
        let err = slipstream_tests::app(module_path!())
            .run()
            .await
            .unwrap_err();
        assert!(
            matches!(err, slipstream::Error::DuplicateHandler { ref name, .. } if name == "same"),
            "{err}"
        );
    }
}

#[handle(source = stream::iter([1u8]))]
#[cfg(any())]
fn compiled_out(_: u8) {}

#[handle(source = stream::iter([1u8]))]
#[cfg(any())]
fn compiled_out_generator(n: u8) {
    emit!(n);
}

#[test]
fn cfg_on_a_handler_removes_its_registration_too() {
    assert!(
        !slipstream::handlers()
            .iter()
            .any(|h| h.name.starts_with("compiled_out"))
    );
}
