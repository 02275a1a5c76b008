//! Acknowledgements: how a source learns that an item it delivered has been handled.
//!
//! A source that needs to know when its items are done (a Kafka topic committing offsets, a
//! queue deleting messages) attaches an [`Ack`] to each item. The ack travels with the item:
//! to every handler that receives it, through proxies, shared streams, pipes and cache feeds
//! downstream, and into the sinks that are still delivering outputs made from it. The source
//! hears [`Acknowledge::done`] once every one of them has finished with it, or
//! [`Acknowledge::failed`] if any of them failed or dropped it unhandled.
//!
//! Below: error and sync only. Must not name partition, the monitor, the context or the runtime.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::error::BoxError;
use crate::sync::lock;

/// The partition of a partitioned source an item came from (see
/// [`origin`](crate::partition::origin)).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Origin {
    /// The source's name (a topic).
    pub source: Arc<str>,
    /// The partition.
    pub partition: i32,
}

tokio::task_local! {
    /// The acknowledgements of the handler whose task is running.
    static HANDLING: Arc<AckScope>;
}

/// Runs a handler's task with its acknowledgements reachable by what it calls ([`current`]).
pub(crate) async fn scoped<F: Future>(acks: Option<Arc<AckScope>>, task: F) -> F::Output {
    match acks {
        Some(acks) => HANDLING.scope(acks, task).await,
        None => task.await,
    }
}

/// A holder of the acknowledgement of the item the running handler works on, if any.
pub(crate) fn current() -> Option<Ack> {
    HANDLING.try_with(|acks| acks.current()).ok().flatten()
}

/// Where the item the running handler works on came from, if its source is partitioned (no
/// holder is taken: a holder dropped unended would fail the item).
pub(crate) fn current_origin() -> Option<Origin> {
    HANDLING.try_with(|acks| acks.origin()).ok().flatten()
}

/// What a source does when an item it delivered is done with. Implement it for the
/// bookkeeping of a custom source and wrap it in an [`Ack`].
///
/// ```
/// use slipstream::{Ack, Acknowledge};
///
/// struct Delete(u64);
///
/// impl Acknowledge for Delete {
///     fn done(&self) {
///         println!("message {} handled: delete it from the queue", self.0);
///     }
///     fn failed(&self) {
///         println!("message {} not handled: leave it for redelivery", self.0);
///     }
/// }
///
/// let ack = Ack::new(Delete(7));
/// ack.done(); // prints "message 7 handled: ..."
/// ```
pub trait Acknowledge: Send + Sync + 'static {
    /// Every holder finished with the item and none failed.
    fn done(&self);

    /// A holder failed, or dropped the item without handling it (the application stopped,
    /// say): the source must not treat it as handled.
    fn failed(&self);

    /// Whether the source has taken the item back (its partition was revoked, or the source
    /// was sought elsewhere): a handler that has not started it skips it.
    fn withdrawn(&self) -> bool {
        false
    }

    /// Where the item came from, for logs (a topic's partition and offset, say).
    fn describe(&self) -> Option<String> {
        None
    }

    /// The partition of a partitioned source the item came from (see
    /// [`partition::origin`](crate::partition::origin)). `None` by default.
    fn origin(&self) -> Option<Origin> {
        None
    }

    /// Forwards the item, as the source read it, to the dead-letter destination `letter`
    /// names. `None` when the source cannot (the default).
    fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        let _ = letter;
        None
    }
}

/// Why and where an item goes to a dead-letter destination (see [`Acknowledge::dead_letter`]).
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a> {
    /// The destination's name (a topic).
    pub destination: &'a str,
    /// The handler that failed.
    pub handler: &'a str,
    /// The failure, as text.
    pub error: &'a str,
}

struct Shared<A: ?Sized + Acknowledge> {
    /// Set by the first holder that fails or drops its handle unreleased.
    failed: AtomicBool,
    target: A,
}

impl<A: ?Sized + Acknowledge> Drop for Shared<A> {
    fn drop(&mut self) {
        if *self.failed.get_mut() {
            self.target.failed();
        } else {
            self.target.done();
        }
    }
}

