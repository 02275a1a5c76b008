//! [`Topic`]: a handler source and sink, and usable on its own.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::BoxStream;
use serde::Serialize;
use serde::de::DeserializeOwned;
use slipstream_core::__component::HealthProbe;
use slipstream_core::__component::{Hub, lock};
use slipstream_core::partition::{
    Changelog, Encode, PartitionState, Partitioned, Replica, Replicated, Replication,
};
use slipstream_core::{
    Ack, BuildCx, Error, Feed, OnError, Pausable, PauseHandle, SinkHandle, SourceHandle,
    SourceStream,
};

use crate::client;
use crate::client::EMBEDDED;
use crate::codec::{Codec, DefaultCodec, JsonCodec};
use crate::conf::Conf;
use crate::consume::{
    self, OnUndecodable, RebalanceListener, Running, StartAt, TopicStream, Undecodable,
};
use crate::message::{DoneOnDrop, Message, Record};
use crate::produce::dead_letter::DeadLetters;
use crate::produce::{Placement, Producer, Refusals, TopicSink};
use crate::state::{Followers, Input};

/// The work that commits a consumer's progress (see `Running::commit_loop`).
type Committer = futures::future::BoxFuture<'static, ()>;

/// A consumer's decoded messages, each with its acknowledgement.
type Acked<K, V> = BoxStream<'static, (Message<K, V>, Ack)>;

/// A Kafka topic: a source of [`Message`]s for handlers, a sink for `(key, value)` pairs (or
/// values, or whole messages), and usable on its own with [`send`](Topic::send) and
/// [`stream`](Topic::stream).
///
/// Settings come from [`Conf::set`] (the global defaults when the topic is created), the topic's
/// own [`conf`](Topic::conf), and `SLIPSTREAM_*` environment variables, in increasing priority. A topic named by several
/// handlers is read by one consumer and every message goes to each of them. Delivery is
/// at-least-once: an offset is committed only once the message's acknowledgement is done — every
/// handler it reached, directly or through proxies and pipes downstream, and all their sinks —
/// and every earlier message of its partition is too.
///
/// ```no_run
/// use std::sync::LazyLock;
/// use slipstream::prelude::*;
/// use slipstream::Message;
///
/// static EMOJI: LazyLock<Topic> = LazyLock::new(|| {
///     Topic::new("emoji").conf([("group.id", "demo"), ("auto.offset.reset", "earliest")])
/// });
/// static NAMES: LazyLock<Topic> = LazyLock::new(|| Topic::new("names"));
///
/// #[handle(source = EMOJI, sink = [NAMES])]
/// fn name(msg: Message<String, String>) -> (String, String) {
///     (msg.value, msg.key.unwrap_or_default())
/// }
/// ```
pub struct Topic<K = String, V = String> {
    name: String,
    /// The global defaults when the topic was created.
    defaults: Conf,
    conf: Conf,
    key_codec: Arc<dyn Codec<K>>,
    value_codec: Arc<dyn Codec<V>>,
    dry: bool,
    start: StartAt,
    stop_at_end: bool,
    dead_letter: Option<String>,
    commit_interval: Duration,
    connect_timeout: Duration,
    pause: PauseHandle,
    producer: Mutex<Option<Producer<K, V>>>,
    running: Mutex<Weak<Running>>,
    undecodable: Arc<AtomicU64>,
    /// Caches that follow the topic's partitions.
    followers: Arc<Followers>,
}

impl<K: DefaultCodec, V: DefaultCodec> Topic<K, V> {
    /// A topic whose keys and values use their default codecs (UTF-8 for `String`, raw for
    /// `Vec<u8>`, JSON for `serde_json::Value`).
    pub fn new(name: impl Into<String>) -> Self {
        Topic::with_codecs(name, K::default_codec(), V::default_codec())
    }
}

impl<K: DefaultCodec, V: Serialize + DeserializeOwned + 'static> Topic<K, V> {
    /// A topic whose values are JSON (any serde type).
    pub fn json(name: impl Into<String>) -> Self {
        Topic::with_codecs(name, K::default_codec(), Arc::new(JsonCodec::<V>::new()))
    }
}

