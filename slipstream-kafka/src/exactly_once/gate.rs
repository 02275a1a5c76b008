//! The gate that holds messages back while a commit waits for those being handled. Layer:
//! exactly-once.

use std::sync::{Condvar, Mutex};

use slipstream_core::__component::lock;

/// Lets messages be handed out, or holds them back while a commit waits for the messages being
/// handled.
#[derive(Default)]
pub(super) struct Gate {
    state: Mutex<GateState>,
    released: Condvar,
    open: OpenWatch,
}

#[derive(Default)]
struct GateState {
    closed: bool,
    /// Messages between being read and being counted in flight.
    passing: usize,
}

/// Wakes the streams waiting at a closed gate.
struct OpenWatch(tokio::sync::watch::Sender<bool>);

impl Default for OpenWatch {
    fn default() -> Self {
        OpenWatch(tokio::sync::watch::Sender::new(true))
    }
}

/// A message passing the gate: the commit waits until it is counted in flight.
pub(crate) struct Passing<'a>(&'a Gate);

impl Drop for Passing<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).passing -= 1;
        self.0.released.notify_all();
    }
}

/// The gate closed for a commit; open again when dropped.
pub(super) struct Closed<'a>(&'a Gate);

impl Drop for Closed<'_> {
    fn drop(&mut self) {
        lock(&self.0.state).closed = false;
        self.0.open.0.send_replace(true);
    }
}

impl Gate {
    /// Waits until the gate is open and passes it.
    pub(super) async fn pass(&self) -> Passing<'_> {
        let mut open = self.open.0.subscribe();
        loop {
            {
                let mut state = lock(&self.state);
                if !state.closed {
                    state.passing += 1;
                    return Passing(self);
                }
            }
            let _ = open.wait_for(|open| *open).await;
        }
    }

    /// Closes the gate and waits for what is passing it. Blocks.
    pub(super) fn close(&self) -> Closed<'_> {
        self.open.0.send_replace(false);
        let mut state = lock(&self.state);
        state.closed = true;
        while state.passing > 0 {
            state = self
                .released
                .wait(state)
                .unwrap_or_else(std::sync::PoisonError::into_inner);
        }
        Closed(self)
    }
}
