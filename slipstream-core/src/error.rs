//! Typed errors of the library. The bottom layer: names nothing else of the crate.

use std::borrow::Cow;

/// A boxed error as handlers and sinks return it (`?` converts most error types into it).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The result type of slipstream's own operations.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error of slipstream: what `run()` returns when an application stops on a failure.
///
/// It converts into `anyhow::Error` (it is a `std::error::Error + Send + Sync + 'static`).
///
/// ```
/// let err = slipstream::Error::UnknownHandler("missing".into());
/// assert_eq!(err.to_string(), "no handler named `missing` is registered");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A handler returned `Err` and its error policy is `stop`.
    #[error("handler `{handler}` failed: {source}")]
    Handler {
        /// The handler's name.
        handler: Cow<'static, str>,
        /// What the handler returned.
        #[source]
        source: BoxError,
    },
    /// A handler panicked and its error policy is `stop`.
    #[error("handler `{handler}` panicked: {message}")]
    Panic {
        /// The handler's name.
        handler: Cow<'static, str>,
        /// The panic message.
        message: String,
    },
    /// A sink of a handler failed and the handler's error policy is `stop`.
    #[error("a sink of handler `{handler}` failed: {source}")]
    Sink {
        /// The handler's name.
        handler: Cow<'static, str>,
        /// What the sink returned.
        #[source]
        source: BoxError,
    },
    /// A handler could not be set up when the application started.
    #[error("handler `{handler}` could not start: {source}")]
    Build {
        /// The handler's name.
        handler: Cow<'static, str>,
        /// Why it could not start.
        #[source]
        source: BoxError,
    },
    /// A Kafka setting is missing, unknown or invalid.
    #[error("invalid Kafka configuration for topic `{topic}`: `{key}`: {message}")]
    Conf {
        /// The topic whose client could not be configured.
        topic: String,
        /// The setting.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A Kafka operation failed.
    #[error("Kafka error on topic `{topic}`: {source}")]
    Kafka {
        /// The topic.
        topic: String,
        /// What failed.
        #[source]
        source: BoxError,
    },
    /// A key or value could not be encoded or decoded.
    #[error("codec error on topic `{topic}`: {source}")]
    Codec {
        /// The topic.
        topic: String,
        /// What the codec returned.
        #[source]
        source: BoxError,
    },
    /// A cache could not be opened, read or written.
    #[error("cache `{}` {kind}: {message}", path.display())]
    Cache {
        /// The cache's directory.
        path: std::path::PathBuf,
        /// What went wrong.
        kind: CacheErrorKind,
        /// The details.
        message: String,
    },
    /// A checkpoint was used wrongly (an unknown dependency, markers its checks cannot compare).
    #[error("checkpoint: {0}")]
    Checkpoint(String),
    /// A name given to the runtime matches no registered handler.
    #[error("no handler named `{0}` is registered")]
    UnknownHandler(String),
    /// Two handlers selected for one run have the same name.
    #[error("two handlers are named `{name}` (in `{}` and `{}`): give one another name with `#[handle(name = \"..\")]`", modules[0], modules[1])]
    DuplicateHandler {
        /// The name.
        name: String,
        /// The modules that declare them.
        modules: [String; 2],
    },
    /// A handler's task ended abnormally: a panic outside the handler and its sinks (in its
    /// source's or a `pipe` stage's `poll_next`).
    #[error("the task of handler `{handler}` ended abnormally: {message}")]
    Task {
        /// The handler's name.
        handler: Cow<'static, str>,
        /// What happened.
        message: String,
    },
    /// A value was published into a feed (a [`Proxy`](crate::Proxy) from outside handlers) that
    /// no running handler reads: the application is not running, or the feed has ended.
    #[error("{0} is not read by a running application")]
    NotRunning(&'static str),
    /// A graceful shutdown took longer than its deadline (`App::shutdown_timeout`): what still
    /// ran was stopped, and its items were left unacknowledged.
    #[error(
        "the shutdown took longer than {timeout:?}: stopped with {left} items unacknowledged (they are delivered again after a restart)"
    )]
    ShutdownTimeout {
        /// The deadline.
        timeout: std::time::Duration,
        /// How many items sources were still waiting to hear about.
        left: usize,
    },
    /// The admin server could not listen on its address (`App::http`, `SLIPSTREAM_HTTP_ADDR`).
    #[error("cannot start the admin server on `{addr}`: {source}")]
    Http {
        /// The address as given.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// A Kafka error on `topic`.
    #[doc(hidden)]
    pub fn kafka(topic: &str, source: impl Into<BoxError>) -> Self {
        Error::Kafka {
            topic: topic.to_owned(),
            source: source.into(),
        }
    }
}

/// What went wrong with a cache (see [`Error::Cache`]).
///
/// ```
/// use slipstream::CacheErrorKind;
///
/// assert_eq!(CacheErrorKind::Locked.to_string(), "locked");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CacheErrorKind {
    /// Another process (or another `Cache` in this one) holds the database open.
    Locked,
    /// The files in the directory are not a readable database.
    Corrupt,
    /// A stored value (or key) does not decode as the cache's type.
    Decode,
    /// A value could not be encoded.
    Encode,
    /// Reading or writing the database failed.
    Io,
    /// A cache that follows a partitioned source was used where the partition is unknown
    /// (written outside a handler reading that source), or its changelog failed.
    Partition,
}

impl std::fmt::Display for CacheErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CacheErrorKind::Locked => "locked",
            CacheErrorKind::Corrupt => "corrupt",
            CacheErrorKind::Decode => "cannot decode",
            CacheErrorKind::Encode => "cannot encode",
            CacheErrorKind::Io => "I/O error",
            CacheErrorKind::Partition => "partition",
        })
    }
}

/// Turns a panic payload into its message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&'static str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}
