//! A cache in a running application: its update feed as a handler source, its sink
//! ([`CacheSink`]), and its updates for code outside handlers ([`Cache::updates`],
//! [`Cache::send`]). Below: the cache and its writes, follow and replica (through the cache's
//! methods). Must not name options or batches.

use serde::Serialize;

use slipstream_core::__component::{Hub, lock};
use slipstream_core::{
    BoxError, BuildCx, Error, Feed, Pausable, PauseHandle, Sink, SinkHandle, SourceHandle,
    SourceStream, Writer,
};

use super::Cache;
use super::key::CacheKey;

impl<K, V> Pausable for Cache<K, V> {
    fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }
}

impl<K, V> Cache<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    fn key(&'static self) -> usize {
        self as *const Self as usize
    }

    /// The cache's update hub in this run, created by the first handler that names it.
    fn hub<'cx>(&'static self, cx: &'cx mut BuildCx<'_>) -> &'cx mut Hub<(K, V)> {
        let hub = cx.hub(self.key(), || Hub::writers(self.pause.clone()));
        *lock(&self.outside) = hub.outside();
        hub
    }
}

impl<K, V> Cache<K, V>
where
    K: Clone + Send + 'static,
    V: Clone + Send + 'static,
{
    /// The updates written through the cache's sink interface from now on, for readers
    /// outside handlers (an HTTP endpoint streaming them, say). A reader that falls more than
    /// 1,024 updates behind skips the oldest (and a warning is logged).
    ///
    /// ```no_run
    /// # async fn demo(cache: &'static slipstream::Cache<String, String>) {
    /// use futures::StreamExt;
    /// let mut updates = std::pin::pin!(cache.updates());
    /// while let Some((key, value)) = updates.next().await {
    ///     println!("{key} = {value}");
    /// }
    /// # }
    /// ```
    pub fn updates(&self) -> impl futures::Stream<Item = (K, V)> + Send + 'static {
        use tokio::sync::broadcast::error::RecvError;
        let sender = self
            .updates
            .get_or_init(|| tokio::sync::broadcast::channel(1024).0);
        futures::stream::unfold(sender.subscribe(), |mut updates| async move {
            loop {
                match updates.recv().await {
                    Ok(update) => return Some((update, updates)),
                    Err(RecvError::Lagged(skipped)) => {
                        tracing::warn!(skipped, "a cache update reader fell behind; skipping")
                    }
                    Err(RecvError::Closed) => return None,
                }
            }
        })
    }
}

impl<K, V> Cache<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    /// Stores `(key, value)` and publishes it, from outside handlers (an HTTP endpoint, say),
    /// like the original's `await cache(key, value)`: to the handlers reading the cache's
    /// update feed in the running application (waiting for room) and to [`updates`](Cache::updates)
    /// readers. What a sink of a handler does, for code that is not a handler.
    ///
    /// ```no_run
    /// # async fn demo(cache: &'static slipstream::Cache<String, String>) -> Result<(), slipstream::Error> {
    /// cache.send("trophy".to_owned(), "🏆".to_owned()).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, key: K, value: V) -> Result<(), Error> {
        self.put(&key, &value)?;
        self.publish_update(&key, &value);
        let outside = lock(&self.outside).clone();
        if let Some(outside) = outside {
            // A feed that has ended (the application stopped) has nobody left to tell.
            let _ = outside.send((key, value)).await;
        }
        Ok(())
    }

    /// Tells [`updates`](Cache::updates) readers, if any.
    fn publish_update(&self, key: &K, value: &V) {
        if let Some(readers) = self.updates.get()
            && readers.receiver_count() > 0
        {
            let _ = readers.send((key.clone(), value.clone()));
        }
    }
}

impl<K, V> SourceHandle for Cache<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = (K, V);
    type Stream = Feed<(K, V)>;

    fn subscribe(&'static self, cx: &mut BuildCx<'_>) -> Result<SourceStream<Feed<(K, V)>>, Error> {
        self.hub(cx);
        let feed = cx.subscribe(self.key(), || unreachable!("created above"));
        Ok(SourceStream::internal(feed))
    }
}

impl<K, V> SinkHandle<(K, V)> for Cache<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    type Sink = CacheSink<K, V>;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<CacheSink<K, V>, Error> {
        // A following cache's changelog is checked at start-up; a replica is never a sink.
        if let Some(error) = self.read_only() {
            return Err(error);
        }
        self.prepare()?;
        self.hub(cx);
        let feed = cx
            .writer(self.key(), || unreachable!("created above"))
            .expect("a cache's hub takes writers");
        Ok(CacheSink { cache: self, feed })
    }
}

/// A handler's writer into a [`Cache`]: stores each `(key, value)`, then publishes it to the
/// cache's update feed.
pub struct CacheSink<K: 'static, V: 'static> {
    cache: &'static Cache<K, V>,
    feed: Writer<(K, V)>,
}

impl<K, V> std::fmt::Debug for CacheSink<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CacheSink")
            .field("cache", &self.cache)
            .finish()
    }
}

impl<K, V> Sink<(K, V)> for CacheSink<K, V>
where
    K: CacheKey + Clone + Send + Sync + 'static,
    V: Serialize + Clone + Send + Sync + 'static,
{
    async fn send(&mut self, (key, value): (K, V)) -> Result<(), BoxError> {
        self.cache.put(&key, &value)?;
        self.cache.publish_update(&key, &value);
        self.feed
            .send((key, value))
            .await
            .map_err(|_| "the cache's update feed has stopped".into())
    }
}
