//! Checks and callbacks of a checkpoint: sync or async functions, boxed. Below: marker, error.
//! Must not name the dependency, store, pulse or builder, nor the runtime.

use std::future::Future;
use std::sync::Arc;

use futures::FutureExt;
use futures::future::BoxFuture;

use super::marker::{CheckpointView, DependencyView};
use crate::error::BoxError;

pub(super) type CheckFn<M, T> = Arc<
    dyn Fn(CheckpointView<M>, DependencyView<M>) -> BoxFuture<'static, Result<T, BoxError>>
        + Send
        + Sync,
>;
pub(super) type CallbackFn<M> =
    Arc<dyn Fn(CheckpointView<M>, DependencyView<M>) -> BoxFuture<'static, ()> + Send + Sync>;

/// Functions that can be checks or callbacks: sync or async, returning `T` or `Result<T, E>`.
/// `S` is a marker that keeps the implementations apart; it is always inferred.
pub trait IntoHook<M, T, S> {
    /// The boxed hook.
    fn into_hook(self) -> CheckFn<M, T>;
}

/// Marker types for [`IntoHook`].
pub mod hooks {
    /// A sync function returning the value.
    pub enum Sync {}
    /// A sync function returning `Result`.
    pub struct TrySync<E>(std::marker::PhantomData<E>);
    /// An async function returning the value.
    pub struct Async<F>(std::marker::PhantomData<F>);
    /// An async function returning `Result`.
    pub struct TryAsync<F, E>(std::marker::PhantomData<(F, E)>);
}

impl<M: 'static, T: 'static, F> IntoHook<M, T, hooks::Sync> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> T + Send + Sync + 'static,
    T: Send,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| std::future::ready(Ok(self(c, d))).boxed())
    }
}

impl<M: 'static, T: 'static, E, F> IntoHook<M, T, hooks::TrySync<E>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Result<T, E> + Send + Sync + 'static,
    T: Send,
    E: Into<BoxError> + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| std::future::ready(self(c, d).map_err(Into::into)).boxed())
    }
}

impl<M: 'static, T: 'static, F, Fut> IntoHook<M, T, hooks::Async<Fut>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| self(c, d).map(Ok).boxed())
    }
}

impl<M: 'static, T: 'static, E, F, Fut> IntoHook<M, T, hooks::TryAsync<Fut, E>> for F
where
    F: Fn(CheckpointView<M>, DependencyView<M>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, E>> + Send + 'static,
    E: Into<BoxError> + 'static,
{
    fn into_hook(self) -> CheckFn<M, T> {
        Arc::new(move |c, d| self(c, d).map(|r| r.map_err(Into::into)).boxed())
    }
}
