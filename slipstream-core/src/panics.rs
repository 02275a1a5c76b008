//! Panics the runtime catches and logs (in handlers, their sinks, exit hooks and handler set-up)
//! are reported once: by the runtime's error log, which says where the panic happened, instead
//! of also by the panic hook installed before (Rust's default one prints them to standard
//! error). Panics anywhere else (a source, a pipe stage, any other task) reach that hook
//! untouched; so do caught ones when nothing would log them (no `tracing` subscriber taking
//! errors). A panic a handler catches itself, inside its own code, counts as caught: it reaches
//! no hook.
//!
//! Below: error only. Must not name the handlers, the context or the runtime.

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

thread_local! {
    /// How many runtime-caught sections this thread is inside.
    static QUIET: Cell<u32> = const { Cell::new(0) };
    /// Where the last panic of a quiet section happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Installs the hook, once per process, in front of the one installed before.
pub(crate) fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let quiet = QUIET.with(Cell::get) > 0 && tracing::enabled!(tracing::Level::ERROR);
            let location = quiet.then(|| info.location().map(ToString::to_string));
            LOCATION.with(|l| *l.borrow_mut() = location.flatten());
            if !quiet {
                previous(info);
            }
        }));
    });
}

/// Where the last panic caught on this thread happened (taken: asked once).
pub(crate) fn take_location() -> Option<String> {
    LOCATION.with(|l| l.borrow_mut().take())
}

/// A caught panic's message, with where it happened when known (`boom (at src/main.rs:3:5)`).
pub(crate) fn describe(payload: &(dyn std::any::Any + Send)) -> String {
    let message = crate::error::panic_message(payload);
    match take_location() {
        Some(location) => format!("{message} (at {location})"),
        None => message,
    }
}

/// Marks this thread as inside a caught section until dropped (also when unwinding).
struct Section;

impl Section {
    fn enter() -> Section {
        QUIET.with(|q| q.set(q.get() + 1));
        // A location left by an earlier panic is not this section's.
        LOCATION.with(|l| l.borrow_mut().take());
        Section
    }
}

impl Drop for Section {
    fn drop(&mut self) {
        QUIET.with(|q| q.set(q.get() - 1));
    }
}

/// Runs `f` as a caught section.
pub(crate) fn quietly<R>(f: impl FnOnce() -> R) -> R {
    let _section = Section::enter();
    f()
}

pin_project! {
    /// A future whose every poll is a caught section: a handler's call, a sink's send.
    pub(crate) struct Quiet<F> {
        #[pin]
        inner: F,
    }
}

impl<F> Quiet<F> {
    pub(crate) fn new(inner: F) -> Quiet<F> {
        Quiet { inner }
    }
}

impl<F: Future> Future for Quiet<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _section = Section::enter();
        self.project().inner.poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quiet_section_records_where_it_panicked_and_ends_when_unwinding() {
        install();
        // A subscriber taking errors, so that the runtime's log would report the panic.
        let subscriber = tracing_subscriber_stub::Errors;
        tracing::subscriber::with_default(subscriber, || {
            let caught = std::panic::catch_unwind(|| quietly(|| panic!("boom")));
            assert!(caught.is_err());
            let location = take_location().expect("the location");
            assert!(location.starts_with(file!()), "{location}");
            assert_eq!(QUIET.with(Cell::get), 0);
            assert_eq!(take_location(), None);
        });
    }

    /// The smallest subscriber that takes every event.
    mod tracing_subscriber_stub {
        use tracing::span::{Attributes, Id, Record};
        use tracing::{Event, Metadata, Subscriber};

        pub(super) struct Errors;

        impl Subscriber for Errors {
            fn enabled(&self, _: &Metadata<'_>) -> bool {
                true
            }
            fn new_span(&self, _: &Attributes<'_>) -> Id {
                Id::from_u64(1)
            }
            fn record(&self, _: &Id, _: &Record<'_>) {}
            fn record_follows_from(&self, _: &Id, _: &Id) {}
            fn event(&self, _: &Event<'_>) {}
            fn enter(&self, _: &Id) {}
            fn exit(&self, _: &Id) {}
        }
    }
}