/// One holder's handle on an item's acknowledgement.
///
/// Cloning makes another holder. Each holder ends its part with [`done`](Ack::done) or
/// [`fail`](Ack::fail); a holder dropped without either counts as failed, so that an item
/// dropped unhandled is never taken for handled. The source hears the outcome once the last
/// holder has ended.
pub struct Ack {
    shared: Arc<Shared<dyn Acknowledge>>,
    released: bool,
}

impl Ack {
    /// The first holder of a new acknowledgement.
    pub fn new(target: impl Acknowledge) -> Self {
        Ack {
            shared: Arc::new(Shared {
                failed: AtomicBool::new(false),
                target,
            }),
            released: false,
        }
    }

    /// One acknowledgement for several items handled together (a batch made by a pipe): done
    /// when it is, failed (each of them) when it fails.
    pub fn all(acks: Vec<Ack>) -> Self {
        Ack::new(All(Mutex::new(acks)))
    }

    /// This holder has finished with the item.
    pub fn done(mut self) {
        self.released = true;
    }

    /// This holder failed the item: the source will hear [`Acknowledge::failed`].
    pub fn fail(mut self) {
        self.shared.failed.store(true, Ordering::Relaxed);
        self.released = true;
    }

    /// Whether the source has taken the item back.
    pub fn is_withdrawn(&self) -> bool {
        self.shared.target.withdrawn()
    }

    /// Where the item came from, if its source says.
    pub fn describe(&self) -> Option<String> {
        self.shared.target.describe()
    }

    /// The partition of a partitioned source the item came from, if its source says.
    pub fn origin(&self) -> Option<Origin> {
        self.shared.target.origin()
    }

    /// Asks the source to forward the item to a dead-letter destination.
    pub fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        self.shared.target.dead_letter(letter)
    }
}

impl Clone for Ack {
    fn clone(&self) -> Self {
        Ack {
            shared: Arc::clone(&self.shared),
            released: false,
        }
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if !self.released {
            self.shared.failed.store(true, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack")
            .field("item", &self.describe())
            .finish_non_exhaustive()
    }
}

/// Several acknowledgements ending together.
struct All(Mutex<Vec<Ack>>);

impl All {
    fn end(&self, ok: bool) {
        for ack in lock(&self.0).drain(..) {
            if ok { ack.done() } else { ack.fail() }
        }
    }
}

impl Acknowledge for All {
    fn done(&self) {
        self.end(true);
    }

    fn failed(&self) {
        self.end(false);
    }

    fn withdrawn(&self) -> bool {
        lock(&self.0).iter().all(Ack::is_withdrawn)
    }

    fn describe(&self) -> Option<String> {
        let acks = lock(&self.0);
        let described: Vec<String> = acks.iter().filter_map(Ack::describe).collect();
        (!described.is_empty()).then(|| described.join("; "))
    }

    /// The newest one's (the item a pipe yielded after dropping the others, or the last of a
    /// batch), or, when it has none (an item of another source), the newest that has one: a
    /// batch holding a message of a partitioned source counts as coming from there (under
    /// exactly-once, its position rides in the transaction, which must not wait for the batch).
    fn origin(&self) -> Option<Origin> {
        lock(&self.0).iter().rev().find_map(Ack::origin)
    }

    fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        let forwards: Option<Vec<_>> = lock(&self.0)
            .iter()
            .map(|a| a.dead_letter(letter))
            .collect();
        let forwards = forwards?;
        Some(Box::pin(async move {
            for forward in forwards {
                forward.await?;
            }
            Ok(())
        }))
    }
}

/// The acknowledgements of one handler: what its sources have read and the item it works on.
///
/// A source stream that yields an item with an ack hands the ack to the scope; the handler loop
/// takes what has been handed in as the acknowledgement of the item it then receives (several
/// are combined when a pipe batches items; a pipe that drops an item passes its ack on with the
/// next one), and sinks that forward outputs downstream ([`Proxy`](crate::Proxy), a topic) take
/// a holder of it. Not a public API.
#[doc(hidden)]
#[derive(Default)]
pub struct AckScope {
    /// Whether anything waits in `state.pending` (read without the lock on every item).
    pending: AtomicBool,
    /// Whether `state.current` holds an ack (read without the lock by forwarding sinks).
    acked: AtomicBool,
    /// Whether items pass through pipes (which may make several items of one).
    piped: AtomicBool,
    /// Set once the handler has finished reading its source without failing: what is left in
    /// its feeds was not meant for it.
    finished: AtomicBool,
    state: Mutex<ScopeState>,
}

#[derive(Default)]
struct ScopeState {
    pending: Vec<Ack>,
    current: Option<Ack>,
    /// With pipes: a holder of the last acknowledgement begun, for the further items a pipe
    /// makes from one (`flat_map`), until acks of newer items arrive.
    last: Option<Ack>,
}

/// Acks handed in for items a pipe has not yielded yet are combined beyond this many (a filter
/// that drops most items would otherwise keep a growing list).
const PENDING_MAX: usize = 1024;

impl AckScope {
    /// A source hands in the ack of the item it yields.
    pub fn hand_in(&self, ack: Ack) {
        let mut state = lock(&self.state);
        state.pending.push(ack);
        if state.pending.len() > PENDING_MAX {
            let all = Ack::all(std::mem::take(&mut state.pending));
            state.pending.push(all);
        }
        drop(state);
        self.pending.store(true, Ordering::Release);
    }

