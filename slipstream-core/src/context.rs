//! The wiring of one run: what handlers set up when the application starts.

use std::any::{Any, TypeId};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::shutdown::Shutdown;
use futures::future::BoxFuture;

use crate::error::Error;
use crate::hub::{Hub, HubSlot};
use crate::monitor::{ConsumerProbe, ConsumerStatus};
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
    pub(crate) controls: Arc<Controls>,
    pub(crate) default_policy: OnError,
    hubs: HashMap<usize, Box<dyn HubSlot>>,
    hub_order: Vec<usize>,
    pub(crate) tasks: Vec<Task>,
    /// Work that finishes after the handlers (committing a consumer's last offsets).
    pub(crate) background: Vec<BoxFuture<'static, ()>>,
}

impl Wiring {
    pub(crate) fn new(controls: Arc<Controls>, default_policy: OnError) -> Self {
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

/// Where the item a handler is working on came from, for its failure logs: a source that reads
/// from partitioned, offset-addressed input (a Kafka topic) registers one with
/// `BuildCx::set_origin`.
pub trait ItemOrigin: Send + Sync {
    /// The current item's partition and offset, if the handler is working on one.
    fn position(&self) -> Option<(i32, i64)>;
}

/// The context a handler is wired up in when the application starts.
///
/// `#[handle]` passes it to every source and sink conversion ([`IntoSource`](crate::IntoSource),
/// [`IntoSink`](crate::IntoSink)); custom components use it to share one feed between several
/// handlers and to learn when the application shuts down.
pub struct BuildCx<'a> {
    pub(crate) wiring: &'a mut Wiring,
    pub(crate) info: &'static HandlerInfo,
    /// Values shared by the handler's sources and sinks, one per type.
    extensions: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
    /// Where the item being handled came from.
    pub(crate) origin: Option<Arc<dyn ItemOrigin>>,
}

impl<'a> BuildCx<'a> {
    pub(crate) fn new(wiring: &'a mut Wiring, info: &'static HandlerInfo) -> Self {
        BuildCx {
            wiring,
            info,
            extensions: HashMap::new(),
            origin: None,
        }
    }

    /// The value of type `T` shared by this handler's sources and sinks, created on first use
    /// (how a topic source tells the handler's topic sinks which message is being handled).
    #[doc(hidden)]
    pub fn shared<T: Default + Send + Sync + 'static>(&mut self) -> Arc<T> {
        let value = self
            .extensions
            .entry(TypeId::of::<T>())
            .or_insert_with(|| Arc::new(T::default()));
        Arc::clone(value)
            .downcast::<T>()
            .expect("one type id always holds one type")
    }

    /// Tells the handler where each item it works on came from (for its failure logs).
    #[doc(hidden)]
    pub fn set_origin(&mut self, origin: Arc<dyn ItemOrigin>) {
        self.origin = Some(origin);
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
    #[doc(hidden)]
    pub fn policy(&self) -> OnError {
        self.info.on_error.unwrap_or(self.wiring.default_policy)
    }

    /// The hub keyed by `key` (the address of the static that owns it), created by `make` the
    /// first time a handler of this run touches it.
    #[doc(hidden)]
    pub fn hub<T: Clone + Send + 'static>(
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
    #[doc(hidden)]
    pub fn has_hub(&self, key: usize) -> bool {
        self.wiring.hubs.contains_key(&key)
    }

    /// The flag set when the application stops on a failure.
    #[doc(hidden)]
    pub fn failed_flag(&self) -> Arc<std::sync::atomic::AtomicBool> {
        Arc::clone(&self.wiring.controls.failed)
    }

    /// Reports a consumer in the application's health and metrics while it runs.
    #[doc(hidden)]
    pub fn watch_consumer(&self, status: Arc<ConsumerStatus>, probe: Weak<dyn ConsumerProbe>) {
        self.wiring.controls.monitor.add_consumer(status, probe);
    }

    /// Runs `work` alongside the handlers; the run ends once it has finished too.
    #[doc(hidden)]
    pub fn add_background(&mut self, work: BoxFuture<'static, ()>) {
        self.wiring.background.push(work);
    }

    /// A function that stops the application with an error (for failures outside handlers);
    /// the handler being wired up is reported as failed with it.
    #[doc(hidden)]
    pub fn failer(&self) -> Arc<dyn Fn(Error) + Send + Sync> {
        let controls = Arc::clone(&self.wiring.controls);
        let handler = self.info.name;
        Arc::new(move |error| controls.fail_handler(handler, error))
    }

    pub(crate) fn add_task(&mut self, future: BoxFuture<'static, Result<(), Error>>) {
        self.wiring.tasks.push(Task {
            name: Cow::Borrowed(self.info.name),
            future,
        });
    }
}
