//! The registry of handlers (what `#[handle]` submits and what [`handlers`] lists) and the
//! wiring of one run: what handlers set up when the application starts. Below: controls,
//! monitor, hub, ack, policy. Must not name the handler loops, the handle, http or the runtime.

use std::any::Any;
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::shutdown::Shutdown;
use futures::future::BoxFuture;

use crate::ack::AckScope;
use crate::controls::Controls;
use crate::error::Error;
use crate::hub::{Feed, Hub, HubSlot, Writer};
use crate::monitor::HandlerLabel;
use crate::monitor::{ConsumerProbe, ConsumerStatus, HealthProbe};
use crate::policy::{OnError, Retry};

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
    pub(crate) default_retry: Retry,
    hubs: HashMap<usize, Box<dyn HubSlot>>,
    hub_order: Vec<usize>,
    pub(crate) tasks: Vec<Task>,
    /// Work that finishes after the handlers (committing a consumer's last offsets).
    pub(crate) background: Vec<BoxFuture<'static, ()>>,
}

impl Wiring {
    pub(crate) fn new(
        controls: Arc<Controls>,
        default_policy: OnError,
        default_retry: Retry,
    ) -> Self {
        Wiring {
            controls,
            default_policy,
            default_retry,
            hubs: HashMap::new(),
            hub_order: Vec::new(),
            tasks: Vec::new(),
            background: Vec::new(),
        }
    }

    /// The pumps of every hub, in the order the hubs were first used; consumes the hubs so that
    /// no writer handle is left behind.
    pub(crate) fn take_pumps(&mut self) -> Vec<BoxFuture<'static, ()>> {
        let mut hubs = std::mem::take(&mut self.hubs);
        self.hub_order
            .drain(..)
            .filter_map(|key| hubs.remove(&key))
            .map(|hub| hub.start())
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
    /// The handler's acknowledgements, once a source or sink asked for them.
    pub(crate) acks: Option<Arc<AckScope>>,
}

impl<'a> BuildCx<'a> {
    pub(crate) fn new(wiring: &'a mut Wiring, info: &'static HandlerInfo) -> Self {
        BuildCx {
            wiring,
            info,
            acks: None,
        }
    }

    /// The acknowledgements of the handler being wired up: a source that yields items with
    /// an [`Ack`](crate::Ack) hands each one in as it yields the item, and a sink that is
    /// still delivering an output after the handler has moved on takes a holder of the current
    /// one. Asking for it makes the handler track acknowledgements.
    #[doc(hidden)]
    pub fn acks(&mut self) -> Arc<AckScope> {
        Arc::clone(self.acks.get_or_insert_with(Arc::default))
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

    /// The retry setting of the handler being wired up.
    pub(crate) fn retry(&self) -> Retry {
        self.info.retry.unwrap_or(self.wiring.default_retry)
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
            let mut hub = make();
            hub.set_shutdown(&wiring.controls.shutdown);
            Box::new(hub)
        });
        let any: &mut dyn Any = slot.as_any();
        any.downcast_mut::<Hub<T>>()
            .expect("one static always holds one item type")
    }

    /// A subscription of the handler being wired up to the hub keyed by `key` (created by
    /// `make` if no handler of this run has touched it yet).
    #[doc(hidden)]
    pub fn subscribe<T: Clone + Send + 'static>(
        &mut self,
        key: usize,
        make: impl FnOnce() -> Hub<T>,
    ) -> Feed<T> {
        let acks = Some(self.acks());
        self.hub(key, make).subscribe(acks)
    }

    /// A writer of the handler being wired up into the hub keyed by `key` (created by `make`
    /// if needed); `None` if that hub reads an external stream.
    #[doc(hidden)]
    pub fn writer<T: Clone + Send + 'static>(
        &mut self,
        key: usize,
        make: impl FnOnce() -> Hub<T>,
    ) -> Option<Writer<T>> {
        let acks = Some(self.acks());
        self.hub(key, make).writer(acks)
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

    /// Reports what `probe` finds in the application's health while it lives (one probe shared
    /// by several handlers is asked once).
    #[doc(hidden)]
    pub fn watch_health(&self, probe: Weak<dyn HealthProbe>) {
        self.wiring.controls.monitor.add_probe(probe);
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

/// The record `#[handle]` registers for each handler: its name, module, the source and sink
/// expressions as written, and the function that wires it up when the application starts.
///
/// ```
/// for handler in slipstream::handlers() {
///     println!("{}::{} <- {:?} -> {:?}", handler.module, handler.name, handler.sources, handler.sinks);
/// }
/// ```
#[derive(Debug)]
pub struct HandlerInfo {
    /// The handler's name (the function's name unless `name = ".."` was given).
    pub name: &'static str,
    /// The module path the handler was declared in.
    pub module: &'static str,
    /// The `source` expressions, as written.
    pub sources: &'static [&'static str],
    /// The `sink` expressions, as written.
    pub sinks: &'static [&'static str],
    /// The handler's own error policy, if it set one.
    pub on_error: Option<OnError>,
    /// The handler's own retry setting, if it set one.
    pub retry: Option<Retry>,
    #[doc(hidden)]
    pub build: fn(&mut BuildCx<'_>) -> Result<(), Error>,
}

impl HandlerInfo {
    /// Whether this handler was declared in `module` or one of its submodules.
    pub fn is_in_module(&self, module: &str) -> bool {
        self.module == module
            || (self.module.starts_with(module) && self.module[module.len()..].starts_with("::"))
    }

    /// What the reports say of it.
    pub(crate) fn label(&self) -> HandlerLabel {
        HandlerLabel {
            name: self.name,
            module: self.module,
            sources: self.sources,
            sinks: self.sinks,
        }
    }
}

inventory::collect!(HandlerInfo);

/// Every handler registered with `#[handle]` in this program, in a stable order (by module,
/// then name).
pub fn handlers() -> Vec<&'static HandlerInfo> {
    let mut all: Vec<_> = inventory::iter::<HandlerInfo>.into_iter().collect();
    all.sort_by(|a, b| (a.module, a.name).cmp(&(b.module, b.name)));
    all
}