    /// Items pass through pipes before the handler.
    pub(crate) fn set_piped(&self) {
        self.piped.store(true, Ordering::Relaxed);
    }

    /// The handler has finished reading its source without failing.
    pub(crate) fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Whether the handler has finished reading its source without failing.
    pub(crate) fn is_finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// The handler starts an item: what was handed in becomes its acknowledgement. `None`
    /// when the item has none, or when every source took the item back (it is then skipped).
    pub(crate) fn begin(&self) -> Begin {
        let piped = self.piped.load(Ordering::Relaxed);
        if !self.pending.load(Ordering::Acquire) {
            if !piped {
                return Begin::Plain;
            }
            // Another item a pipe made from the last one read: it shares its ack.
            let mut state = lock(&self.state);
            let Some(last) = state.last.clone() else {
                return Begin::Plain;
            };
            state.current = Some(last);
            self.acked.store(true, Ordering::Relaxed);
            return Begin::Acked;
        }
        let mut state = lock(&self.state);
        self.pending.store(false, Ordering::Relaxed);
        let ack = match state.pending.len() {
            0 => return Begin::Plain,
            1 => state.pending.pop().expect("one"),
            _ => Ack::all(std::mem::take(&mut state.pending)),
        };
        let replaced = if piped {
            state.last.replace(ack.clone())
        } else {
            None
        };
        let withdrawn = ack.is_withdrawn();
        if !withdrawn {
            state.current = Some(ack.clone());
            self.acked.store(true, Ordering::Relaxed);
        }
        drop(state);
        // Ended outside the lock: a source's `done` may do anything.
        if let Some(replaced) = replaced {
            replaced.done();
        }
        if withdrawn {
            ack.done();
            return Begin::Withdrawn;
        }
        ack.done();
        Begin::Acked
    }

    /// A holder of the current item's acknowledgement, for a sink that is still delivering
    /// an output made from it once the handler has moved on.
    pub fn current(&self) -> Option<Ack> {
        if !self.acked.load(Ordering::Relaxed) {
            return None;
        }
        lock(&self.state).current.clone()
    }

    /// The partition the current item came from, if its source is partitioned.
    pub(crate) fn origin(&self) -> Option<Origin> {
        if !self.acked.load(Ordering::Relaxed) {
            return None;
        }
        lock(&self.state).current.as_ref().and_then(Ack::origin)
    }

    /// Where the current item came from, if its source says.
    pub(crate) fn describe(&self) -> Option<String> {
        lock(&self.state).current.as_ref().and_then(Ack::describe)
    }

    /// Asks the current item's source to dead-letter it.
    pub(crate) fn dead_letter(
        &self,
        letter: &DeadLetter<'_>,
    ) -> Option<BoxFuture<'static, Result<(), BoxError>>> {
        lock(&self.state).current.as_ref()?.dead_letter(letter)
    }

