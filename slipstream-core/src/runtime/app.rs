//! [`App`] and [`run`]: start every registered handler and run them until their sources are
//! drained or the application shuts down; then the exit hooks. The top of the core: it may
//! name anything below (context, controls, handle, http); nothing names it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use tokio::task::JoinSet;

use super::hooks::{HOOKS, Hook};
use super::signals::{Signals, init_logging};
use crate::context::{BuildCx, HandlerInfo, Wiring, handlers};
use crate::controls::Controls;
use crate::error::{Error, panic_message};
use crate::handle::AppHandle;
use crate::panics;
use crate::policy::{OnError, Retry};
use crate::sync::lock;

/// Runs every handler registered with `#[handle]` until every finite source is drained and
/// every output is delivered, or until Ctrl-C / SIGTERM.
///
/// On a signal, sources stop, in-flight items finish, sinks are closed and the exit hooks
/// ([`on_shutdown`](crate::on_shutdown)) run before it returns `Ok(())`; a second signal exits
/// the process at once. A handler with the `stop` error policy that fails makes it return that
/// error.
/// Equivalent to `App::new().run()`; see [`App`] for the options.
///
/// ```no_run
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     slipstream::run().await?;
///     Ok(())
/// }
/// ```
pub async fn run() -> Result<(), Error> {
    App::new().run().await
}

/// An application: which handlers to run and how. [`run`] is `App::new().run()`.
///
/// ```no_run
/// use slipstream::{App, OnError};
///
/// #[tokio::main]
/// async fn main() -> anyhow::Result<()> {
///     App::new()
///         .on_error(OnError::Skip)          // log, count and skip failed items
///         .on_shutdown(|| println!("bye"))  // this app's own exit hook
///         .run()
///         .await?;
///     Ok(())
/// }
/// ```
pub struct App {
    controls: Arc<Controls>,
    filter: Filter,
    policy: OnError,
    retry: Retry,
    shutdown_timeout: std::time::Duration,
    signals: bool,
    logging: bool,
    hooks: Vec<Hook>,
    #[cfg(feature = "http")]
    http: Option<String>,
}

enum Filter {
    All,
    Module(String),
    Names(Vec<String>),
}

impl Default for App {
    fn default() -> Self {
        Self::new()
    }
}

impl App {
    /// An application running every registered handler, stopping on Ctrl-C / SIGTERM,
    /// stopping on the first item a handler fails (see [`OnError`]), and logging to standard
    /// error (unless a `tracing` subscriber is already installed; `RUST_LOG` sets the level,
    /// `info` by default).
    pub fn new() -> Self {
        App {
            controls: Arc::new(Controls::new()),
            filter: Filter::All,
            policy: OnError::Stop,
            retry: Retry::NONE,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            signals: true,
            logging: true,
            hooks: Vec::new(),
            #[cfg(feature = "http")]
            http: None,
        }
    }

    /// Runs only the handlers declared in `module` (a `module_path!()`) or its submodules.
    pub fn module(mut self, module: impl Into<String>) -> Self {
        self.filter = Filter::Module(module.into());
        self
    }