impl<K: 'static, V: 'static> Topic<K, V> {
    /// A topic with the given codecs.
    pub fn with_codecs(
        name: impl Into<String>,
        key_codec: Arc<dyn Codec<K>>,
        value_codec: Arc<dyn Codec<V>>,
    ) -> Self {
        Topic {
            name: name.into(),
            defaults: Conf::global(),
            conf: Conf::new(),
            key_codec,
            value_codec,
            dry: false,
            start: StartAt::Committed,
            stop_at_end: false,
            dead_letter: None,
            commit_interval: Duration::from_millis(500),
            connect_timeout: client::CONNECT_TIMEOUT,
            pause: PauseHandle::new(),
            producer: Mutex::new(None),
            running: Mutex::new(Weak::new()),
            undecodable: Arc::new(AtomicU64::new(0)),
            followers: Arc::default(),
        }
    }

    /// Adds settings of this topic's clients (over the global [`Conf`]).
    pub fn conf<I, S, T>(mut self, entries: I) -> Self
    where
        I: IntoIterator<Item = (S, T)>,
        S: AsRef<str>,
        T: ToString,
    {
        self.conf = self.conf.with(entries);
        self
    }

    /// The codec of keys.
    pub fn key_codec(mut self, codec: impl Codec<K>) -> Self {
        self.key_codec = Arc::new(codec);
        self
    }

    /// The codec of values.
    pub fn value_codec(mut self, codec: impl Codec<V>) -> Self {
        self.value_codec = Arc::new(codec);
        self
    }

    /// Logs records instead of producing them.
    pub fn dry(mut self, dry: bool) -> Self {
        self.dry = dry;
        self
    }

    /// Where the consumer starts (see [`StartAt`]). In a group, a position applies to each
    /// partition the group assigns until this consumer has committed an offset of it; the
    /// instances still share the partitions. Without a `group.id`, the consumer reads every
    /// partition from there.
    pub fn start(mut self, start: StartAt) -> Self {
        self.start = start;
        self
    }

    /// Ends the topic as a source once every assigned partition has been read to its end (for
    /// backfills and tests), so that `run()` can return.
    pub fn stop_at_end(mut self, stop: bool) -> Self {
        self.stop_at_end = stop;
        self
    }

    /// Forwards messages that cannot be decoded, as they are, to the topic `name` (they are
    /// still logged and counted), whatever the error policy of the handlers reading the topic.
    /// Without it, an undecodable message follows the policy of the first handler reading the
    /// topic: `stop` (the default) stops the application before anything after it is handled,
    /// `skip` skips it, `dead_letter` forwards it there. Forwarded records carry the headers
    /// `slipstream.error`, `slipstream.topic`, `slipstream.partition` and `slipstream.offset`.
    pub fn dead_letter(mut self, name: impl Into<String>) -> Self {
        self.dead_letter = Some(name.into());
        self
    }

    /// How often finished offsets are committed while running (500 ms by default; offsets are
    /// also committed on revocation and at shutdown).
    pub fn commit_interval(mut self, interval: Duration) -> Self {
        self.commit_interval = interval;
        self
    }

    /// How long starting to read the topic, or to write it from a handler, waits for a broker
    /// to answer (30 s by default): past it, the application fails to start with an error
    /// naming the servers, instead of retrying in the background. Health reports the topic's
    /// clients once no broker has been reachable that long.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's own settings (without the global ones).
    pub fn own_conf(&self) -> &Conf {
        &self.conf
    }

    /// The settings its clients use: the global defaults as they were when the topic was
    /// created, then the topic's own, then the environment.
    pub fn effective_conf(&self) -> Conf {
        self.defaults.effective(&self.conf)
    }

    /// How many messages could not be decoded so far.
    pub fn undecodable(&self) -> u64 {
        self.undecodable.load(Ordering::Relaxed)
    }

