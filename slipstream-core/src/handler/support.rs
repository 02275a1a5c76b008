//! What `#[handle]`'s expansion calls around a handler besides its loop: whether its input
//! can be cloned for retries, its errors and its return value. Below: error. Must not name the
//! loop (drive, step), the context or the runtime.

use std::future::Future;

use futures::Stream;

use crate::error::BoxError;

/// How to clone a handler's input for a retry, when it can be cloned.
#[doc(hidden)]
pub type Cloner<T> = Option<fn(&T) -> T>;

/// Finds out whether a handler's input can be cloned (for retries): `#[handle]` calls
/// `(&clone_probe(&source)).cloner()`, which resolves to [`CanClone`] when the item type is
/// `Clone` and to [`CannotClone`] otherwise.
#[doc(hidden)]
pub struct CloneProbe<T>(std::marker::PhantomData<fn() -> T>);

/// The probe for the items of `source`.
#[doc(hidden)]
pub fn clone_probe<S: Stream>(_source: &S) -> CloneProbe<S::Item> {
    CloneProbe(std::marker::PhantomData)
}

#[doc(hidden)]
pub trait CanClone<T> {
    fn cloner(&self) -> Cloner<T>;
}

impl<T: Clone> CanClone<T> for CloneProbe<T> {
    fn cloner(&self) -> Cloner<T> {
        Some(T::clone)
    }
}

#[doc(hidden)]
pub trait CannotClone<T> {
    fn cloner(&self) -> Cloner<T>;
}

impl<T> CannotClone<T> for &CloneProbe<T> {
    fn cloner(&self) -> Cloner<T> {
        None
    }
}

/// Converts a handler's error into the boxed error the runtime logs or returns.
#[doc(hidden)]
#[inline]
pub fn handler_error<E: Into<BoxError>>(error: E) -> BoxError {
    error.into()
}

/// The return value of a generator-style handler: `()` or `Result<(), E>`.
#[doc(hidden)]
pub trait GenReturn {
    fn into_result(self) -> Result<(), BoxError>;
}

impl GenReturn for () {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        Ok(())
    }
}

impl<E: Into<BoxError>> GenReturn for Result<(), E> {
    #[inline]
    fn into_result(self) -> Result<(), BoxError> {
        self.map_err(Into::into)
    }
}

/// Pins down the output type of an async block (so that `?` inside it knows its error type).
#[doc(hidden)]
#[inline]
pub fn returning<R, F: Future<Output = R>>(future: F) -> F {
    future
}
