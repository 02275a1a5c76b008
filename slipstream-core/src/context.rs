//! The wiring of one run: what handlers set up when the application starts.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;

use crate::shutdown::Shutdown;
use futures::future::BoxFuture;

use crate::error::Error;
use crate::hub::{Hub, HubSlot};
use crate::registry::{HandlerInfo, OnError};
use crate::runtime::Controls;

/// A handler's task, ready to be spawned.
pub(crate) struct Task {
    pub(crate) name: Cow<'static, str>,
    pub(crate) future: BoxFuture<'static, Result<(), Error>>,
}

/// Everything the handlers of one run set up before any of them starts: their tasks and the
/// shared feeds (hubs) they subscribe to or write into.
pub(crate) struct Wiring {
    pub(crate) controls: std::sync::Arc<Controls>,
    pub(crate) default_policy: OnError,
    hubs: HashMap<usize, Box<dyn HubSlot>>,
    hub_order: Vec<usize>,
    pub(crate) tasks: Vec<Task>,
    /// Work that finishes after the handlers (committing a consumer's last offsets).
    pub(crate) background: Vec<BoxFuture<'static, ()>>,
}

impl Wiring {
    pub(crate) fn new(controls: std::sync::Arc<Controls>, default_policy: OnError) -> Self {
        Wiring {
            controls,
            default_policy,
            hubs: HashMap::new(),
            hub_order: Vec::new(),
            tasks: Vec::new(),
            background: Vec::new(),
        }
    }

    /// The pumps of every hub, in the order the hubs were first used; consumes the hubs so that
    /// no writer handle is left behind.
    pub(crate) fn take_pumps(&mut self) -> Vec<BoxFuture<'static, ()>> {
        let shutdown = self.controls.shutdown.clone();
        let mut hubs = std::mem::take(&mut self.hubs);
        self.hub_order
            .drain(..)
            .filter_map(|key| hubs.remove(&key))
            .map(|hub| hub.start(&shutdown))
            .collect()
    }
}

/// The context a handler is wired up in when the application starts.
///
/// `#[handle]` passes it to every source and sink conversion ([`IntoSource`](crate::IntoSource),
/// [`IntoSink`](crate::IntoSink)); custom components use it to share one feed between several
/// handlers and to learn when the application shuts down.
pub struct BuildCx<'a> {
    pub(crate) wiring: &'a mut Wiring,
    pub(crate) info: &'static HandlerInfo,
    /// The Kafka message the handler is working on, shared by its topic sources and sinks.
    #[cfg(feature = "kafka")]
    pub(crate) current: Option<std::sync::Arc<crate::kafka::CurrentMessage>>,
}

impl<'a> BuildCx<'a> {
    pub(crate) fn new(wiring: &'a mut Wiring, info: &'static HandlerInfo) -> Self {
        BuildCx {
            wiring,
            info,
            #[cfg(feature = "kafka")]
            current: None,
        }
    }

    /// The slot through which this handler's topic sources tell its topic sinks which message
    /// is being handled.
    #[cfg(feature = "kafka")]
    pub(crate) fn current_message(&mut self) -> std::sync::Arc<crate::kafka::CurrentMessage> {
        std::sync::Arc::clone(self.current.get_or_insert_with(Default::default))
    }

    /// The handler being wired up.
    pub fn handler(&self) -> &'static HandlerInfo {
        self.info
    }

    /// The signal that the application is shutting down.
    pub fn shutdown(&self) -> Shutdown {
        self.wiring.controls.shutdown.clone()
    }

    /// The error policy of the handler being wired up.
    pub(crate) fn policy(&self) -> OnError {
        self.info.on_error.unwrap_or(self.wiring.default_policy)
    }

    /// The hub keyed by `key` (the address of the static that owns it), created by `make` the
    /// first time a handler of this run touches it.
    pub(crate) fn hub<T: Clone + Send + 'static>(
        &mut self,
        key: usize,
        make: impl FnOnce() -> Hub<T>,
    ) -> &mut Hub<T> {
        let wiring = &mut *self.wiring;
        let slot = wiring.hubs.entry(key).or_insert_with(|| {
            wiring.hub_order.push(key);
            Box::new(make())
        });
        let any: &mut dyn Any = slot.as_any();
        any.downcast_mut::<Hub<T>>()
            .expect("one static always holds one item type")
    }

    /// Whether a handler of this run has touched the hub keyed by `key`.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn has_hub(&self, key: usize) -> bool {
        self.wiring.hubs.contains_key(&key)
    }

    /// The flag set when the application stops on a failure.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn failed_flag(&self) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
        std::sync::Arc::clone(&self.wiring.controls.failed)
    }

    /// Reports a topic consumer in the application's health and metrics while it runs.
    #[cfg(feature = "kafka")]
    pub(crate) fn watch_consumer(&self, running: &std::sync::Arc<crate::kafka::consumer::Running>) {
        let probe: std::sync::Arc<dyn crate::monitor::ConsumerProbe> = running.clone();
        self.wiring
            .controls
            .monitor
            .add_consumer(running.status(), std::sync::Arc::downgrade(&probe));
    }

    /// Runs `work` alongside the handlers; the run ends once it has finished too.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn add_background(&mut self, work: BoxFuture<'static, ()>) {
        self.wiring.background.push(work);
    }

    /// A function that stops the application with an error (for failures outside handlers);
    /// the handler being wired up is reported as failed with it.
    #[cfg_attr(not(feature = "kafka"), allow(dead_code))]
    pub(crate) fn failer(&self) -> std::sync::Arc<dyn Fn(Error) + Send + Sync> {
        let controls = std::sync::Arc::clone(&self.wiring.controls);
        let handler = self.info.name;
        std::sync::Arc::new(move |error| controls.fail_handler(handler, error))
    }

    pub(crate) fn add_task(&mut self, future: BoxFuture<'static, Result<(), Error>>) {
        self.wiring.tasks.push(Task {
            name: Cow::Borrowed(self.info.name),
            future,
        });
    }
}