    fn producer(&self) -> Result<Producer<K, V>, Error> {
        let mut slot = lock(&self.producer);
        if let Some(producer) = &*slot {
            return Ok(producer.clone());
        }
        let producer = Producer::new(
            &self.name,
            &self.effective_conf(),
            self.dry,
            Some(self.connect_timeout),
            Arc::clone(&self.key_codec),
            Arc::clone(&self.value_codec),
        )?;
        *slot = Some(producer.clone());
        Ok(producer)
    }

    /// Produces `(key, value)` and waits until the broker has it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), slipstream::Error> {
    /// let topic: slipstream::Topic = slipstream::Topic::new("emoji");
    /// topic.send("trophy", "🏆").await?;
    /// # Ok(()) }
    /// ```
    pub async fn send(&self, key: impl Into<K>, value: impl Into<V>) -> Result<(), Error> {
        self.producer()?
            .produce(Some(&key.into()), &value.into(), &[], Placement::default())
            .await
    }

    /// Produces a value without a key.
    pub async fn send_value(&self, value: impl Into<V>) -> Result<(), Error> {
        self.producer()?
            .produce(None, &value.into(), &[], Placement::default())
            .await
    }

    /// Produces a record with headers.
    pub async fn send_with_headers(
        &self,
        key: Option<K>,
        value: V,
        headers: &[(String, Vec<u8>)],
    ) -> Result<(), Error> {
        self.producer()?
            .produce(key.as_ref(), &value, headers, Placement::default())
            .await
    }

    /// Produces a [`Record`] (its key, partition, timestamp and headers as it says) and waits
    /// until the broker has it.
    pub async fn send_record(&self, record: Record<K, V>) -> Result<(), Error> {
        let placement = Placement {
            partition: record.partition,
            timestamp: record.timestamp,
        };
        self.producer()?
            .produce(
                record.key.as_ref(),
                &record.value,
                &record.headers,
                placement,
            )
            .await
    }

    fn dead_letters(&self) -> Arc<DeadLetters> {
        Arc::new(DeadLetters::new(
            &self.name,
            self.effective_conf(),
            self.dry,
        ))
    }

    fn undecodable_policy(
        &self,
        policy: OnUndecodable,
        letters: Arc<DeadLetters>,
        stop: Option<Arc<dyn Fn(Error) + Send + Sync>>,
    ) -> Undecodable {
        let policy = match &self.dead_letter {
            Some(name) => OnUndecodable::DeadLetter(name.clone(), stop),
            None => policy,
        };
        Undecodable {
            count: Arc::clone(&self.undecodable),
            policy,
            letters,
        }
    }

    fn start_consumer(
        &self,
        failed: Arc<std::sync::atomic::AtomicBool>,
        letters: Arc<DeadLetters>,
        fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
    ) -> Result<Arc<Running>, Error> {
        let running = Running::start(
            &self.name,
            &self.effective_conf(),
            &self.start,
            self.stop_at_end,
            self.pause.clone(),
            consume::Shared {
                failed,
                letters,
                undecodable: Arc::clone(&self.undecodable),
                connect_timeout: self.connect_timeout,
                followers: Arc::clone(&self.followers) as Arc<dyn RebalanceListener>,
                fatal,
            },
        )?;
        *lock(&self.running) = Arc::downgrade(&running);
        Ok(running)
    }

    /// Moves the running consumer's position in `partition`: the next message of that partition
    /// a handler sees is the one at `offset` (messages already read from it are withdrawn;
    /// messages of other partitions may come first). Used to reprocess, for example by a
    /// checkpoint's recovery.
    pub fn seek(&self, partition: i32, offset: i64) -> Result<(), Error> {
        match self.running() {
            Some(running) => running.seek(partition, offset),
            None => Err(Error::kafka(&self.name, "the topic is not being consumed")),
        }
    }

    /// The partitions currently assigned to this topic's running consumer (empty when it is not
    /// running or not assigned yet).
    pub fn assignment(&self) -> Vec<i32> {
        self.running().map(|r| r.assignment()).unwrap_or_default()
    }