    /// Runs only the handlers with these names; an unknown name makes [`run`](App::run) fail.
    pub fn handlers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.filter = Filter::Names(names.into_iter().map(Into::into).collect());
        self
    }

    /// The error policy of every handler that does not set its own `on_error`.
    pub fn on_error(mut self, policy: OnError) -> Self {
        self.policy = policy;
        self
    }

    /// The retry setting of every handler that does not set its own `retry` (none by default).
    pub fn retry(mut self, retry: Retry) -> Self {
        self.retry = retry;
        self
    }

    /// How long a graceful shutdown may take once it has begun (30 s by default): past it, the
    /// handlers and feeds still running are dropped, what they held stays unacknowledged (a Kafka
    /// input is read again after a restart), and [`run`](App::run) returns
    /// [`Error::ShutdownTimeout`] saying how many items were left.
    pub fn shutdown_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.shutdown_timeout = timeout;
        self
    }

    /// Whether Ctrl-C and SIGTERM shut the application down (on by default).
    pub fn signals(mut self, enabled: bool) -> Self {
        self.signals = enabled;
        self
    }

    /// Whether to install a `tracing` subscriber logging to standard error when none is
    /// installed yet (on by default).
    pub fn logging(mut self, enabled: bool) -> Self {
        self.logging = enabled;
        self
    }

    /// An exit hook of this application (see [`on_shutdown`](crate::on_shutdown)); it runs
    /// before the global ones.
    pub fn on_shutdown(mut self, hook: impl FnOnce() + Send + 'static) -> Self {
        self.hooks.push(Hook::Sync(Box::new(hook)));
        self
    }

    /// An async exit hook of this application.
    pub fn on_shutdown_async(mut self, hook: impl Future<Output = ()> + Send + 'static) -> Self {
        self.hooks.push(Hook::Async(hook.boxed()));
        self
    }

    /// Whether to count each handler's items, outputs and errors and time its work, for
    /// [`AppHandle::metrics`] (off by default: it costs two clock reads per item; the admin server
    /// turns it on).
    pub fn metrics(self, enabled: bool) -> Self {
        self.controls.monitor.set_measure(enabled);
        self
    }

    /// Serves `GET /health`, `GET /metrics` (Prometheus) and `GET /handlers` (JSON) on `addr`
    /// while the application runs, and turns [`metrics`](Self::metrics) on. `addr` is
    /// `"HOST:PORT"`, or a bare port (`"9100"` or `":9100"`) on 127.0.0.1; port 0 picks a free
    /// one ([`AppHandle::http_addr`] tells which). The `SLIPSTREAM_HTTP_ADDR` environment
    /// variable, when set, takes precedence. [`run`](Self::run) fails if the address cannot be
    /// bound.
    ///
    /// ```no_run
    /// # async fn doc() -> anyhow::Result<()> {
    /// slipstream::App::new().http("9100").run().await?;
    /// // curl http://127.0.0.1:9100/health
    /// # Ok(())
    /// # }
    /// ```
    #[cfg(feature = "http")]
    pub fn http(mut self, addr: impl Into<String>) -> Self {
        self.http = Some(addr.into());
        self
    }

    /// A handle to shut the application down or pause handlers while it runs.
    pub fn handle(&self) -> AppHandle {
        AppHandle::new(Arc::clone(&self.controls))
    }

    fn selected(&self) -> Result<Vec<&'static HandlerInfo>, Error> {
        let all = handlers();
        match &self.filter {
            Filter::All => Ok(all),
            Filter::Module(module) => {
                Ok(all.into_iter().filter(|h| h.is_in_module(module)).collect())
            }
            Filter::Names(names) => names
                .iter()
                .map(|name| {
                    all.iter()
                        .copied()
                        .find(|h| h.name == name)
                        .ok_or_else(|| Error::UnknownHandler(name.clone()))
                })
                .collect(),
        }
    }

    /// Starts the selected handlers and runs them until every finite source is drained and
    /// every output delivered, or until shutdown; then runs the exit hooks.
    ///
    /// Returns the first error that stopped the application: a handler whose policy is `stop`
    /// failing, a handler that cannot start ([`Error::Build`], [`Error::UnknownHandler`],
    /// [`Error::DuplicateHandler`]), a task ending abnormally ([`Error::Task`]), a topic that
    /// cannot be read, or an admin server that cannot listen.
    pub async fn run(mut self) -> Result<(), Error> {
        if self.logging {
            init_logging();
        }
        // Panics caught in handlers are logged once, by the handler loop, with where they
        // happened.
        panics::install();
        // Listen for signals from the start to the end of the exit hooks: a second signal
        // exits at once even while a hook hangs.
        let signals = if self.signals {
            match Signals::new() {
                Ok(signals) => Some(tokio::spawn(signals.listen(self.controls.shutdown.clone()))),
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for shutdown signals");
                    None
                }
            }
        } else {
            None
        };
        let hooks = std::mem::take(&mut self.hooks);
        let controls = Arc::clone(&self.controls);
        // The admin server answers until the exit hooks have run.
        let (admin, result) = match self.start_admin().await {
            Ok(admin) => (admin, self.run_handlers().await),
            Err(error) => (Default::default(), Err(error)),
        };
        // Whatever ended the run, anything waiting for the shutdown may go now.
        controls.shutdown.trigger();
        for hook in hooks {
            hook.call().await;
        }
        let global = std::mem::take(&mut *lock(&HOOKS));
        for hook in global {
            hook.call().await;
        }
        #[cfg(feature = "http")]
        if let Some(server) = admin {
            server.stop().await;
        }
        #[cfg(not(feature = "http"))]
        let () = admin;
        if let Some(signals) = signals {
            signals.abort();
        }
        result
    }

    /// Starts the admin server when one is asked for (by code or environment).
    #[cfg(feature = "http")]
    async fn start_admin(&mut self) -> Result<Option<crate::http::Server>, Error> {
        let addr = match std::env::var(crate::http::ENV) {
            Ok(addr) if !addr.trim().is_empty() => Some((addr, true)),
            _ => self.http.take().map(|addr| (addr, false)),
        };
        let server = match addr {
            Some((addr, from_env)) => {
                self.controls.monitor.set_measure(true);
                crate::http::Server::start(&addr, self.handle())
                    .await
                    .map(Some)
                    .map_err(|error| match error {
                        // Say where an address nobody wrote in the code came from.
                        Error::Http { addr, source } if from_env => Error::Http {
                            addr: format!("{}={addr}", crate::http::ENV),
                            source,
                        },
                        other => other,
                    })
            }
            None => Ok(None),
        };
        if !matches!(server, Ok(Some(_))) {
            self.controls
                .http
                .send_replace(crate::controls::Listening::Off);
        }
        server
    }

    #[cfg(not(feature = "http"))]
    async fn start_admin(&mut self) -> Result<(), Error> {
        if std::env::var_os("SLIPSTREAM_HTTP_ADDR").is_some() {
            tracing::warn!(
                "SLIPSTREAM_HTTP_ADDR is set, but slipstream was built without its `http` feature: no admin server"
            );
        }
        Ok(())
    }

    async fn run_handlers(self) -> Result<(), Error> {
        let selected = self.selected()?;
        check_unique_names(&selected)?;
        let controls = Arc::clone(&self.controls);
        for info in &selected {
            let policy = info.on_error.unwrap_or(self.policy);
            let pause = controls.pause_handle(info.name);
            controls.monitor.add_handler(info.label(), policy, pause);
        }
        // Only now: health must not see a started run without its handlers.
        controls.monitor.start();
        let mut wiring = Wiring::new(Arc::clone(&controls), self.policy, self.retry);
        for info in &selected {
            let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                panics::quietly(|| (info.build)(&mut BuildCx::new(&mut wiring, info)))
            }));
            match built {
                Ok(Ok(())) => {}
                Ok(Err(error)) => return Err(error),
                Err(panic) => {
                    return Err(Error::Build {
                        handler: info.name.into(),
                        source: panics::describe(&*panic).into(),
                    });
                }
            }
        }
        tracing::debug!(handlers = selected.len(), "starting");

        let mut pumps = JoinSet::new();
        for pump in wiring.take_pumps() {
            pumps.spawn(pump);
        }
        let mut tasks = JoinSet::new();
        let mut names = HashMap::new();
        for task in wiring.tasks.drain(..) {
            let id = tasks.spawn(task.future).id();
            names.insert(id, task.name);
        }
        let mut background = JoinSet::new();
        for work in wiring.background.drain(..) {
            background.spawn(work);
        }
        drop(wiring);

        let abnormal = |name: Cow<'static, str>, error: tokio::task::JoinError| Error::Task {
            handler: name,
            message: if error.is_panic() {
                panic_message(&*error.into_panic())
            } else {
                error.to_string()
            },
        };
        let finished = async {
            while let Some(joined) = tasks.join_next_with_id().await {
                let (name, result) = match joined {
                    Ok((id, result)) => (names.remove(&id).unwrap_or_default(), result),
                    Err(error) => {
                        let name = names.remove(&error.id()).unwrap_or_default();
                        (name.clone(), Err(abnormal(name, error)))
                    }
                };
                match result {
                    Ok(()) => {
                        if let Some(stats) = controls.monitor.handler(&name) {
                            stats.set_finished();
                        }
                    }
                    Err(error) => controls.fail_handler(&name, error),
                }
            }
            // Shared feeds, then work that finishes after the handlers (final commits).
            for set in [&mut pumps, &mut background] {
                while let Some(joined) = set.join_next().await {
                    if let Err(error) = joined {
                        controls.fail(abnormal("(a shared source)".into(), error));
                    }
                }
            }
        };
        let deadline = async {
            controls.shutdown.wait().await;
            tokio::time::sleep(self.shutdown_timeout).await;
        };
        tokio::select! {
            () = finished => {}
            () = deadline => {
                let left = controls.monitor.in_flight();
                tracing::error!(
                    timeout = ?self.shutdown_timeout,
                    left,
                    "the shutdown took too long: stopping what still runs; its items stay unacknowledged"
                );
                controls.fail(Error::ShutdownTimeout {
                    timeout: self.shutdown_timeout,
                    left,
                });
                // Dropping the sets aborts their tasks.
            }
        }
        tracing::debug!("all handlers finished");
        match controls.take_failure() {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }
}

/// How long a graceful shutdown may take by default.
const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Two selected handlers with one name could not be told apart (pausing, logs).
fn check_unique_names(selected: &[&'static HandlerInfo]) -> Result<(), Error> {
    let mut seen: HashMap<&str, &HandlerInfo> = HashMap::new();
    for info in selected {
        if let Some(other) = seen.insert(info.name, info) {
            return Err(Error::DuplicateHandler {
                name: info.name.to_owned(),
                modules: [other.module.to_owned(), info.module.to_owned()],
            });
        }
    }
    Ok(())
}
