//! What stops an application from inside a component.

use std::sync::Arc;

use slipstream_core::Error;

/// Stops the application.
pub(crate) type Fatal = Arc<dyn Fn(Error) + Send + Sync>;