    /// The consumer reading the topic now, if any.
    fn running(&self) -> Option<Arc<Running>> {
        lock(&self.running).upgrade()
    }

    /// Creates the topic with `partitions` partitions (the broker's default replication factor,
    /// `default.replication.factor`) if it does not exist yet. Brokers that create topics on
    /// first use do not need it.
    ///
    /// ```no_run
    /// # async fn demo() -> Result<(), slipstream::Error> {
    /// let topic: slipstream::Topic = slipstream::Topic::new("emoji");
    /// topic.create(6).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create(&self, partitions: i32) -> Result<(), Error> {
        let effective = self.effective_conf();
        let conf = if effective.get("bootstrap.servers") == Some(EMBEDDED) {
            effective.clone()
        } else {
            client::resolve(&self.name, &effective)?
        };
        crate::client::admin::create_topic(&self.name, partitions, &conf, &effective, false).await
    }
}

impl<K, V> Topic<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// Reads the topic directly, outside handlers: a stream of its messages. An offset is
    /// committed once the message at it (and every earlier one) has been dropped. With
    /// [`stop_at_end`](Topic::stop_at_end) the stream ends at the end of every partition; it
    /// also ends (after logging the error) if the consumer fails for good.
    ///
    /// The consumer commits in the background; once the stream is dropped it commits a last
    /// time and leaves its group. [`TopicStream::close`] ends the stream and waits for that, so
    /// a consumer of the same group started next begins where this one stopped.
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// # async fn demo() -> Result<(), slipstream::Error> {
    /// let topic: slipstream::Topic = slipstream::Topic::new("emoji").stop_at_end(true);
    /// let mut messages = topic.stream()?;
    /// while let Some(msg) = messages.next().await {
    ///     println!("{msg}");
    /// }
    /// messages.close().await; // committed, and out of the group
    /// # Ok(()) }
    /// ```
    pub fn stream(&self) -> Result<TopicStream<K, V>, Error> {
        let (messages, committer) = self.consume(OnUndecodable::Skip, Arc::default(), None)?;
        let messages = messages
            .map(|(mut message, ack)| {
                message.done = Some(Arc::new(DoneOnDrop(Some(ack))));
                message
            })
            .boxed();
        let (done, closed) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            committer.await;
            let _ = done.send(true);
        });
        Ok(TopicStream { messages, closed })
    }

    /// A new consumer: its decoded messages, and the work that commits what has been handled
    /// (it ends after the stream does, with a last commit).
    fn consume(
        &self,
        policy: OnUndecodable,
        failed: Arc<std::sync::atomic::AtomicBool>,
        fatal: Option<Arc<dyn Fn(Error) + Send + Sync>>,
    ) -> Result<(Acked<K, V>, Committer), Error> {
        let letters = self.dead_letters();
        let undecodable = self.undecodable_policy(policy, Arc::clone(&letters), fatal.clone());
        let running = self.start_consumer(failed, letters, fatal.clone())?;
        let committer = Box::pin(Arc::clone(&running).commit_loop(self.commit_interval));
        let messages = consume::messages(
            running,
            Arc::clone(&self.key_codec),
            Arc::clone(&self.value_codec),
            undecodable,
            self.pause.clone(),
            self.stop_at_end,
            fatal,
        );
        Ok((messages.boxed(), committer))
    }
}

impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Input for Topic<K, V> {
    fn name(&self) -> &str {
        &self.name
    }

    fn effective_conf(&self) -> Conf {
        Topic::effective_conf(self)
    }
}

/// State follows the topic's partitions with `Cache::follow`.
impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Partitioned for Topic<K, V> {
    fn source_name(&self) -> &str {
        &self.name
    }

    fn follow(
        &'static self,
        state: Arc<dyn PartitionState>,
        changelog: Option<String>,
    ) -> Arc<dyn Changelog> {
        self.followers.add(self, state, changelog)
    }
}

