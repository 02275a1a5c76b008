//! A topic read on its own, as a stream of messages. Layer: consuming.

use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::message::Message;

/// The messages of a topic read on its own ([`Topic::stream`](crate::Topic::stream)).
pub struct TopicStream<K, V> {
    pub(crate) messages: BoxStream<'static, Message<K, V>>,
    /// Turns true once the consumer has committed a last time and closed.
    pub(crate) closed: tokio::sync::watch::Receiver<bool>,
}

impl<K, V> TopicStream<K, V> {
    /// Ends the stream and waits until its consumer has committed the offsets of the messages
    /// handled (dropped) and left its group.
    pub async fn close(self) {
        let closed = self.closed();
        drop(self);
        closed.await;
    }

    /// Resolves once the stream has ended (or was dropped) and its consumer has committed a last
    /// time and left its group: take it before dropping the stream to wait for that later.
    pub fn closed(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut closed = self.closed.clone();
        async move {
            // An error means the committing task is gone (its runtime shut down): nothing to
            // wait for.
            let _ = closed.wait_for(|done| *done).await;
        }
    }
}

impl<K, V> Stream for TopicStream<K, V> {
    type Item = Message<K, V>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message<K, V>>> {
        self.messages.poll_next_unpin(cx)
    }
}

impl<K, V> std::fmt::Debug for TopicStream<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicStream").finish_non_exhaustive()
    }
}