    /// The handler has finished the current item (`ok`) or failed it.
    pub(crate) fn end(&self, ok: bool) {
        if !self.acked.swap(false, Ordering::Relaxed) {
            return;
        }
        let mut state = lock(&self.state);
        let ack = state.current.take();
        // A failure fails what a pipe made the item from, for every item made from it.
        let last = if ok { None } else { state.last.take() };
        drop(state);
        for ack in ack.into_iter().chain(last) {
            if ok { ack.done() } else { ack.fail() }
        }
    }

    /// The source has ended: acks handed in for items a pipe dropped, and the last one a pipe
    /// may still make items from, are done (`ok`), or failed when the application shut down
    /// with them still inside the pipe.
    pub(crate) fn drain(&self, ok: bool) {
        let mut state = lock(&self.state);
        let pending = std::mem::take(&mut state.pending);
        let last = state.last.take();
        drop(state);
        for ack in pending.into_iter().chain(last) {
            if ok { ack.done() } else { ack.fail() }
        }
    }
}

/// What [`AckScope::begin`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// The item has no acknowledgement.
    Plain,
    /// The item's acknowledgement is current.
    Acked,
    /// The item was taken back by its source: skip it.
    Withdrawn,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Default)]
    struct Count {
        done: AtomicUsize,
        failed: AtomicUsize,
    }

    struct Probe(Arc<Count>);

    impl Acknowledge for Probe {
        fn done(&self) {
            self.0.done.fetch_add(1, Ordering::SeqCst);
        }
        fn failed(&self) {
            self.0.failed.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// An item of partition `partition` of the source `in`.
    struct Partitioned(i32);

    impl Acknowledge for Partitioned {
        fn done(&self) {}
        fn failed(&self) {}
        fn origin(&self) -> Option<Origin> {
            Some(Origin {
                source: "in".into(),
                partition: self.0,
            })
        }
    }

    #[test]
    fn a_batch_comes_from_its_newest_partitioned_item() {
        let partition = |ack: &Ack| ack.origin().map(|origin| origin.partition);
        let (_, other) = probe();
        let mixed = Ack::all(vec![
            Ack::new(Partitioned(1)),
            Ack::new(Partitioned(2)),
            other,
        ]);
        assert_eq!(partition(&mixed), Some(2));
        let (_, first) = probe();
        let (_, second) = probe();
        assert_eq!(partition(&Ack::all(vec![first, second])), None);
        let newest = Ack::all(vec![Ack::new(Partitioned(1)), Ack::new(Partitioned(3))]);
        assert_eq!(partition(&newest), Some(3));
        for ack in [mixed, newest] {
            ack.done();
        }
    }

    fn probe() -> (Arc<Count>, Ack) {
        let count = Arc::new(Count::default());
        (Arc::clone(&count), Ack::new(Probe(Arc::clone(&count))))
    }

    fn outcome(count: &Count) -> (usize, usize) {
        (
            count.done.load(Ordering::SeqCst),
            count.failed.load(Ordering::SeqCst),
        )
    }

    #[test]
    fn done_once_every_holder_is_done() {
        let (count, ack) = probe();
        let other = ack.clone();
        ack.done();
        assert_eq!(outcome(&count), (0, 0));
        other.done();
        assert_eq!(outcome(&count), (1, 0));
    }

    #[test]
    fn one_failing_or_dropping_holder_fails_the_item() {
        let (count, ack) = probe();
        let other = ack.clone();
        other.fail();
        ack.done();
        assert_eq!(outcome(&count), (0, 1));

        let (count, ack) = probe();
        drop(ack.clone());
        ack.done();
        assert_eq!(outcome(&count), (0, 1));
    }

    #[test]
    fn a_scope_combines_what_was_handed_in() {
        let scope = AckScope::default();
        assert_eq!(scope.begin(), Begin::Plain);
        let (a, ack_a) = probe();
        let (b, ack_b) = probe();
        scope.hand_in(ack_a);
        scope.hand_in(ack_b);
        assert_eq!(scope.begin(), Begin::Acked);
        let downstream = scope.current().expect("current");
        scope.end(true);
        assert_eq!((outcome(&a), outcome(&b)), ((0, 0), (0, 0)));
        downstream.fail();
        assert_eq!((outcome(&a), outcome(&b)), ((0, 1), (0, 1)));
    }
}