/// Every instance holds the whole topic with `Cache::replicate`.
impl<K: Send + Sync + 'static, V: Send + Sync + 'static> Replicated<K, V> for Topic<K, V> {
    fn replicated_name(&self) -> String {
        self.name.clone()
    }

    fn replicate(
        &'static self,
        replica: Arc<dyn Replica>,
        encode: Encode<K, V>,
    ) -> Arc<dyn Replication> {
        crate::state::replica::from_topic(
            &self.name,
            self.effective_conf(),
            (Arc::clone(&self.key_codec), Arc::clone(&self.value_codec)),
            replica,
            encode,
        )
    }
}

impl<K, V> std::fmt::Debug for Topic<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic")
            .field("name", &self.name)
            .field("conf", &self.conf)
            .field("dry", &self.dry)
            .field("start", &self.start)
            .field("stop_at_end", &self.stop_at_end)
            .finish_non_exhaustive()
    }
}

impl<K, V> Pausable for Topic<K, V> {
    fn pause_handle(&self) -> PauseHandle {
        self.pause.clone()
    }
}

impl<K, V> SourceHandle for Topic<K, V>
where
    K: Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    type Item = Message<K, V>;
    type Stream = Feed<Message<K, V>>;

    fn subscribe(
        &'static self,
        cx: &mut BuildCx<'_>,
    ) -> Result<SourceStream<Feed<Message<K, V>>>, Error> {
        let key = self as *const Self as usize;
        if !cx.has_hub(key) {
            let policy = match cx.policy() {
                OnError::Stop => OnUndecodable::Stop(cx.failer()),
                OnError::Skip => OnUndecodable::Skip,
                OnError::DeadLetter(name) => {
                    OnUndecodable::DeadLetter(name.to_owned(), Some(cx.failer()))
                }
            };
            let fatal = Some(cx.failer());
            // The changelogs of caches following the topic are checked before it is read.
            self.followers.prepare(fatal.clone())?;
            let progress: Arc<dyn HealthProbe> = self.followers.progress();
            cx.watch_health(Arc::downgrade(&progress));
            let (messages, committer) = self.consume(policy, cx.failed_flag(), fatal)?;
            cx.add_background(committer);
            if let Some(running) = self.running() {
                let probe: Arc<dyn slipstream_core::__component::ConsumerProbe> = running.clone();
                cx.watch_consumer(running.status(), Arc::downgrade(&probe));
                let link: Arc<dyn HealthProbe> = running.link();
                cx.watch_health(Arc::downgrade(&link));
            }
            // The consumer applies the topic's pause itself (pausing its assignment, so that
            // it stays in its group); the hub holds back what was read before the pause.
            let messages = messages.map(|(message, ack)| (message, Some(ack))).boxed();
            cx.hub(key, || {
                Hub::external_acked(messages, self.pause.clone(), false)
            });
        }
        let feed = cx.subscribe::<Message<K, V>>(key, || unreachable!("created above"));
        Ok(SourceStream::internal(feed))
    }
}

impl<K, V, T> SinkHandle<T> for Topic<K, V>
where
    K: Send + Sync + 'static,
    V: Send + Sync + 'static,
    TopicSink<K, V>: slipstream_core::Sink<T>,
{
    type Sink = TopicSink<K, V>;

    fn writer(&'static self, cx: &mut BuildCx<'_>) -> Result<TopicSink<K, V>, Error> {
        let refusals = Refusals {
            handler: cx.handler().name,
            policy: cx.policy(),
            stop: cx.failer(),
        };
        let producer = self.producer()?;
        producer.connect(self.connect_timeout)?;
        if let Some(transactions) = producer.transactions() {
            // Its records commit every interval on this runtime, and a failed commit stops
            // the application.
            transactions.watch(Some(cx.failer()));
        }
        let link: Arc<dyn HealthProbe> = producer.link().clone();
        cx.watch_health(Arc::downgrade(&link));
        Ok(TopicSink::new(producer, cx.acks(), refusals))
    }
}
